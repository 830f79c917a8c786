"""Writing an exchange's response: a stream of chunks or one body, and its end or error.

Headers of a stream go out with the first chunk (or the first keep-alive), so a
failure before any output becomes a real HTTP status in the dialect's error
shape; after that, a failure becomes the encoder's error event and terminator.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event
from clawrap.core._request import CompletionRequest
from clawrap.http._asgi import Send, retry_after_header, send_chunk, send_json, start_sse
from clawrap.protocol._dialect import Collector, Dialect, StreamEncoder


class ResponseWriter:
    """The response of one exchange, in ``dialect``'s shape, written to ``send``."""

    def __init__(self, send: Send, dialect: Dialect) -> None:
        self.send = send
        self.dialect = dialect
        self.encoder: StreamEncoder | None = None
        self.collector: Collector | None = None
        self.headers_sent = False
        self.responded = False  # the last part of the response is being sent
        self.headers: list[tuple[str, str]] = []  # added to a successful response's
        self._request: CompletionRequest | None = None
        self._options: Any = None

    def begin(self, request: CompletionRequest, options: Any) -> None:
        """Stream the reply when ``request`` asks for it, else collect it into one body."""
        self._request, self._options = request, options
        if request.stream:
            self.encoder = self.dialect.stream_encoder(request, options)
        else:
            self.collector = self.dialect.collector(request, options)

    def answered_by(self, model: str) -> None:
        """The model that answers (a fallback, perhaps): named in the ``x-clawrap-model``
        header and, when nothing is out yet, in the body's ``model`` field."""
        options = self._options
        current = getattr(options, "model", None)
        if (
            model != current
            and not self.headers_sent
            and dataclasses.is_dataclass(options)
            and not isinstance(options, type)
            and self._request is not None
        ):
            self.begin(self._request, dataclasses.replace(options, model=model))
            current = model
        self.headers = [("x-clawrap-model", str(current or model))]

    async def add(self, event: Event) -> None:
        """An event of the reply: encoded and sent, or collected."""
        if self.encoder is not None:
            await self.write(self.encoder.encode(event))
        else:
            assert self.collector is not None
            self.collector.add(event)

    async def keepalive(self) -> None:
        assert self.encoder is not None
        await self.write(self.encoder.keepalive())

    async def write(self, data: bytes) -> None:
        """A chunk of the stream, sending the headers first if they are not out yet."""
        assert self.encoder is not None
        if not self.headers_sent:
            self.headers_sent = True
            await start_sse(self.send, self.headers)
            data = self.encoder.start() + data
        if data:
            await send_chunk(self.send, data)

    async def complete(self) -> None:
        """End a reply that went well: the stream's terminator, or the collected body."""
        if self.encoder is not None:
            await self.write(b"")
            tail = self.encoder.finish()
            self.responded = True
            await send_chunk(self.send, tail, more=False)
        else:
            assert self.collector is not None
            body = self.collector.body()
            self.headers_sent = self.responded = True
            await send_json(self.send, 200, body, self.headers)

    async def fail(self, error: ClawrapError) -> None:
        """End the response with ``error``: an HTTP error, or the stream's error event."""
        if self.headers_sent:
            if self.encoder is not None:
                tail = self.encoder.error(error)
                self.responded = True
                await send_chunk(self.send, tail, more=False)
            return
        self.headers_sent = self.responded = True
        await send_json(
            self.send,
            error.status,
            self.dialect.error_body(error),
            retry_after_header(error.retry_after),
        )


__all__ = ["ResponseWriter"]
