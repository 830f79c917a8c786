"""Test doubles for the HTTP layer: an ASGI client over memory channels and a tiny dialect.

The client speaks to an ASGI app the way hypercorn does: the body as
``http.request`` messages, then ``receive()`` blocks until the test calls
:meth:`AsgiCall.disconnect`, which delivers ``http.disconnect``.
The fake dialect turns events into readable lines, so tests assert on behaviour
of the exchange without depending on the real protocol encoders.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError, invalid_request
from clawrap.core._events import Event, Finished, TextDelta, Usage
from clawrap.core._request import CompletionRequest, ResponseFormat, TextPart, Turn

Message = dict[str, Any]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    chunks: list[bytes] = field(default_factory=list)
    complete: bool = False

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def http_scope(
    method: str, path: str, headers: Mapping[str, str] | None = None, query: bytes = b""
) -> Message:
    # JSON routes take only bodies declared as JSON, as every API client sends them.
    declared = {"content-type": "application/json"} if method == "POST" else {}
    all_headers = {"host": "127.0.0.1:8000", **declared, **(headers or {})}
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.1"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class AsgiCall:
    """One request in flight against an ASGI app."""

    def __init__(self, body_messages: Sequence[Message]) -> None:
        self._to_app, self._app_inbox = trio.open_memory_channel[Message](math.inf)
        self._outbox, self._from_app = trio.open_memory_channel[Message](math.inf)
        for message in body_messages:
            self._to_app.send_nowait(message)
        self.sent: list[Message] = []
        self.finished = trio.Event()
        self.response: Response | None = None
        self._got = trio.Event()

    async def receive(self) -> Message:
        return await self._app_inbox.receive()

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.start":
            headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
            self.response = Response(message["status"], headers)
        elif message["type"] == "http.response.body":
            assert self.response is not None, "body before response start"
            assert not self.response.complete, "body after the end of the response"
            if message.get("body"):
                self.response.chunks.append(bytes(message["body"]))
            if not message.get("more_body", False):
                self.response.complete = True
        self._got.set()
        self._got = trio.Event()

    def disconnect(self) -> None:
        self._to_app.send_nowait({"type": "http.disconnect"})

    async def wait_for_body(self, needle: bytes) -> None:
        """Wait until the response body contains ``needle``."""
        while self.response is None or needle not in self.response.body:
            await self._got.wait()

    async def wait_for_start(self) -> Response:
        while self.response is None:
            await self._got.wait()
        return self.response


def body_messages(body: bytes, chunks: int = 1) -> list[Message]:
    if chunks <= 1:
        return [{"type": "http.request", "body": body, "more_body": False}]
    size = max(1, math.ceil(len(body) / chunks))
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    messages: list[Message] = [
        {"type": "http.request", "body": p, "more_body": True} for p in parts
    ]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    return messages


async def call(
    app: Any,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    chunks: int = 1,
) -> Response:
    """Run one request to the end and return its response."""
    raw = (
        body if body is not None else (b"" if json_body is None else json.dumps(json_body).encode())
    )
    all_headers = dict(headers or {})
    if chunks <= 1 and raw:
        all_headers.setdefault("content-length", str(len(raw)))
    asgi = AsgiCall(body_messages(raw, chunks))
    with trio.fail_after(30):
        await app(http_scope(method, path, all_headers), asgi.receive, asgi.send)
    assert asgi.response is not None, "the app sent no response"
    assert asgi.response.complete, "the app returned before ending the response"
    return asgi.response


async def start_call(
    nursery: trio.Nursery,
    app: Any,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> AsgiCall:
    """Start a request in ``nursery`` and return it while it runs."""
    raw = b"" if json_body is None else json.dumps(json_body).encode()
    asgi = AsgiCall(body_messages(raw))

    async def run() -> None:
        await app(http_scope(method, path, headers), asgi.receive, asgi.send)
        asgi.finished.set()

    nursery.start_soon(run)
    return asgi


# -- a dialect small enough to read -----------------------------------------------------------


class FakeEncoder:
    def start(self) -> bytes:
        return b"start\n"

    def encode(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            return f"text {event.text}\n".encode()
        if isinstance(event, Usage):
            return f"usage {event.input_tokens} {event.output_tokens}\n".encode()
        if isinstance(event, Finished):
            return f"finish {event.reason}\n".encode()
        return f"{type(event).__name__}\n".encode()

    def error(self, error: ClawrapError) -> bytes:
        return f"error {error.kind} {error.message}\nend\n".encode()

    def finish(self) -> bytes:
        return b"end\n"

    def keepalive(self) -> bytes:
        return b": keepalive\n"


class FakeCollector:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, event: Event) -> None:
        self.events.append(event)

    def body(self) -> dict[str, Any]:
        text = "".join(e.text for e in self.events if isinstance(e, TextDelta))
        finish = [e.reason for e in self.events if isinstance(e, Finished)]
        usage = [e.output_tokens for e in self.events if isinstance(e, Usage)]
        return {"text": text, "finish": finish, "usage": usage}


class FakeDialect:
    """Body: ``{"text": str, "stream": bool, "model": str, "stop": [...], "json": bool}``."""

    name = "fake"

    def decode(
        self, body: Any, headers: Mapping[str, str], settings: Settings
    ) -> tuple[CompletionRequest, Any]:
        if not isinstance(body.get("text", ""), str):
            raise invalid_request("'text' must be a string.", param="text")
        request = CompletionRequest(
            model=body.get("model", "sonnet"),
            requested_model=body.get("model", "sonnet"),
            turns=(Turn("user", (TextPart(body.get("text", "hi")),)),),
            stream=bool(body.get("stream", False)),
            stop=tuple(body.get("stop", ())),
            max_output_tokens=body.get("max_tokens"),
            response_format=ResponseFormat("json_object") if body.get("json") else None,
        )
        return request, None

    def stream_encoder(self, request: CompletionRequest, options: Any) -> FakeEncoder:
        return FakeEncoder()

    def collector(self, request: CompletionRequest, options: Any) -> FakeCollector:
        return FakeCollector()

    def error_body(self, error: ClawrapError) -> dict[str, Any]:
        return {"error": {"kind": error.kind, "message": error.message, "code": error.code}}


def simple_request(*, stream: bool = False, stop: Sequence[str] = ()) -> CompletionRequest:
    return CompletionRequest(
        model="sonnet",
        requested_model="sonnet",
        turns=(Turn("user", (TextPart("hi"),)),),
        stream=stream,
        stop=tuple(stop),
    )
