"""The Anthropic dialect as a whole, and the count_tokens approximation."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Finished, TextDelta
from clawrap.protocol.anthropic._dialect import (
    CHARS_PER_TOKEN,
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    PDF_PAGE_TOKENS,
    TOOL_OVERHEAD,
    AnthropicMessagesDialect,
    count_tokens_body,
)

PNG = base64.b64encode(b"\x89PNG fake").decode()
TWO_PAGE_PDF = base64.b64encode(
    b"%PDF-1.4\n1 0 obj<</Type /Pages/Count 2>>\n2 0 obj<</Type /Page>>\n3 0 obj<</Type/Page>>"
).decode()


def count(**fields: Any) -> int:
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "x" * 35}], **fields}
    result = count_tokens_body(body, Settings())
    assert set(result) == {"input_tokens"}
    tokens = result["input_tokens"]
    assert isinstance(tokens, int)
    return tokens


def test_dialect_is_named_anthropic() -> None:
    assert AnthropicMessagesDialect().name == "anthropic"


def test_dialect_decodes_and_encodes_one_exchange() -> None:
    dialect = AnthropicMessagesDialect()
    body = {"model": "haiku", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}
    request, options = dialect.decode(body, {}, Settings())
    assert (options.model, options.message_id[:6]) == ("haiku", "msg_01")
    collector = dialect.collector(request, options)
    collector.add(TextDelta("Hello"))
    collector.add(Finished("end_turn"))
    assert collector.body()["content"] == [{"type": "text", "text": "Hello"}]
    assert dialect.stream_encoder(request, options).start().startswith(b"event: message_start\n")


def test_count_tokens_needs_no_max_tokens_and_counts_text() -> None:
    assert count() == MESSAGE_OVERHEAD + 35 / CHARS_PER_TOKEN


def test_count_tokens_grows_with_system_and_tools() -> None:
    plain = count()
    assert count(system="s" * 70) == plain + 20
    tool = {"name": "f", "input_schema": {"type": "object"}}
    assert count(tools=[tool]) > plain + TOOL_OVERHEAD


def test_count_tokens_charges_a_flat_cost_per_image_and_per_pdf_page() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": TWO_PAGE_PDF},
    }
    messages = [{"role": "user", "content": [image, pdf]}]
    assert count(messages=messages) == MESSAGE_OVERHEAD + IMAGE_TOKENS + 2 * PDF_PAGE_TOKENS


def test_count_tokens_validates_like_messages() -> None:
    with pytest.raises(ClawrapError) as info:
        count(messages=[{"role": "tool", "content": "x"}])
    assert info.value.param == "messages.0.role"
    with pytest.raises(ClawrapError) as info:
        count_tokens_body([], Settings())
    assert info.value.status == 400
