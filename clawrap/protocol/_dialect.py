"""What one API surface (OpenAI chat completions, Anthropic messages, ...) provides.

A dialect is a sans-IO decoder/encoder pair around the shared internal request
and event stream. The HTTP exchange (``_exchange.py``) is written once against
these protocols: it decodes, runs the backend, feeds events through the output
limiter, then into a :class:`StreamEncoder` (``stream: true``) or a
:class:`Collector` (a single JSON body), and renders failures with
:meth:`Dialect.error_body`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event
from clawrap.core._request import CompletionRequest


class StreamEncoder(Protocol):
    """Internal events -> SSE bytes for one streamed response."""

    def start(self) -> bytes:
        """Bytes to send right after the headers (may be empty)."""
        ...

    def encode(self, event: Event) -> bytes:
        """Bytes for one event (may be empty: an encoder may hold state)."""
        ...

    def error(self, error: ClawrapError) -> bytes:
        """A mid-stream error in the protocol's shape, plus the stream's terminator."""
        ...

    def finish(self) -> bytes:
        """Everything after the last event: trailing usage chunk, terminator."""
        ...

    def keepalive(self) -> bytes:
        """A no-op the client tolerates (SSE comment or ``ping`` event)."""
        ...


class Collector(Protocol):
    """Internal events -> one JSON response body."""

    def add(self, event: Event) -> None: ...

    def body(self) -> dict[str, Any]: ...


class Dialect(Protocol):
    name: str

    def decode(
        self, body: Any, headers: Mapping[str, str], settings: Settings
    ) -> tuple[CompletionRequest, Any]:
        """Parsed JSON body -> (internal request, wire options the encoders need).

        Raises ClawrapError (400/404) naming the offending ``param``.
        """
        ...

    def stream_encoder(self, request: CompletionRequest, options: Any) -> StreamEncoder: ...

    def collector(self, request: CompletionRequest, options: Any) -> Collector: ...

    def error_body(self, error: ClawrapError) -> dict[str, Any]:
        """The JSON body of an HTTP error response in this protocol's shape."""
        ...


@runtime_checkable
class TokenCounting(Protocol):
    """A dialect that also answers its API's token-counting route."""

    def count_tokens(self, body: Any, settings: Settings) -> dict[str, Any]:
        """The route's JSON answer for a parsed request ``body``; raises ClawrapError (400)."""
        ...


__all__ = ["Collector", "Dialect", "StreamEncoder", "TokenCounting"]
