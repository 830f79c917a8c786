"""One HTTP request as route handlers see it, and errors sent back in its route's protocol.

:class:`Call` carries the request, the ASGI channels, the log record and the
protocol shape its errors take: Anthropic's under ``/v1/messages`` (and for
``/v1/models`` asked by a client sending ``anthropic-version``), OpenAI's
elsewhere (:func:`error_shape`). :func:`send_error` renders a
:class:`~clawrap.core._errors.ClawrapError` in that shape with the encoders' own
``error_body``, so errors outside the completion routes look like theirs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from clawrap.accounting._keys import Identity
from clawrap.core._errors import ClawrapError
from clawrap.http._asgi import Receive, Request, Send, retry_after_header, send_json
from clawrap.http._request_log import RequestRecord
from clawrap.protocol.anthropic._encode import error_body as anthropic_error_body
from clawrap.protocol.openai._encode import error_body as openai_error_body

Shape = Literal["openai", "anthropic"]
MODEL_PREFIX = "/v1/models/"


@dataclass(slots=True)
class Call:
    """One HTTP request as the handlers see it."""

    request: Request
    receive: Receive
    send: Send
    record: RequestRecord
    path: str  # the route's canonical path (with /v1)
    shape: Shape
    params: dict[str, str] = field(default_factory=dict)
    route: str | None = None  # the matched route (``/v1/models/{id}``), once routed
    identity: Identity | None = None  # the key it came with, once checked


Handler = Callable[[Call], Awaitable[None]]


def error_shape(path: str, headers: Mapping[str, str]) -> Shape:
    """Which protocol's error shape the canonical ``path`` answers in."""
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return "anthropic"
    if (path == "/v1/models" or path.startswith(MODEL_PREFIX)) and "anthropic-version" in headers:
        return "anthropic"
    return "openai"


def render_error(shape: Shape, error: ClawrapError) -> dict[str, Any]:
    """An HTTP error body in ``shape``: the dialect encoders' own error body."""
    if shape == "anthropic":
        return anthropic_error_body(error)
    return openai_error_body(error)


async def send_error(
    call: Call, error: ClawrapError, headers: list[tuple[str, str]] | None = None
) -> None:
    """Answer ``call`` with ``error`` in its shape; ``headers`` go with ``Retry-After``."""
    call.record.error = error.kind
    extra = [*retry_after_header(error.retry_after), *(headers or [])]
    await send_json(call.send, error.status, render_error(call.shape, error), extra)


__all__ = ["MODEL_PREFIX", "Call", "Handler", "Shape", "error_shape", "render_error", "send_error"]
