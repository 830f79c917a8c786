"""The Anthropic Messages API surface: ``POST /v1/messages`` and its ``count_tokens``.

:class:`AnthropicMessagesDialect` ties the decoder and the encoders to the
:class:`~clawrap.protocol._dialect.Dialect` protocol the HTTP exchange is written against.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._request import (
    CompletionRequest,
    DocumentPart,
    ImagePart,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
)
from clawrap.protocol._dialect import Collector, Dialect, StreamEncoder
from clawrap.protocol.anthropic._decode import decode_messages
from clawrap.protocol.anthropic._encode import (
    AnthropicCollector,
    AnthropicStreamEncoder,
    AnthropicWireOptions,
    error_body,
    new_message_id,
)

CHARS_PER_TOKEN = 3.5  # Claude's tokenizer averages about this on English prose and code
IMAGE_TOKENS = 1600  # an image the API resizes to its ~1.15 megapixel cap: (w*h)/750
PDF_PAGE_TOKENS = 2300  # a page's text plus the page rendered as an image
MESSAGE_OVERHEAD = 4  # role markers and separators around each turn
TOOL_OVERHEAD = 350  # the tool-use system prompt the API adds when tools are present


class AnthropicMessagesDialect:
    """Anthropic Messages API <-> the internal request and event stream."""

    name = "anthropic"

    def decode(
        self, body: Any, headers: Mapping[str, str], settings: Settings
    ) -> tuple[CompletionRequest, AnthropicWireOptions]:
        request = decode_messages(body, headers, settings)
        return request, AnthropicWireOptions(new_message_id(), request.requested_model)

    def stream_encoder(
        self, request: CompletionRequest, options: AnthropicWireOptions
    ) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(request, options)

    def collector(
        self, request: CompletionRequest, options: AnthropicWireOptions
    ) -> AnthropicCollector:
        return AnthropicCollector(request, options)

    def error_body(self, error: ClawrapError) -> dict[str, Any]:
        return error_body(error)

    def count_tokens(self, body: Any, settings: Settings) -> dict[str, Any]:
        return count_tokens_body(body, settings)


def count_tokens_body(body: Any, settings: Settings) -> dict[str, Any]:
    """``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``, an approximation.

    The body is validated like a messages request (``max_tokens`` is not needed)
    and raises the same ClawrapError (400 naming the field, 404 for the model).

    No tokenizer for Claude is available offline, and asking the CLI would spend
    the user's quota, so the count is estimated: text (messages, system, tool
    names, descriptions and schemas as compact JSON, tool inputs and results) at
    ``CHARS_PER_TOKEN`` characters per token, rounded up; ``IMAGE_TOKENS`` per
    image (the cost of an image at the API's size cap, so an upper bound);
    ``PDF_PAGE_TOKENS`` per PDF page (pages counted from the file's page
    objects, at least one); ``MESSAGE_OVERHEAD`` per turn and ``TOOL_OVERHEAD``
    once when tools are present. Expect it within roughly 20% for prose; it is
    good for budgeting, not billing.
    """
    request = decode_messages(body, {}, settings, require_max_tokens=False)
    return {"input_tokens": estimate_input_tokens(request)}


def estimate_input_tokens(request: CompletionRequest) -> int:
    """The approximation :func:`count_tokens_body` documents."""
    chars = len(request.system or "")
    fixed = 0
    if request.tools:
        fixed += TOOL_OVERHEAD
        for tool in request.tools:
            chars += len(tool.name) + len(tool.description) + len(_compact(tool.input_schema))
    for turn in request.turns:
        fixed += MESSAGE_OVERHEAD
        for part in turn.parts:
            part_chars, part_fixed = _part_cost(part)
            chars += part_chars
            fixed += part_fixed
    return fixed + math.ceil(chars / CHARS_PER_TOKEN)


def _part_cost(part: Part) -> tuple[int, int]:
    """(characters, fixed tokens) of one content part."""
    match part:
        case TextPart(text=text):
            return len(text), 0
        case ThinkingPart(thinking=thinking):
            return len(thinking), 0
        case ImagePart():
            return 0, IMAGE_TOKENS
        case DocumentPart(data=data):
            return 0, PDF_PAGE_TOKENS * _pdf_pages(data)
        case ToolUsePart(name=name, input=value):
            return len(name) + len(_compact(value)), 0
        case ToolResultPart(content=content):
            costs = [_part_cost(p) for p in content]
            return sum(c for c, _ in costs), sum(f for _, f in costs)
    return 0, 0


def _pdf_pages(data: str) -> int:
    """Page objects in a base64 PDF (``/Type /Page``, not ``/Pages``); at least 1."""
    raw = base64.b64decode(data)
    pages = raw.count(b"/Type /Page") + raw.count(b"/Type/Page")
    pages -= raw.count(b"/Type /Pages") + raw.count(b"/Type/Pages")
    return max(1, pages)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


__all__ = [
    "AnthropicMessagesDialect",
    "count_tokens_body",
    "estimate_input_tokens",
]

if TYPE_CHECKING:  # a static proof that the class satisfies the protocols
    _dialect: Dialect = AnthropicMessagesDialect()
    _encoder: StreamEncoder = AnthropicStreamEncoder(*cast(Any, ()))
    _collector: Collector = AnthropicCollector(*cast(Any, ()))
