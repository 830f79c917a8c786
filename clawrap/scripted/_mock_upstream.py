"""The scripted model served over HTTP: a local stand-in for the Anthropic Messages API.

An ASGI app (run by hypercorn's trio worker) that answers ``POST /v1/messages`` from a
:class:`~clawrap.scripted._model.ScriptedModel`, as JSON or as SSE, with the pacing and failures
the reply asks for. Control routes for out-of-process use: ``GET``/``DELETE /_mock/requests``,
``POST``/``DELETE /_mock/rules``. ``clawrap mock-upstream`` runs it standalone.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

from clawrap.protocol._sse import dumps, sse_event
from clawrap.scripted._model import (
    RecordedRequest,
    Reply,
    ScriptedModel,
    error_body,
    estimate_tokens,
    render_error,
    render_message,
    render_stream,
    reply_from_json,
)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 32 * 1024 * 1024


class _BadRequest(Exception):
    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class _Disconnected(Exception):
    """The client left before its request was read: there is no one to answer."""


class MockUpstreamApp:
    """The ASGI app. One instance per server; all state lives in ``model``."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        try:
            raw = await _read_body(receive)
            body = _parse_json(raw) if raw else None
            headers = _headers(scope)
            query = scope.get("query_string", b"").decode("latin-1")
            if path.startswith("/_mock/"):
                await self._control(method, path, body, send)
                return
            self.model.record(RecordedRequest(method, path, headers, body, query))
            if path == "/v1/messages" and method == "POST":
                await self._messages(body, receive, send)
            elif path == "/v1/models" and method == "GET":
                models = self.model.models
                first = models[0]["id"] if models else None
                last = models[-1]["id"] if models else None
                page = {"data": models, "has_more": False, "first_id": first, "last_id": last}
                await _send_json(send, 200, page)
            elif path == "/v1/messages/count_tokens" and method == "POST":
                await _send_json(send, 200, {"input_tokens": estimate_tokens(body)})
            else:
                raise _BadRequest(404, "not_found_error", f"no route for {method} {path}")
        except _Disconnected:
            return
        except _BadRequest as exc:
            await _send_json(send, exc.status, error_body(exc.error_type, exc.message))

    async def _control(self, method: str, path: str, body: Any, send: Send) -> None:
        if path == "/_mock/requests" and method == "GET":
            await _send_json(send, 200, [r.to_json() for r in self.model.requests])
        elif path == "/_mock/requests" and method == "DELETE":
            count = len(self.model.requests)
            self.model.clear_requests()
            await _send_json(send, 200, {"cleared": count})
        elif path == "/_mock/rules" and method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("marker"), str):
                raise _BadRequest(400, "invalid_request_error", "expected {marker, replies}")
            raw = body.get("replies")
            if not isinstance(raw, list) or not raw:
                raise _BadRequest(400, "invalid_request_error", "replies must be a non-empty list")
            try:
                replies = [reply_from_json(r) for r in raw]
                self.model.when(body["marker"], *replies)
            except ValueError as exc:
                raise _BadRequest(400, "invalid_request_error", str(exc)) from None
            await _send_json(send, 200, {"ok": True})
        elif path == "/_mock/rules" and method == "DELETE":
            self.model.clear_rules()
            await _send_json(send, 200, {"ok": True})
        else:
            raise _BadRequest(404, "not_found_error", f"no route for {method} {path}")

    async def _messages(self, body: Any, receive: Receive, send: Send) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise _BadRequest(400, "invalid_request_error", "messages: a list is required")
        try:
            reply = self.model.pick(body)
        except ValueError as exc:
            raise _BadRequest(400, "invalid_request_error", str(exc)) from None
        if reply.is_error:
            await _send_error_reply(send, reply)
            return
        # hypercorn never cancels the app when the client leaves; only receive() tells us.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
            if body.get("stream") is True:
                await _stream(send, reply, body)
            else:
                await _respond_whole(send, reply, body)
            nursery.cancel_scope.cancel()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _BadRequest(413, "request_too_large", "request body too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise _BadRequest(400, "invalid_request_error", "the body is not valid JSON") from None


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _response_start(status: int, content_type: str, extra: list[tuple[bytes, bytes]]) -> Message:
    headers = [(b"content-type", content_type.encode()), (b"request-id", b"req_scripted")]
    return {"type": "http.response.start", "status": status, "headers": headers + extra}


async def _send_json(
    send: Send, status: int, obj: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = dumps(obj).encode()
    headers = [(b"content-length", str(len(data)).encode()), *(extra or [])]
    await send(_response_start(status, "application/json", headers))
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _send_error_reply(send: Send, reply: Reply) -> None:
    await trio.sleep(reply.first_delay)
    extra = []
    if reply.retry_after is not None:
        extra.append((b"retry-after", _seconds(reply.retry_after).encode()))
    await _send_json(send, reply.status, render_error(reply), extra)


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


async def _pace(reply: Reply, deltas_sent: int) -> None:
    await trio.sleep(reply.first_delay if deltas_sent == 0 else reply.delay)


async def _stream(send: Send, reply: Reply, body: dict[str, Any]) -> None:
    await send(_response_start(200, "text/event-stream", [(b"cache-control", b"no-cache")]))
    sent = 0
    for event in render_stream(reply, body):
        if _limit_reached(reply, event.is_delta or event.type == "message_delta", sent):
            if reply.error_after is not None:
                data = render_error(reply)
                await send(
                    {
                        "type": "http.response.body",
                        "body": sse_event("error", data),
                        "more_body": False,
                    }
                )
                return
            if reply.drop_after is not None:
                return  # without the final empty chunk: hypercorn closes the connection
            await trio.sleep_forever()  # stall_after: until the client goes away
        if event.is_delta:
            await _pace(reply, sent)
            sent += 1
        await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _limit_reached(reply: Reply, at_delta_or_end: bool, sent: int) -> bool:
    limit = _limit(reply)
    return limit is not None and at_delta_or_end and sent >= limit


def _limit(reply: Reply) -> int | None:
    limits = [x for x in (reply.stall_after, reply.drop_after, reply.error_after) if x is not None]
    return min(limits) if limits else None


async def _respond_whole(send: Send, reply: Reply, body: dict[str, Any]) -> None:
    message = render_message(reply, body)
    deltas = sum(1 for e in render_stream(reply, body) if e.is_delta)
    limit = _limit(reply)
    shown = deltas if limit is None else min(limit, deltas)
    await trio.sleep(reply.first_delay + reply.delay * max(0, shown - 1) if shown else 0)
    if limit is None:
        await _send_json(send, 200, message)
    elif reply.error_after is not None:
        await _send_json(send, reply.status if reply.is_error else 529, render_error(reply))
    elif reply.drop_after is not None:
        data = dumps(message).encode()
        headers = [(b"content-length", str(len(data)).encode())]
        await send(_response_start(200, "application/json", headers))
        # Half the promised body, then the app returns: the connection is cut mid-body.
        await send(
            {"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True}
        )
    else:
        await trio.sleep_forever()


async def serve_mock_upstream(
    model: ScriptedModel,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``model`` until cancelled; ``task_status.started(port)`` reports the bound port."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    # Bind here rather than through config.bind: hypercorn leaks its socket when bind fails,
    # and binding first gives the caller a plain OSError (e.g. "Address already in use").
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_port: int = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the socket from here on
    config.accesslog = None
    if not log:
        config.errorlog = None
    config.graceful_timeout = 0.5
    app: Any = MockUpstreamApp(model)  # hypercorn's typing wants its TypedDict scopes
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve, app, config, mode="asgi"))
        task_status.started(bound_port)


def mock_upstream_main(argv: list[str]) -> int:
    """``clawrap mock-upstream --port N [--host 127.0.0.1]``: serve the default scripted model."""
    parser = argparse.ArgumentParser(
        prog="clawrap mock-upstream",
        description="Serve clawrap's scripted model (a stand-in for the Anthropic Messages API).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error: argparse has already said why
        return exc.code if isinstance(exc.code, int) else 2

    async def main() -> None:
        model = ScriptedModel()
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                port = await nursery.start(
                    partial(serve_mock_upstream, model, args.host, args.port)
                )
                print(f"scripted model listening on http://{args.host}:{port}", flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    failures: list[OSError] = []
    try:
        trio.run(main)
    except* OSError as group:  # e.g. the port is taken: say so, without a traceback
        failures.extend(_leaves(group))
    if failures:
        first = failures[0]
        print(f"clawrap mock-upstream: {first.strerror or first}", file=sys.stderr)
        return 1
    return 0


def _leaves(group: BaseExceptionGroup[OSError]) -> list[OSError]:
    out: list[OSError] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


__all__ = ["MockUpstreamApp", "mock_upstream_main", "serve_mock_upstream"]
