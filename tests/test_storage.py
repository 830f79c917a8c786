"""The storage layer: migrations on both engines, an old ledger file adopted with its rows,
``clawrap db migrate`` / ``check``, and ``/health``'s readiness on the store."""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from bench._pg import PgServer
from clawrap.accounting._ledger import SCHEMA as USAGE_SCHEMA
from clawrap.accounting._ledger import Ledger
from clawrap.cli._main import main
from clawrap.core._events import Usage
from clawrap.http._readiness import READY_LIMIT, store_readiness
from clawrap.sessions._session_sql import SCHEMA as SESSION_SCHEMA
from clawrap.storage._database import Database, DatabaseError, SqliteDatabase
from clawrap.storage._migrations import Migration, Schema, SchemaError, migrate, schema_version


async def test_migrations_apply_once_and_record_their_version(database: Database) -> None:
    assert await database.run(partial(schema_version, schema=SESSION_SCHEMA)) == 0
    assert await database.run(partial(migrate, schema=SESSION_SCHEMA)) == (0, 1)
    assert await database.run(partial(migrate, schema=SESSION_SCHEMA)) == (1, 1)
    assert await database.run(partial(schema_version, schema=SESSION_SCHEMA)) == 1


async def test_an_upgrade_adds_its_step_and_keeps_the_data(database: Database) -> None:
    v1_sql = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"
    v1 = Migration(1, v1_sql, v1_sql)
    v2_sql = "ALTER TABLE notes ADD COLUMN tag TEXT"
    old, new = Schema("notes", (v1,)), Schema("notes", (v1, Migration(2, v2_sql, v2_sql)))
    await database.run(partial(migrate, schema=old))
    await database.run(lambda c: c.execute("INSERT INTO notes (id, body) VALUES (1, 'kept')"))
    assert await database.run(partial(migrate, schema=new)) == (1, 2)
    row = await database.run(lambda c: c.execute("SELECT body, tag FROM notes").fetchone())
    assert tuple(row) == ("kept", None)
    # Going back is refused, not misread.
    with pytest.raises(SchemaError, match="newer clawrap"):
        await database.run(partial(migrate, schema=old))


async def test_a_ledger_file_from_before_versions_is_adopted_with_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.sqlite3"
    with sqlite3.connect(path) as raw:
        raw.execute(
            "CREATE TABLE usage (key TEXT NOT NULL, model TEXT NOT NULL, day TEXT NOT NULL, "
            "requests INTEGER NOT NULL DEFAULT 0, input_tokens INTEGER NOT NULL DEFAULT 0, "
            "output_tokens INTEGER NOT NULL DEFAULT 0, cache_read_tokens INTEGER NOT NULL "
            "DEFAULT 0, cache_write_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL "
            "DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (key, day, model)) "
            "WITHOUT ROWID"
        )
        raw.execute(
            "INSERT INTO usage VALUES ('alice', 'sonnet', '2026-01-02', 3, 30, 9, 0, 0, 0.5, 0)"
        )
    ledger = await Ledger.open(SqliteDatabase.connect(str(path)), owned=True)
    try:
        await ledger.record("alice", "sonnet", "2026-01-02", Usage(5, 1), False)
        [row] = await ledger.rows()
        assert (row.requests, row.input_tokens, row.output_tokens) == (4, 35, 10)
        assert await ledger.database.run(partial(schema_version, schema=USAGE_SCHEMA)) == 1
    finally:
        await ledger.aclose()


async def test_db_check_and_migrate_on_postgres(
    pg: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await trio.to_thread.run_sync(pg.create_database)
    assert await trio.to_thread.run_sync(main, ["db", "check", "--url", url]) == 1
    assert "migration pending" in capsys.readouterr().out
    assert await trio.to_thread.run_sync(main, ["db", "migrate", "--url", url]) == 0
    assert "migrated 0 -> 1" in capsys.readouterr().out
    assert await trio.to_thread.run_sync(main, ["db", "check", "--url", url]) == 0
    out = capsys.readouterr().out
    assert out.count("(ok)") == 3 and "postgres@" in out


async def test_db_check_names_an_unreachable_server_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused at once
        url = f"postgresql://clawrap:hunter2@127.0.0.1:{port}/clawrap"
        assert await trio.to_thread.run_sync(main, ["db", "check", "--url", url]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the database postgresql://clawrap:***@127.0.0.1" in err
    assert "hunter2" not in err


async def test_health_is_ready_only_while_the_store_answers(tmp_path: Path) -> None:
    database = SqliteDatabase.connect(str(tmp_path / "s.sqlite3"))
    assert await store_readiness([database, database]) == (200, {"status": "ok"})
    await database.aclose()
    assert await store_readiness([database]) == (
        503,
        {"status": "unavailable", "reason": "store_unreachable"},
    )


class Stuck(Database):
    dialect = "postgres"
    where = "stuck"

    async def ping(self) -> None:
        await trio.sleep_forever()

    async def aclose(self) -> None:
        pass


async def test_health_answers_503_in_bounded_time_when_the_store_hangs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    started = trio.current_time()
    status, body = await store_readiness([Stuck()])
    assert (status, body["reason"]) == (503, "store_timeout")
    assert trio.current_time() - started == pytest.approx(READY_LIMIT)


def test_a_database_error_names_where_and_why() -> None:
    error = DatabaseError("/x/usage.sqlite3", "disk I/O error")
    assert str(error) == "/x/usage.sqlite3: disk I/O error"
