"""The Responses API's WebSocket mode: ``response.create`` messages on ``/v1/responses``.

Served by hypercorn's own ASGI WebSocket on the server's port, so the Host, Origin and
API key checks run before the upgrade is accepted (a refusal is an HTTP error in
OpenAI's shape when the server can send one, else a close). On the socket, each
``{"type": "response.create", ...}`` message (the request's fields beside ``type``)
runs as one streamed response through the same route as HTTP, and its events go out
as JSON text messages; errors as ``{"type": "error", "status", "error": {...}}``.
One response runs at a time; messages that arrive meanwhile wait their turn (a few
at most). The socket keeps its last response in memory even with ``store: false``,
so continuing it with ``previous_response_id`` and only the new items always works.
Closing the socket mid-response stops the run as an HTTP disconnect does.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import Any

import trio

from clawrap.accounting._keys import Identity, KeyRing
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError, invalid_request
from clawrap.http import _security as security
from clawrap.http._asgi import Message, Receive, Request, Scope, Send, dump_json, too_large
from clawrap.http._drain import draining_error
from clawrap.http._proxies import TrustedProxies
from clawrap.http._request_log import RequestRecord, log_request, request_id
from clawrap.http._responses_routes import ResponsesRoutes, SocketMemory
from clawrap.protocol.openai._encode import error_object

logger = logging.getLogger("clawrap.responses")

ROUTE = "/v1/responses"
MAX_WAITING = 4  # response.create messages queued behind the running one
_DENIAL = "websocket.http.response"


def error_message(error: ClawrapError) -> dict[str, Any]:
    """An error as a WebSocket message."""
    return {"type": "error", "status": error.status, "error": error_object(error)}


class _Socket:
    """One accepted socket: reads client messages, writes events."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.closed = False
        self.waiting: deque[str] = deque()

    async def next_text(self) -> str | None:
        """The next text (or UTF-8 bytes) message, None once the client is gone."""
        if self.waiting:
            return self.waiting.popleft()
        while not self.closed:
            message = await self._receive()
            text = self._text(message)
            if text is not None:
                return text
        return None

    def _text(self, message: Message) -> str | None:
        kind = message.get("type")
        if kind == "websocket.disconnect":
            self.closed = True
            return None
        if kind != "websocket.receive":
            return None
        if message.get("text") is not None:
            return str(message["text"])
        data = message.get("bytes")
        return bytes(data).decode("utf-8", "replace") if data is not None else None

    async def send_json(self, obj: Any) -> None:
        if self.closed:
            return
        try:
            await self._send({"type": "websocket.send", "text": dump_json(obj).decode()})
        except Exception:  # the server reports a write to a closed socket as an error
            self.closed = True

    async def exchange_receive(self) -> Message:
        """The exchange's ``receive``: a disconnect once the socket closes."""
        while not self.closed:
            text = self._text(await self._receive())
            if text is not None:
                if len(self.waiting) >= MAX_WAITING:
                    error = invalid_request(
                        "Too many response.create messages while a response runs.",
                        code="too_many_waiting",
                    )
                    await self.send_json(error_message(error))
                else:
                    self.waiting.append(text)
        return {"type": "http.disconnect"}


