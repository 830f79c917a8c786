"""Fixtures that run a store's tests on both engines: SQLite and a real PostgreSQL.

``pg_server``: one PostgreSQL server per test session (:mod:`pg_server`), always
stopped at the end; the tests that need it skip, saying why, where its binaries
cannot be installed. ``database``: a fresh, empty database of each engine in turn
(a new SQLite file; a new database on the session's server), closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from bench import _pg as pg_server
from clawrap.storage._database import Database, SqliteDatabase

ENGINES = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg() -> Iterator[pg_server.PgServer]:
    reason = pg_server.unavailable()
    if reason is not None:
        pytest.skip(reason)
    server = pg_server.start()
    try:
        yield server
    finally:
        server.stop()


async def open_engine(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path, name: str = "db.sqlite3"
) -> Database:
    """A fresh database of ``engine`` (a file under ``tmp_path``, or one on the server)."""
    if engine == "sqlite":
        return SqliteDatabase.connect(str(tmp_path / name))
    server: pg_server.PgServer = request.getfixturevalue("pg")
    from clawrap.storage._postgres import PostgresDatabase

    url = await trio.to_thread.run_sync(server.create_database)
    return await trio.to_thread.run_sync(PostgresDatabase.connect, url, 4)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Database]:
    db = await open_engine(engine, request, tmp_path)
    try:
        yield db
    finally:
        await db.aclose()
