"""One database interface, two engines: SQLite (embedded, the default) and PostgreSQL.

A store (sessions, stored responses, the usage ledger) writes its queries once, in
the SQL both engines read, with ``?`` placeholders, and runs them through
:meth:`Database.run`: the given function gets a :class:`Conn` and is called in a
worker thread (``trio.to_thread.run_sync``), so the event loop never waits on disk
or network. Where the engines differ, a store asks :attr:`Conn.dialect`.

- :class:`SqliteDatabase`: one connection to one file, used one call at a time
  (a ``trio.Lock``); WAL mode. An in-memory database (``:memory:``, no disk to wait
  for) runs its calls in place.
- :class:`PostgresDatabase`: a ``psycopg_pool.ConnectionPool`` of synchronous
  psycopg 3 connections; up to ``pool`` calls run at once, each on its own
  connection in its own thread. psycopg's asyncio API is not used: its pool runs
  its upkeep as asyncio tasks, which a trio server has no loop for, and a SQL call
  here is short, so a worker thread per call costs little (``bench/storage.py``).

Failures of either engine reach the caller as :class:`DatabaseError`, whose text
the stores log and keep out of responses.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import trio

log = logging.getLogger("clawrap.storage")

_T = TypeVar("_T")
Dialect = Literal["sqlite", "postgres"]
Params = Sequence[Any]


class DatabaseError(Exception):
    """The database failed (unreachable, refused, corrupt, a constraint): ``where`` (a file,
    or a URL without its password) and ``reason`` say which and how."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class Cursor(Protocol):
    """What both engines' cursors offer."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Conn:
    """One connection as a store sees it: ``?`` placeholders on both engines."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect: Dialect = dialect

    def _sql(self, sql: str) -> str:
        # Our queries hold no literal '?' or '%': the placeholder swap is exact.
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        cursor: Cursor = self.raw.execute(self._sql(sql), params)
        return cursor

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if not rows:
            return
        if self.dialect == "postgres":
            with self.raw.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            self.raw.executemany(sql, rows)

    def script(self, sql: str) -> None:
        """Several statements separated by ``;`` (schema changes), in the open transaction."""
        for statement in (s.strip() for s in sql.split(";")):
            if statement:
                self.raw.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; on SQLite the write lock is taken at the start."""
        if self.dialect == "postgres":
            with self.raw.transaction():
                yield
            return
        self.raw.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")


class Database:
    """A store's database. Open with :func:`open_database`, close with :meth:`aclose`."""

    dialect: Dialect
    # What operators see in messages: the file, or the URL without its password.
    where: str

    async def run(self, fn: Callable[[Conn], _T]) -> _T:
        """``fn(conn)`` in a worker thread; engine failures become :class:`DatabaseError`."""
        raise NotImplementedError

    def run_now(self, fn: Callable[[Conn], _T]) -> _T:
        """``fn(conn)`` in this thread: for start-up and the command line, not the server."""
        raise NotImplementedError

    async def ping(self) -> None:
        """A round trip (``SELECT 1``); :class:`DatabaseError` when it fails."""
        await self.run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def aclose(self) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------- SQLite


def connect_sqlite(path: str) -> sqlite3.Connection:
    """Open ``path`` (created private, its directory too) in WAL mode."""
    if path != ":memory:":
        directory = Path(path).parent
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True)
            directory.chmod(0o700)
        # Created private before SQLite sees it; its -wal and -shm files copy the mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA secure_delete = ON")
    except BaseException:
        conn.close()
        raise
    return conn


class SqliteDatabase(Database):
    """One SQLite file on one connection, used one call at a time."""

    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._lock = trio.Lock()
        self.path = self.where = path

    @classmethod
    def connect(cls, path: str) -> SqliteDatabase:
        try:
            return cls(connect_sqlite(path), path)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseError(path, str(exc)) from None

    def _conn_or_fail(self) -> Conn:
        if self._conn is None:
            raise DatabaseError(self.path, "closed")
        return Conn(self._conn, "sqlite")

    async def run(self, fn: Callable[[Conn], _T]) -> _T:
        # The thread is not abandoned on cancel, so a transaction always ends before the
        # next call starts.
        async with self._lock:
            if self.path == ":memory:":
                # No disk to wait for: run in place (a thread would only add its hand-off,
                # and trio's autojump test clock would take the wait for idleness).
                return self.run_now(fn)
            return await trio.to_thread.run_sync(self.run_now, fn)

    def run_now(self, fn: Callable[[Conn], _T]) -> _T:
        conn = self._conn_or_fail()
        try:
            return fn(conn)
        except sqlite3.Error as exc:
            raise DatabaseError(self.path, str(exc)) from None

    async def aclose(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await trio.to_thread.run_sync(conn.close)


__all__ = [
    "Conn",
    "Cursor",
    "Database",
    "DatabaseError",
    "Dialect",
    "SqliteDatabase",
    "connect_sqlite",
]
