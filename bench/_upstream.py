"""The scripted model for the benchmark: clawrap's mock upstream, plus a tally of its streams.

``python -m bench._upstream --port N`` serves exactly what ``clawrap mock-upstream`` serves
(the same :class:`~clawrap.scripted._mock_upstream.MockUpstreamApp`), and counts
``POST /v1/messages`` exchanges: how many are open now, how many ended with their last byte
sent ("completed"), and how many ended because the caller went away first ("cut").
``GET /_bench/streams`` reports the tally; ``DELETE /_bench/streams`` zeroes the finished
counts. This is how the benchmark tells a CLI process still generating a reply for a vanished
client from one sitting idle and warm.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import trio

from clawrap.scripted._mock_upstream import MockUpstreamApp
from clawrap.scripted._model import ScriptedModel

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TALLY_PATH = "/_bench/streams"


@dataclass
class StreamTally:
    open: int = 0
    completed: int = 0
    cut: int = 0


class TallyApp:
    """Wraps the mock upstream app; counts its Messages exchanges by how they ended."""

    def __init__(self, inner: MockUpstreamApp) -> None:
        self.inner = inner
        self.tally = StreamTally()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
        elif scope["path"] == TALLY_PATH:
            await self._report(scope["method"], send)
        elif scope["path"] == "/v1/messages" and scope["method"] == "POST":
            await self._counted(scope, receive, send)
        else:
            await self.inner(scope, receive, send)

    async def _counted(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        finished = False

        async def watching_send(message: Message) -> None:
            nonlocal finished
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        self.tally.open += 1
        try:
            await self.inner(scope, receive, watching_send)
        finally:
            self.tally.open -= 1
            if finished:
                self.tally.completed += 1
            else:
                self.tally.cut += 1

    async def _report(self, method: str, send: Send) -> None:
        if method == "DELETE":
            self.tally.completed = self.tally.cut = 0
        data = json.dumps(asdict(self.tally)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data, "more_body": False})


async def serve(port: int) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    bound = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.5
    app: Any = TallyApp(MockUpstreamApp(ScriptedModel()))
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(hypercorn_serve, app, config)
            print(f"scripted model listening on http://127.0.0.1:{bound}", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._upstream")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        trio.run(serve, args.port)
    except OSError as exc:
        print(f"bench upstream: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
