"""``clawrap db migrate`` and ``clawrap db check``: the stores' schemas, outside the server.

The server migrates at start; these let an operator do it ahead of a rollout
(``migrate``) or ask, from a deploy script, whether a database is ready for this
version (``check``: exit 0 when every store is at this clawrap's schema, 1 when a
migration is pending or the database is newer, 2 when it cannot be reached).
They use the same settings as the server: ``CLAWRAP_DATABASE_URL`` (PostgreSQL,
every store in it), else the SQLite files of the data directory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from clawrap.accounting._ledger import SCHEMA as USAGE_SCHEMA
from clawrap.core._config import Settings, SettingsError
from clawrap.sessions._responses import SCHEMA as RESPONSE_SCHEMA
from clawrap.sessions._session_sql import SCHEMA as SESSION_SCHEMA
from clawrap.storage._database import Database, DatabaseError, SqliteDatabase
from clawrap.storage._migrations import Schema, SchemaError, migrate, schema_version
from clawrap.storage._open import Store, sqlite_path

_STORES: tuple[tuple[Store, Schema], ...] = (
    ("sessions", SESSION_SCHEMA),
    ("responses", RESPONSE_SCHEMA),
    ("usage", USAGE_SCHEMA),
)


def _connect(settings: Settings, store: Store) -> Database | None:
    """The store's database, or None for a SQLite file that does not exist yet."""
    if settings.database_url:
        from clawrap.storage._postgres import PostgresDatabase

        return PostgresDatabase.connect(settings.database_url, 1)
    path = sqlite_path(settings, store)
    if path == ":memory:" or not Path(path).exists():
        return None
    return SqliteDatabase.connect(path)


def _close(database: Database) -> None:
    import trio

    trio.run(database.aclose)


def db_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="clawrap db", description="Migrate or check the stores' database schemas."
    )
    parser.add_argument("action", choices=("migrate", "check"))
    parser.add_argument("--url", help="a PostgreSQL URL (default: CLAWRAP_DATABASE_URL)")
    args = parser.parse_args(list(argv))
    try:
        settings = Settings.from_env(**({"database_url": args.url} if args.url else {}))
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"clawrap: {problem}", file=sys.stderr)
        return 2
    status = 0
    for store, schema in _STORES:
        try:
            database = _connect(settings, store)
        except DatabaseError as exc:
            print(f"clawrap: cannot reach the database {exc}", file=sys.stderr)
            return 2
        if database is None:
            note = "nothing stored yet (created at start)"
            print(f"{store:<10} {note}")
            continue
        try:
            if args.action == "migrate":
                before, after = database.run_now(partial(migrate, schema=schema))
                change = "up to date" if before == after else f"migrated {before} -> {after}"
                print(f"{store:<10} schema {after} ({change}) in {database.where}")
            else:
                version = database.run_now(partial(schema_version, schema=schema))
                state = "ok" if version == schema.latest else "migration pending"
                if version > schema.latest:
                    state = "newer than this clawrap"
                if version != schema.latest:
                    status = max(status, 1)
                print(
                    f"{store:<10} schema {version} of {schema.latest} ({state}) in {database.where}"
                )
        except SchemaError as exc:
            print(f"clawrap: {store}: {exc}", file=sys.stderr)
            status = max(status, 1)
        except DatabaseError as exc:
            print(f"clawrap: {store}: {exc}", file=sys.stderr)
            return 2
        finally:
            _close(database)
    return status


__all__ = ["db_main"]
