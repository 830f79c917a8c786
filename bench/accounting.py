"""What keys, limits, the usage ledger and the metrics cost on the hot path of a request.

Run: ``python -m bench.accounting [--requests 2000] [--rounds 3]``.
One process, one run: the real ASGI app and OpenAI dialect, driven in memory (no
sockets) with a backend that answers at once (a text delta, usage, finish), so
nothing but clawrap's own work is timed. Two configurations alternate round by
round: accounting off (a stand-in that admits everything and records nothing)
and on (a key with a per-minute window, a concurrency limit and USD ceilings, so
each request hits the window, reads its spend from the ledger, writes its row to
an on-disk SQLite ledger and updates the metrics). Printed: requests per second
and the median and p95 time to the first body chunk, for each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from clawrap.accounting._accountant import Accountant, Run
from clawrap.accounting._keys import Identity, KeyRing, add_key
from clawrap.accounting._ledger import Ledger
from clawrap.accounting._metrics import Metrics
from clawrap.core._backend import EventSink, HaltSignal
from clawrap.core._config import Settings
from clawrap.core._events import Finished, TextDelta, Usage
from clawrap.core._request import CompletionRequest
from clawrap.http._app import create_app
from clawrap.storage._database import SqliteDatabase

BODY = json.dumps(
    {"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
).encode()


class InstantBackend:
    async def run(self, request: CompletionRequest, events: EventSink, halt: HaltSignal) -> None:
        await events.send(TextDelta("hello"))
        await events.send(Usage(10, 2, cost_usd=0.0001))
        await events.send(Finished("end_turn"))

    async def aclose(self) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"warm": 1, "busy": 0, "parked": 0, "starting": 0, "spawned": 1}


class _NoMetrics(Metrics):
    def request_done(self, *args: Any, **kwargs: Any) -> None:
        return None

    def run_finished(self, *args: Any, **kwargs: Any) -> None:
        return None

    def queued(self, seconds: float) -> None:
        return None


class _NoRun(Run):
    async def finish(self, *args: Any, **kwargs: Any) -> None:
        self.finished = True


class AccountingOff(Accountant):
    """Admits everything, records nothing."""

    async def admit(self, identity: Identity, models: tuple[str, ...], *, agent: bool) -> Run:
        return _NoRun(self, identity, models[0], None)


async def one_request(
    app: Any, key: str, *, body: bytes = BODY, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> float:
    """Seconds to the first body chunk of one streamed completion (``body``), sent in memory
    to the ASGI ``app`` with ``key`` and ``headers``; anything but a 200 stops the bench."""
    start = time.perf_counter()
    first: float | None = None
    sent = False
    done = trio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal first
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"the benchmark's request was answered {message['status']}")
        if message["type"] == "http.response.body":
            if first is None and message.get("body"):
                first = time.perf_counter() - start
            if not message.get("more_body"):
                done.set()

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            *headers,
        ],
    }
    await app(scope, receive, send)
    assert first is not None
    return first


async def measure(app: Any, key: str, requests: int) -> tuple[float, list[float]]:
    firsts: list[float] = []
    start = time.perf_counter()
    for _ in range(requests):
        firsts.append(await one_request(app, key))
    return requests / (time.perf_counter() - start), firsts


async def main(requests: int, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="clawrap-bench-"))
    keys = tmp / "keys.toml"
    key = add_key(
        keys,
        "bench",
        requests_per_minute=10**9,
        concurrent_runs=100,
        usd_per_day=10**6,
        usd_per_month=10**6,
    )
    settings = Settings(keys_file=str(keys), data_dir=tmp)
    ring = KeyRing.load(None, keys)
    on_ledger = await Ledger.open(SqliteDatabase.connect(str(tmp / "usage.sqlite3")), owned=True)
    apps = {
        "off": create_app(
            settings,
            InstantBackend(),
            accountant=AccountingOff(ring, Ledger(), clock=trio.current_time, metrics=_NoMetrics()),
        ),
        "on": create_app(
            settings,
            InstantBackend(),
            accountant=Accountant(ring, on_ledger, clock=trio.current_time),
        ),
    }
    results: dict[str, list[tuple[float, list[float]]]] = {"off": [], "on": []}
    for app in apps.values():
        await measure(app, key, 200)  # warm up
    for _ in range(rounds):
        for name, app in apps.items():
            results[name].append(await measure(app, key, requests))
    print(f"{requests} streamed completions per round, {rounds} rounds, in-process ASGI")
    print(f"{'accounting':<12}{'req/s':>10}{'first p50 us':>15}{'first p95 us':>15}")
    for name, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        firsts = sorted(f for _, fs in runs for f in fs)
        p50 = firsts[len(firsts) // 2] * 1e6
        p95 = firsts[int(len(firsts) * 0.95)] * 1e6
        print(f"{name:<12}{rate:>10.0f}{p50:>15.0f}{p95:>15.0f}")
    rows = await on_ledger.rows()
    print(f"ledger rows: {len(rows)}, requests recorded: {sum(r.requests for r in rows)}")
    await on_ledger.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trio.run(main, args.requests, args.rounds)
