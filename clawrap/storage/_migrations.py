"""Versioned schema migrations, applied at start on both engines, so an upgrade keeps data.

Each store declares a :class:`Schema`: a component name and its numbered
:class:`Migration` steps, each written for SQLite and for PostgreSQL. A database
records the version it is at: in SQLite, one file per store, in ``PRAGMA
user_version``; in PostgreSQL, where every store shares one database, in the table
``clawrap_schema`` (one row per component). :func:`migrate` applies the missing
steps in one transaction (all or none) and refuses a database written by a newer
clawrap rather than misread it. On PostgreSQL an advisory lock makes instances
that start together take turns. :func:`schema_version` only reads, for
``clawrap db check``.

A step, once released, is never edited: a change is a new step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clawrap.storage._database import Conn

# Any fixed number: instances migrating one PostgreSQL database at once take turns on it.
_ADVISORY_LOCK = 0x636C6177  # "claw"


class SchemaError(Exception):
    """The database is not one this clawrap can use (newer, or something else's)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    sqlite: str
    postgres: str


@dataclass(frozen=True, slots=True)
class Schema:
    """A store's migrations, versions 1, 2, ... in order.

    ``adopt``: for an SQLite file made before versions were recorded, whether its
    tables are this store's at version 1 (else a versionless file with tables is
    refused as not ours).
    """

    component: str
    migrations: tuple[Migration, ...]
    adopt: Callable[[Conn], bool] | None = None

    @property
    def latest(self) -> int:
        return self.migrations[-1].version if self.migrations else 0


def _sqlite_version(conn: Conn, schema: Schema) -> int:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == 0:
        tables = int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        if tables:
            if schema.adopt is not None and schema.adopt(conn):
                return 1
            raise SchemaError(
                f"it is a SQLite database but not a clawrap {schema.component} database"
            )
    return version


def _postgres_version(conn: Conn, schema: Schema) -> int:
    exists = conn.execute("SELECT to_regclass('clawrap_schema') IS NOT NULL").fetchone()[0]
    if not exists:
        return 0
    row = conn.execute(
        "SELECT version FROM clawrap_schema WHERE component = ?", (schema.component,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def schema_version(conn: Conn, schema: Schema) -> int:
    """The version the database is at for ``schema`` (0: none of it yet)."""
    if conn.dialect == "postgres":
        return _postgres_version(conn, schema)
    return _sqlite_version(conn, schema)


def _refuse_newer(version: int, schema: Schema) -> None:
    if version > schema.latest:
        raise SchemaError(
            f"it was written by a newer clawrap ({schema.component} schema {version}, "
            f"this one knows up to {schema.latest})"
        )


def migrate(conn: Conn, schema: Schema) -> tuple[int, int]:
    """Bring the database to ``schema.latest``; (version before, version after)."""
    if conn.dialect == "postgres":
        return _migrate_postgres(conn, schema)
    return _migrate_sqlite(conn, schema)


def _migrate_postgres(conn: Conn, schema: Schema) -> tuple[int, int]:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_ADVISORY_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS clawrap_schema "
            "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        before = _postgres_version(conn, schema)
        _refuse_newer(before, schema)
        for step in schema.migrations:
            if step.version > before:
                conn.script(step.postgres)
        conn.execute(
            "INSERT INTO clawrap_schema VALUES (?, ?) "
            "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (schema.component, schema.latest),
        )
    return before, schema.latest


def _migrate_sqlite(conn: Conn, schema: Schema) -> tuple[int, int]:
    before = _sqlite_version(conn, schema)
    _refuse_newer(before, schema)
    if before == 0:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes before any table
    if before < schema.latest:
        with conn.transaction():
            for step in schema.migrations:
                if step.version > before:
                    conn.script(step.sqlite)
            conn.execute(f"PRAGMA user_version = {schema.latest}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    # A real write: a read-only file or directory fails here, not at the first commit.
    conn.execute(f"PRAGMA user_version = {schema.latest}")
    return before, schema.latest


__all__ = ["Migration", "Schema", "SchemaError", "migrate", "schema_version"]
