"""Small ASGI helpers: a request view, body reading with a hard limit, JSON in and out, SSE start.

Everything here speaks raw ASGI messages (dicts) so the app needs no framework.
Failures a client may cause (a body too large, malformed JSON) are raised as
:class:`~clawrap.core._errors.ClawrapError` carrying the status they become; a client
that leaves while its body is being read raises :class:`ClientDisconnected`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from clawrap.core._errors import ClawrapError, invalid_request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_TYPE = b"application/json"

SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Proxies such as nginx buffer responses unless told not to; a buffered stream is no stream.
    (b"x-accel-buffering", b"no"),
)


class ClientDisconnected(Exception):
    """The client closed the connection before its request body was complete."""


@dataclass(frozen=True, slots=True)
class Request:
    """What the router needs of an ASGI ``http`` scope.

    ``headers`` has lowercase names; a repeated header's values are joined with
    ``", "`` as HTTP allows. ``client`` is ``"host:port"`` or None.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    client: str | None

    @classmethod
    def from_scope(cls, scope: Scope) -> Request:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers") or ():
            # latin-1 maps every byte to one character: hostile bytes cannot raise here.
            name = bytes(raw_name).decode("latin-1").lower()
            value = bytes(raw_value).decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        client = scope.get("client")
        return cls(
            method=str(scope.get("method", "GET")).upper(),
            path=str(scope.get("path", "/")),
            query=bytes(scope.get("query_string", b"")).decode("latin-1"),
            headers=headers,
            client=f"{client[0]}:{client[1]}" if client else None,
        )


def too_large(limit: int) -> ClawrapError:
    return ClawrapError(
        "request_too_large",
        f"The request body is larger than the limit of {limit} bytes.",
        code="request_too_large",
    )


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """The whole request body, refusing anything over ``limit`` bytes.

    A declared ``content-length`` over the limit is refused before reading; the
    bytes actually received are counted too, so a chunked body (or a lying
    ``content-length``) is refused as soon as it passes the limit.
    Raises ClawrapError 413/400, or ClientDisconnected.
    """
    declared = headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared.strip())
        except ValueError:
            raise invalid_request("The content-length header is not a number.") from None
        if length < 0:
            raise invalid_request("The content-length header is negative.")
        if length > limit:
            raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "http.disconnect":
            raise ClientDisconnected
        if kind != "http.request":
            continue
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """Strict JSON (no NaN/Infinity, UTF-8 only, no lone surrogate escapes). Raises a 400
    on anything malformed, naming the field that holds a lone surrogate."""
    if not body.strip():
        raise invalid_request("The request body is empty; a JSON object was expected.")
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise invalid_request("The request body is not valid UTF-8.") from None
    except RecursionError:
        raise invalid_request("The request body is nested too deeply.") from None
    except ValueError as exc:
        # json.JSONDecodeError carries a position that helps the client; nothing internal.
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise invalid_request(f"The request body is not valid JSON{where}.") from None
    if _SURROGATE_ESCAPE.search(body):
        field = _lone_surrogate(value)
        if field is not None:
            raise invalid_request(
                f"'{field}' holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without "
                "its pair), which is not a Unicode character.",
                param=field,
            )
    return value


# An escape of a UTF-16 surrogate; json.loads joins a proper pair into one character and
# leaves a lone one in the string, where it fails every later encoding (hashes, the CLI).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _lone_surrogate(value: Any) -> str | None:
    """The path (``messages[0].content``) of the first string or key holding a lone
    surrogate, or None. Iterative: a deeply nested body cannot exhaust the stack."""
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return path or "body"
        elif isinstance(item, dict):
            for key, inner in item.items():
                where = f"{path}.{key}" if path else str(key)
                if not _encodable(key):
                    return path or "body"
                pending.append((where, inner))
        elif isinstance(item, list):
            pending.extend((f"{path}[{i}]", inner) for i, inner in enumerate(item))
    return None


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Like :func:`parse_json`, and the top level must be an object."""
    value = parse_json(body)
    if not isinstance(value, dict):
        raise invalid_request(f"The request body must be a JSON object, not {_json_type(value)}.")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def dump_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON for response bodies."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def header_pairs(headers: Iterable[tuple[str, str]]) -> Headers:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def retry_after_header(seconds: float | None) -> list[tuple[str, str]]:
    """``retry-after`` in whole seconds (rounded up), or nothing."""
    if seconds is None:
        return []
    return [("retry-after", str(max(1, math.ceil(seconds))))]


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """A complete response with a known body."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *header_pairs(headers),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_json(
    send: Send, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()
) -> None:
    await send_bytes(send, status, dump_json(obj), JSON_TYPE, headers)


async def start_sse(send: Send, headers: Iterable[tuple[str, str]] = ()) -> None:
    """Headers of a 200 server-sent-events response; the body follows in chunks."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*SSE_HEADERS, *header_pairs(headers)],
        }
    )


async def send_chunk(send: Send, data: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


__all__ = [
    "SSE_HEADERS",
    "ClientDisconnected",
    "Headers",
    "Message",
    "Receive",
    "Request",
    "Scope",
    "Send",
    "dump_json",
    "header_pairs",
    "parse_json",
    "parse_json_object",
    "read_body",
    "retry_after_header",
    "send_bytes",
    "send_chunk",
    "send_json",
    "start_sse",
    "too_large",
]
