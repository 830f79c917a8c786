"""Soak: clients that walk away at every stage, among normal ones, on every surface.

Run: ``python -m bench.soak [--requests 600] [--drops 200] [--clients 16]``.
clawrap (the real SDK and CLI) and the scripted model run in this process, the
model behind a wrapper counting the Messages API streams still open. Each of
``--clients`` workers takes requests from a shuffled list holding ``--drops``
disconnects (mid-body, while queued, after the response headers, mid-stream,
while a non-streaming answer is pending) and normal requests, on the Chat
Completions, Messages and Responses surfaces, streaming and not. Then it checks
and prints: every normal reply exact; no upstream stream left open; the CLI
processes alive are exactly the ones the pool reports; the server's RSS growth; tracebacks logged.
Linux only (/proc). :func:`soak` is also run, shorter, by the test suite.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from clawrap.claude._backend import ClaudeBackend
from clawrap.cli._server import serve
from clawrap.core._config import Settings
from clawrap.scripted._mock_upstream import MockUpstreamApp
from clawrap.scripted._model import RecordedRequest, Reply, ScriptedModel

KINDS = ("mid_body", "queued", "after_headers", "mid_stream", "non_streaming")
SURFACES = ("openai", "anthropic", "responses")
REPLY = "one two three four five six seven eight nine ten"
LIMIT = 300.0  # per request: a loaded 2-core machine queues long, and a hang must still end


class _UnrecordedModel(ScriptedModel):
    """The scripted model without its record of every request.

    It runs in the soak's own process, so a record kept of thousands of requests would
    show as the server's RSS growth; the soak checks replies and open streams instead.
    """

    def record(self, request: RecordedRequest) -> None:
        pass


class _CountingUpstream:
    """The scripted model's ASGI app, counting ``/v1/messages`` responses in progress."""

    def __init__(self, model: ScriptedModel) -> None:
        self.inner = MockUpstreamApp(model)
        self.open = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") != "/v1/messages":
            await self.inner(scope, receive, send)
            return
        self.open += 1
        try:
            await self.inner(scope, receive, send)
        finally:
            self.open -= 1


class _Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.count += 1
            self.first = self.first or self.format(record)


@dataclass
class SoakResult:
    normal: int = 0
    exact: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    upstream_open: int = 0
    cli_alive: list[int] = field(default_factory=list)
    pool_pids: list[int] = field(default_factory=list)
    rss_growth_kb: int = 0
    tracebacks: int = 0
    first_traceback: str | None = None

    @property
    def ok(self) -> bool:
        return (
            not self.wrong
            and self.exact == self.normal
            and self.upstream_open == 0
            and sorted(self.cli_alive) == sorted(self.pool_pids)
            and self.tracebacks == 0
        )

    def report(self) -> str:
        return "\n".join(
            [
                f"normal requests exact      {self.exact}/{self.normal}",
                f"disconnects                {sum(self.dropped.values())} {self.dropped}",
                f"upstream streams left      {self.upstream_open}",
                f"CLI processes / pool's     {len(self.cli_alive)} / {len(self.pool_pids)}",
                f"RSS growth                 {self.rss_growth_kb / 1024:.1f} MB",
                f"tracebacks                 {self.tracebacks}",
                *(f"wrong: {w}" for w in self.wrong[:5]),
                "PASS" if self.ok else "FAIL",
            ]
        )


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cli_pids() -> list[int]:
    """Live CLI processes under this one (zombies excluded), from /proc."""
    found: list[int] = []
    pending = [os.getpid()]
    while pending:
        pid = pending.pop()
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            for child in children:
                try:
                    stat = Path(f"/proc/{child}/stat").read_text()
                    argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue
                pending.append(child)
                if any(a.endswith(b"/claude") for a in argv if a):
                    found.append(child)
    return found


def _request(surface: str, stream: bool, marker: str) -> bytes:
    if surface == "openai":
        path = "/v1/chat/completions"
        body: dict[str, Any] = {
            "model": "sonnet",
            "stream": stream,
            "messages": [{"role": "user", "content": marker}],
        }
    elif surface == "responses":
        path = "/v1/responses"
        body = {"model": "sonnet", "stream": stream, "store": False, "input": marker}
    else:
        path = "/v1/messages"
        body = {
            "model": "sonnet",
            "max_tokens": 100,
            "stream": stream,
            "messages": [{"role": "user", "content": marker}],
        }
    raw = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Connection: close\r\nContent-Length: {len(raw)}\r\n\r\n"
    ).encode()
    return head + raw


async def _read_until(stream: trio.SocketStream, needle: bytes | None) -> bytes:
    received = bytearray()
    while needle is None or needle not in received:
        chunk = await stream.receive_some()
        if not chunk:
            break
        received += chunk
    return bytes(received)


def _text_of(surface: str, stream: bool, response: bytes) -> str:
    body = response.split(b"\r\n\r\n", 1)[1]
    if b"transfer-encoding: chunked" in response.split(b"\r\n\r\n", 1)[0].lower():
        body = _unchunk(body)
    if not stream:
        obj = json.loads(body)
        if surface == "openai":
            return str(obj["choices"][0]["message"]["content"])
        if surface == "responses":
            return "".join(
                c.get("text", "")
                for item in obj["output"]
                if item.get("type") == "message"
                for c in item["content"]
            )
        return "".join(b.get("text", "") for b in obj["content"])
    parts: list[str] = []
    for line in body.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        if surface == "openai":
            for choice in event.get("choices", []):
                parts.append(choice["delta"].get("content") or "")
        elif surface == "responses":
            if event.get("type") == "response.output_text.delta":
                parts.append(event["delta"])
        elif event.get("type") == "content_block_delta":
            parts.append(event["delta"].get("text", ""))
    return "".join(parts)


