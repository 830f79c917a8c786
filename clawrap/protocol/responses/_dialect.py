"""The OpenAI Responses API surface: ``POST /v1/responses`` as a :class:`Dialect`.

The decoder (:mod:`._decode`, :mod:`._decode_input`) and the encoders
(:mod:`._encode`, :mod:`._items`) tied to the protocol the HTTP exchange is written
against. Errors are OpenAI's ``{"error": {...}}``. Continuations and the response
store are the HTTP layer's (they need I/O); :func:`decode_responses` takes the
stored conversation as data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._request import CompletionRequest
from clawrap.protocol._dialect import Collector, Dialect, StreamEncoder
from clawrap.protocol.openai._encode import error_body
from clawrap.protocol.responses._decode import ResponsesOptions, decode_responses
from clawrap.protocol.responses._encode import ResponsesCollector, ResponsesStreamEncoder


class ResponsesDialect:
    """OpenAI Responses API <-> the internal request and event stream."""

    name = "responses"

    def decode(
        self, body: Any, headers: Mapping[str, str], settings: Settings
    ) -> tuple[CompletionRequest, ResponsesOptions]:
        return decode_responses(body, headers, settings)

    def stream_encoder(
        self, request: CompletionRequest, options: ResponsesOptions
    ) -> ResponsesStreamEncoder:
        return ResponsesStreamEncoder(options)

    def collector(
        self, request: CompletionRequest, options: ResponsesOptions
    ) -> ResponsesCollector:
        return ResponsesCollector(options)

    def error_body(self, error: ClawrapError) -> dict[str, Any]:
        return error_body(error)


if TYPE_CHECKING:  # a static proof that the classes satisfy the protocols
    _dialect: Dialect = ResponsesDialect()
    _encoder: StreamEncoder = ResponsesStreamEncoder(ResponsesOptions(model=""))
    _collector: Collector = ResponsesCollector(ResponsesOptions(model=""))


__all__ = ["ResponsesDialect"]
