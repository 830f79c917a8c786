"""Which database each store uses, from the settings.

Without ``CLAWRAP_DATABASE_URL`` every store has its own SQLite file in the data
directory (``sessions.sqlite3``, ``responses.sqlite3``, ``usage.sqlite3``; the
first and last can be moved with ``CLAWRAP_SESSION_DB`` / ``CLAWRAP_USAGE_DB``,
and ``CLAWRAP_SESSION_DB=:memory:`` keeps sessions and responses in memory). With
it, all of them share one PostgreSQL database through one pool of
``CLAWRAP_DATABASE_POOL`` connections, so several instances share one state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import trio

from clawrap.core._config import Settings
from clawrap.storage._database import Database, DatabaseError, SqliteDatabase

Store = Literal["sessions", "responses", "usage"]


def sqlite_path(settings: Settings, store: Store) -> str:
    """The SQLite file of ``store`` under ``settings`` (``:memory:`` keeps none)."""
    data = Path(settings.data_dir)
    if store == "sessions":
        return settings.session_db or str(data / "sessions.sqlite3")
    if store == "responses":
        if settings.session_db == ":memory:":
            return ":memory:"
        return str(data / "responses.sqlite3")
    return settings.usage_db or str(data / "usage.sqlite3")


async def open_database(settings: Settings, store: Store) -> Database:
    """A database of its own for ``store``; :class:`DatabaseError` naming the problem."""
    if settings.database_url:
        try:
            from clawrap.storage._postgres import PostgresDatabase
        except ImportError:
            raise DatabaseError(
                "CLAWRAP_DATABASE_URL", "PostgreSQL needs psycopg: pip install 'clawrap[postgres]'"
            ) from None
        url, size = settings.database_url, settings.database_pool
        return await trio.to_thread.run_sync(PostgresDatabase.connect, url, size)
    return await trio.to_thread.run_sync(SqliteDatabase.connect, sqlite_path(settings, store))


@dataclass(frozen=True, slots=True)
class Databases:
    """The databases of a server's three stores (one shared PostgreSQL, or three files)."""

    sessions: Database
    responses: Database
    usage: Database

    def distinct(self) -> list[Database]:
        seen: list[Database] = []
        for db in (self.sessions, self.responses, self.usage):
            if all(db is not s for s in seen):
                seen.append(db)
        return seen

    async def ping(self) -> None:
        """One round trip to each; :class:`DatabaseError` from the first that fails."""
        for db in self.distinct():
            await db.ping()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            for db in self.distinct():
                await db.aclose()


async def open_databases(settings: Settings) -> Databases:
    """Every store's database; on failure those already open are closed again."""
    if settings.database_url:
        shared = await open_database(settings, "sessions")
        return Databases(shared, shared, shared)
    opened: list[Database] = []
    try:
        for store in ("sessions", "responses", "usage"):
            opened.append(await open_database(settings, store))
    except BaseException:
        with trio.CancelScope(shield=True):
            for db in opened:
                await db.aclose()
        raise
    return Databases(*opened)


__all__ = ["DatabaseError", "Databases", "Store", "open_database", "open_databases", "sqlite_path"]
