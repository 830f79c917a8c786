"""Raw-socket helpers: the real server with a scripted backend, spoken to byte by byte.

For tests where the bytes on the wire are the point (framing, connection close, slow
clients), not what a client library makes of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio
from scripted_backend import ScriptedBackend

from clawrap.cli._server import serve
from clawrap.core._config import Settings

CHAT = json.dumps(
    {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}, separators=(",", ":")
).encode()


@dataclass
class Wire:
    """A running server reached at ``host``:``port``."""

    host: str
    port: int
    backend: ScriptedBackend
    settings: Settings

    async def connect(self) -> trio.SocketStream:
        return await trio.open_tcp_stream(self.host, self.port)

    async def exchange(self, data: bytes) -> bytes:
        """Send ``data`` on a new connection and read until the server closes it."""
        stream = await self.connect()
        async with stream:
            await stream.send_all(data)
            return await read_to_eof(stream)


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    received = bytearray()
    while True:
        try:
            chunk = await stream.receive_some()
        except trio.BrokenResourceError:
            return bytes(received)
        if not chunk:
            return bytes(received)
        received += chunk


def post(
    path: str = "/v1/chat/completions",
    body: bytes = CHAT,
    *,
    headers: dict[str, str] | None = None,
    version: str = "HTTP/1.1",
) -> bytes:
    """An HTTP/1 POST request's bytes, with Host, Content-Type and Content-Length by default."""
    fields = {
        "Host": "127.0.0.1",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
    }
    fields.update(headers or {})
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v is not None)
    return f"POST {path} {version}\r\n{head}\r\n".encode("latin-1") + body


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def open_files() -> int:
    """File descriptors this process holds."""
    return len(os.listdir("/proc/self/fd"))


@asynccontextmanager
async def wire_server(
    nursery: trio.Nursery, tmp_path: Path, backend: ScriptedBackend, **settings: object
) -> AsyncIterator[Wire]:
    """The real server (hypercorn, the app) serving ``backend``; stopped on exit."""
    stop, stopped = trio.Event(), trio.Event()
    config = Settings(port=0, data_dir=tmp_path / "data", **settings)  # type: ignore[arg-type]

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await serve(
                config,
                backend=backend,
                shutdown_trigger=stop.wait,
                out=None,
                task_status=task_status,
            )
        finally:
            stopped.set()

    [url] = await nursery.start(partial(run))
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        yield Wire(host, int(port), backend, config)
    finally:
        stop.set()
        with trio.fail_after(20):
            await stopped.wait()