def _unchunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


async def _one(port: int, job: tuple[str, str, bool], result: SoakResult, index: int) -> None:
    kind, surface, stream_flag = job
    marker = f"soak-{index} SLOW" if kind in ("mid_stream", "non_streaming") else f"soak-{index}"
    data = _request(surface, stream_flag, marker)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        if kind == "mid_body":
            await stream.send_all(data[: len(data) - 5])
            return
        await stream.send_all(data)
        if kind == "queued":
            return  # gone before any answer, most likely while waiting for a run slot
        if kind == "after_headers":
            await _read_until(stream, b"\r\n\r\n")
            return
        if kind == "mid_stream":
            await _read_until(stream, b"one")
            return
        if kind == "non_streaming":
            with trio.move_on_after(0.2):
                await _read_until(stream, None)
            return
        response = await _read_until(stream, None)
    text = _text_of(surface, stream_flag, response)
    if text == REPLY:
        result.exact += 1
    else:
        result.wrong.append(f"{surface} stream={stream_flag}: {text[:80]!r}")


@asynccontextmanager
async def running_clawrap(
    nursery: trio.Nursery, workdir: Path, **settings: Any
) -> AsyncIterator[tuple[int, _CountingUpstream, ClaudeBackend]]:
    """The scripted model and clawrap (Claude backend) in this process, on loopback."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    model = _UnrecordedModel(Reply(text=REPLY))
    model.when("SLOW", Reply(text=REPLY, delay=0.05))
    upstream = _CountingUpstream(model)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    config.graceful_timeout = 0.5
    app: Any = upstream
    [upstream_url] = await nursery.start(partial(hypercorn_serve, app, config, mode="asgi"))
    config_dir = workdir / "claude"
    config_dir.mkdir(parents=True, exist_ok=True)
    cli_env = {
        "ANTHROPIC_BASE_URL": upstream_url,
        "ANTHROPIC_API_KEY": "sk-scripted",
        "CLAUDE_CONFIG_DIR": str(config_dir),
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    # Queued requests wait rather than get a 429: the soak checks every normal reply.
    settings.setdefault("queue_timeout", LIMIT - 10)
    options = Settings(port=0, data_dir=workdir / "data", upstream_retries=0, **settings)
    backend = ClaudeBackend(options, cli_env=cli_env)
    stop = trio.Event()
    stopped = trio.Event()

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as pool_nursery:
                await backend.start(pool_nursery)
                await serve(
                    options,
                    backend=backend,
                    shutdown_trigger=stop.wait,
                    out=None,
                    task_status=task_status,
                )
        finally:
            stopped.set()

    [url] = await nursery.start(run)
    try:
        yield int(url.rsplit(":", 1)[1]), upstream, backend
    finally:
        stop.set()
        await stopped.wait()


async def soak(
    port: int,
    upstream: _CountingUpstream,
    backend: ClaudeBackend,
    *,
    requests: int,
    drops: int,
    clients: int,
    seed: int = 0,
    progress: Callable[[str], Awaitable[None] | None] | None = None,
) -> SoakResult:
    """Run the mix against a running clawrap and check what it leaves behind."""
    rng = random.Random(seed)
    jobs: list[tuple[str, str, bool]] = []
    for i in range(requests):
        kind = KINDS[i % len(KINDS)] if i < drops else "normal"
        stream = kind in ("mid_stream", "after_headers") or (
            kind in ("normal", "mid_body", "queued") and rng.random() < 0.5
        )
        if kind == "non_streaming":
            stream = False
        jobs.append((kind, SURFACES[i % len(SURFACES)], stream))
    rng.shuffle(jobs)
    result = SoakResult()
    tracebacks = _Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    rss_before = _rss_kb()
    queue = list(enumerate(jobs))
    try:

        async def worker() -> None:
            while queue:
                index, job = queue.pop()
                if job[0] == "normal":
                    result.normal += 1
                else:
                    result.dropped[job[0]] = result.dropped.get(job[0], 0) + 1
                with trio.fail_after(LIMIT):
                    await _one(port, job, result, index)

        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(worker)
        # Dropped requests end on their own: wait (bounded) for the streams and runs to stop.
        with trio.move_on_after(LIMIT):
            while upstream.open or backend.status().get("busy", 0):  # noqa: ASYNC110
                await trio.sleep(0.05)
        result.upstream_open = upstream.open
        result.cli_alive = _cli_pids()
        result.pool_pids = sorted(p.pid for p in backend.pool.count.live if p.pid is not None)
        result.rss_growth_kb = _rss_kb() - rss_before
    finally:
        logging.getLogger().removeHandler(tracebacks)
    result.tracebacks = tracebacks.count
    result.first_traceback = tracebacks.first
    return result


async def _main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="clawrap-soak-") as tmp:
        async with trio.open_nursery() as nursery:
            async with running_clawrap(nursery, Path(tmp), max_concurrency=args.concurrency) as (
                port,
                upstream,
                backend,
            ):
                # Warm up first, so the RSS figure is growth under the soak, not start-up.
                await soak(port, upstream, backend, requests=32, drops=0, clients=args.clients)
                result = await soak(
                    port,
                    upstream,
                    backend,
                    requests=args.requests,
                    drops=args.drops,
                    clients=args.clients,
                    seed=args.seed,
                )
            nursery.cancel_scope.cancel()
    print(result.report())
    if result.first_traceback:
        print(result.first_traceback)
    return 0 if result.ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--drops", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=4, help="CLAWRAP_MAX_CONCURRENCY")
    parser.add_argument("--seed", type=int, default=0)
    return trio.run(_main, parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