class _EventWriter:
    """The exchange's ``send``: SSE frames in, one JSON message per event out."""

    def __init__(self, socket: _Socket) -> None:
        self.socket = socket
        self.status = 200
        self.buffer = b""

    async def __call__(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            self.status = int(message.get("status", 200))
            return
        if kind != "http.response.body":
            return
        self.buffer += bytes(message.get("body", b""))
        if self.status != 200:
            if not message.get("more_body", False):
                await self._error_body()
            return
        *frames, self.buffer = self.buffer.split(b"\n\n")
        for frame in frames:
            for line in frame.split(b"\n"):
                if line.startswith(b"data: "):
                    await self.socket.send_json(json.loads(line[6:]))

    async def _error_body(self) -> None:
        try:
            error = json.loads(self.buffer).get("error", {})
        except (ValueError, AttributeError):
            error = {"message": "The request failed.", "type": "api_error"}
        await self.socket.send_json({"type": "error", "status": self.status, "error": error})


def _identity(
    settings: Settings, keys: KeyRing, request: Request, path: str
) -> Identity | ClawrapError:
    """Who opens the socket, or why it is refused (Host, Origin, route, key)."""
    headers = request.headers
    refusal = security.check_host(settings, headers) or security.check_origin(settings, headers)
    if refusal is not None:
        return refusal
    if path != ROUTE:
        return ClawrapError(
            "not_found", f"No WebSocket is served at {path[:200]}; use {ROUTE}.", code="unknown_url"
        )
    return security.authenticate(keys, settings, "GET", ROUTE, headers)


async def serve_socket(
    scope: Scope, receive: Receive, send: Send, *, settings: Settings, keys: KeyRing,
    routes: ResponsesRoutes, path: str, shutdown: trio.Event,
    proxies: TrustedProxies | None = None,
) -> None:  # fmt: skip
    """Serve one WebSocket connection on ``path`` (canonical, with ``/v1``) until the client
    closes it or, between responses, the server shuts down. ``keys``: the server's API keys;
    each response runs as the key the socket was opened with. ``shutdown``: the server
    is draining (or stopping); ``proxies``: whose forwarding headers to believe."""
    request = Request.from_scope(scope)
    if proxies is not None:
        request = proxies.apply(request, scope)
    first = await receive()
    if first.get("type") != "websocket.connect":
        return
    identity = _identity(settings, keys, request, path)
    if shutdown.is_set() and not isinstance(identity, ClawrapError):
        identity = draining_error()  # a new socket while draining: refused at the handshake
    if isinstance(identity, ClawrapError):
        refusal = identity
        record = RequestRecord("WEBSOCKET", request.path, request_id(None))
        record.status, record.error = refusal.status, refusal.kind
        log_request(record)
        if _DENIAL in (scope.get("extensions") or {}):
            denial = dump_json({"error": error_object(refusal)})
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": refusal.status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": denial})
        else:
            await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    socket = _Socket(receive, send)
    memory = SocketMemory()
    while True:
        text = await _between_responses(socket, shutdown)
        if text is None:
            if not socket.closed:
                await send({"type": "websocket.close", "code": 1001})
            return
        record = RequestRecord("WEBSOCKET", request.path, request_id(None))
        try:
            if len(text) > settings.max_body_bytes:
                raise too_large(settings.max_body_bytes)
            body = _create_body(text)
        except ClawrapError as error:
            record.status, record.error = error.status, error.kind
            log_request(record)
            await socket.send_json(error_message(error))
            continue
        try:
            await routes.respond(
                body,
                request.headers,
                socket.exchange_receive,
                _EventWriter(socket),
                record,
                identity,
                memory,
            )
        finally:
            log_request(record)


async def _between_responses(socket: _Socket, shutdown: trio.Event) -> str | None:
    """The next message, or None when the client left or the server is shutting down."""
    text: str | None = None
    async with trio.open_nursery() as nursery:

        async def stop_on_shutdown() -> None:
            await shutdown.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(stop_on_shutdown)
        text = await socket.next_text()
        nursery.cancel_scope.cancel()
    return text


def _create_body(text: str) -> dict[str, Any]:
    """A ``response.create`` message -> the request body (always streamed)."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise invalid_request("The message is not valid JSON.") from None
    if not isinstance(message, dict) or message.get("type") != "response.create":
        raise invalid_request("Send messages of type 'response.create'.", param="type")
    nested = message.get("response")
    body = dict(nested) if isinstance(nested, dict) else {}
    body |= {k: v for k, v in message.items() if k not in ("type", "response")}
    body["stream"] = True
    return body


__all__ = ["MAX_WAITING", "error_message", "serve_socket"]
