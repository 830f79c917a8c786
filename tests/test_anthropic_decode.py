"""Decoding Anthropic Messages API requests into the internal request."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import httpx2
import pytest

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._request import (
    CompletionRequest,
    DocumentPart,
    ImagePart,
    NamedTool,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
    Turn,
)
from clawrap.protocol.anthropic._decode import (
    ADAPTIVE_THINKING_BUDGET,
    decode_messages,
)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
PDF = base64.b64encode(b"%PDF-1.4 fake").decode()
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def settings() -> Settings:
    return Settings()


def body(**fields: Any) -> dict[str, Any]:
    """A minimal valid request with ``fields`` laid over it."""
    base: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    base.update(fields)
    return base


def decode(settings: Settings, headers: dict[str, str] | None = None, **fields: Any) -> Any:
    return decode_messages(body(**fields), headers or {}, settings)


def user(*blocks: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(blocks)}]


def rejected(settings: Settings, raw: Any = None, **fields: Any) -> ClawrapError:
    with pytest.raises(ClawrapError) as info:
        decode_messages(body(**fields) if raw is None else raw, {}, settings)
    return info.value


# -- accepted forms --------------------------------------------------------------------


def test_minimal_request_decodes_to_one_user_turn(settings: Settings) -> None:
    assert decode_messages(body(), {}, settings) == CompletionRequest(
        model="claude-sonnet-4-5",
        requested_model="claude-sonnet-4-5",
        turns=(Turn("user", (TextPart("Hi"),)),),
        max_output_tokens=100,
    )


def test_missing_model_uses_the_default_model(settings: Settings) -> None:
    raw = body()
    del raw["model"]
    request = decode_messages(raw, {}, settings)
    assert request.model == request.requested_model == settings.default_model


def test_text_blocks_with_cache_control_and_citations_are_text(settings: Settings) -> None:
    block = {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}, "citations": []}
    assert decode(settings, messages=user(block)).turns[0].parts == (TextPart("Hi"),)


def test_base64_image_becomes_an_image_part(settings: Settings) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert decode(settings, messages=user(image)).turns[0].parts == (ImagePart("image/png", PNG),)


def test_url_image_is_accepted_when_remote_images_are_allowed() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    request = decode(Settings(allow_remote_images=True), messages=user(image))
    assert request.turns[0].parts == (ImagePart("", "", url="https://example.com/a.png"),)


def test_pdf_document_becomes_a_document_part_with_its_title(settings: Settings) -> None:
    doc = {
        "type": "document",
        "title": "Spec",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
        "cache_control": {"type": "ephemeral"},
    }
    parts = decode(settings, messages=user(doc)).turns[0].parts
    assert parts == (DocumentPart("application/pdf", PDF, "Spec"),)


def test_text_and_content_documents_become_text(settings: Settings) -> None:
    plain = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "A"},
    }
    content = {
        "type": "document",
        "source": {"type": "content", "content": [{"type": "text", "text": "B"}]},
    }
    text = {"type": "document", "source": {"type": "content", "content": "C"}}
    parts = decode(settings, messages=user(plain, content, text)).turns[0].parts
    assert parts == (TextPart("A"), TextPart("B"), TextPart("C"))


def test_tool_use_and_tool_result_round_trip(settings: Settings) -> None:
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Rain"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "failed"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                    ],
                },
                {"type": "tool_result", "tool_use_id": "toolu_3"},
            ],
        },
    ]
    turns = decode(settings, messages=messages).turns
    assert turns[1] == Turn(
        "assistant",
        (
            ThinkingPart("hmm", "sig"),
            TextPart("Checking."),
            ToolUsePart("toolu_1", "get_weather", {"city": "Oslo"}),
        ),
    )
    assert turns[2].parts == (
        ToolResultPart("toolu_1", (TextPart("Rain"),)),
        ToolResultPart("toolu_2", (TextPart("failed"), ImagePart("image/png", PNG)), is_error=True),
        ToolResultPart("toolu_3", ()),
    )


def test_redacted_thinking_is_dropped(settings: Settings) -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {
            "role": "assistant",
            "content": [{"type": "redacted_thinking", "data": "x"}, {"type": "text", "text": "Yo"}],
        },
        {"role": "user", "content": "More"},
    ]
    assert decode(settings, messages=messages).turns[1].parts == (TextPart("Yo"),)


def test_final_assistant_message_may_be_empty_prefill(settings: Settings) -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]
    assert decode(settings, messages=messages).turns[1] == Turn("assistant", ())


def test_system_string_and_text_blocks(settings: Settings) -> None:
    assert decode(settings, system="Be brief.").system == "Be brief."
    blocks = [
        {"type": "text", "text": "One.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Two."},
    ]
    assert decode(settings, system=blocks).system == "One.\n\nTwo."
    assert decode(settings, system="").system is None


def test_custom_tools_become_tool_specs(settings: Settings) -> None:
    tools = [
        WEATHER,
        {**WEATHER, "name": "other", "type": "custom", "cache_control": {"type": "ephemeral"}},
    ]
    request = decode(settings, tools=tools)
    assert request.tools == (
        ToolSpec("get_weather", "Weather for a city", WEATHER["input_schema"]),
        ToolSpec("other", "Weather for a city", WEATHER["input_schema"]),
    )


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", True),
        ({"type": "any"}, "required", True),
        ({"type": "none"}, "none", True),
        ({"type": "tool", "name": "get_weather"}, NamedTool("get_weather"), True),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
    ],
)
def test_tool_choice_maps_to_the_internal_choice(
    settings: Settings, choice: dict[str, Any], expected: Any, parallel: bool
) -> None:
    request = decode(settings, tools=[WEATHER], tool_choice=choice)
    assert (request.tool_choice, request.parallel_tool_calls) == (expected, parallel)


def test_stop_sequences_and_stream(settings: Settings) -> None:
    request = decode(settings, stop_sequences=["END", "\n\n"], stream=True)
    assert (request.stop, request.stream) == (("END", "\n\n"), True)


def test_sampling_service_tier_and_unknown_fields_are_accepted(settings: Settings) -> None:
    request = decode(
        settings,
        temperature=0.5,
        top_k=5,
        top_p=1,
        service_tier="auto",
        metadata={"user_id": "u-1"},
        container="c",
        mcp_servers=[{"type": "url"}],
        something_new={"x": 1},
    )
    assert request.metadata == {"user_id": "u-1"}


@pytest.mark.parametrize(
    ("thinking", "budget"),
    [
        ({"type": "enabled", "budget_tokens": 2048}, 2048),
        ({"type": "disabled"}, None),
        ({"type": "adaptive", "display": "summarized"}, ADAPTIVE_THINKING_BUDGET),
    ],
)
def test_thinking_config_becomes_a_budget(settings: Settings, thinking: Any, budget: Any) -> None:
    assert decode(settings, max_tokens=4096, thinking=thinking).thinking_budget == budget


def test_output_format_and_output_config_become_json_schema(settings: Settings) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    expected = ResponseFormat("json_schema", schema, strict=True)
    beta = decode(settings, output_format={"type": "json_schema", "schema": schema})
    ga = decode(
        settings,
        output_config={"format": {"type": "json_schema", "schema": schema}, "effort": "low"},
    )
    assert beta.response_format == ga.response_format == expected
    assert ga.effort == "low"


def test_session_id_comes_from_the_header_in_any_case(settings: Settings) -> None:
    assert decode(settings, {"x-session-id": "abc-1"}).session_id == "abc-1"
    assert decode(settings, {"X-Session-Id": "abc-2"}).session_id == "abc-2"


def test_what_the_anthropic_sdk_sends_decodes(settings: Settings) -> None:
    sent: list[Any] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(400, json={"type": "error", "error": {"type": "x", "message": "x"}})

    client = anthropic.Anthropic(
        api_key="dummy",
        base_url="http://127.0.0.1:9",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model="claude-opus-4-1",
            max_tokens=4096,
            system=[{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "Q"}]},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "R"}],
                },
            ],
            tools=[{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            thinking={"type": "enabled", "budget_tokens": 1024},
            stop_sequences=["X"],
            metadata={"user_id": "u"},
        )
    request = decode_messages(sent[0], {}, settings)
    assert request.system == "S"
    assert [t.role for t in request.turns] == ["user", "assistant", "user"]
    assert (request.tool_choice, request.parallel_tool_calls) == ("required", False)
    assert request.thinking_budget == 1024


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [[], "text", 3, None])
def test_a_body_that_is_not_an_object_is_a_400(settings: Settings, raw: Any) -> None:
    error = rejected(settings, raw=raw if raw is not None else "null")
    assert (error.status, error.kind) == (400, "invalid_request")


def test_unknown_model_is_a_404(settings: Settings) -> None:
    error = rejected(settings, model="gpt-4o")
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"max_tokens": "10"}, "max_tokens: Input should be a valid integer"),
        ({"max_tokens": True}, "max_tokens: Input should be a valid integer"),
        ({"messages": None}, "messages: Input should be a valid list"),
        ({"messages": []}, "messages: at least one message is required"),
        ({"messages": ["hi"]}, "messages.0: Input should be an object"),
        (
            {"messages": [{"role": "tool", "content": "x"}]},
            "messages.0.role: Input should be 'user', 'assistant' or 'system'",
        ),
        ({"messages": [{"role": "user"}]}, "messages.0.content: Field required"),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages.0.content: Input should be a valid string",
        ),
        (
            {"messages": [{"role": "user", "content": ""}]},
            "messages.0: all messages must have non-empty",
        ),
        ({"messages": user("x")}, "messages.0.content.0: Input should be an object"),
        ({"messages": user({"type": "text"})}, "messages.0.content.0.text: Field required"),
        (
            {"messages": user({"type": "text", "text": 1})},
            "messages.0.content.0.text: Input should be a valid string",
        ),
        (
            {"messages": user({"type": "audio"})},
            "messages.0.content.0.type: unsupported content block type 'audio'",
        ),
        (
            {"messages": user({"type": "image"})},
            "messages.0.content.0.source: Input should be an object",
        ),
        (
            {
                "messages": user(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/bmp", "data": PNG},
                    }
                )
            },
            "messages.0.content.0.source.media_type: Input should be 'image/jpeg'",
        ),
        (
            {
                "messages": user(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "!!"},
                    }
                )
            },
            "messages.0.content.0.source.data: Input should be valid base64 data",
        ),
        (
            {
                "messages": user(
                    {"type": "image", "source": {"type": "url", "url": "https://e.com/a.png"}}
                )
            },
            "messages.0.content.0.source: image URLs are disabled",
        ),
        (
            {"messages": user({"type": "image", "source": {"type": "file", "file_id": "f"}})},
            "messages.0.content.0.source.type: image sources must be 'base64' or 'url'",
        ),
        (
            {
                "messages": user(
                    {"type": "document", "source": {"type": "url", "url": "https://e.com/a.pdf"}}
                )
            },
            "messages.0.content.0.source.type: url documents are not supported",
        ),
        (
            {
                "messages": user(
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "text/html", "data": PDF},
                    }
                )
            },
            "messages.0.content.0.source.media_type: Input should be 'application/pdf'",
        ),
        (
            {
                "messages": user(
                    {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "video"}]}
                )
            },
            "messages.0.content.0.content.0.type: expected 'text', 'image' or 'document'",
        ),
        (
            {"messages": user({"type": "tool_result", "tool_use_id": "t", "content": 3})},
            "messages.0.content.0.content: Input should be a valid string or a list",
        ),
        (
            {"messages": user({"type": "tool_result", "content": "x"})},
            "messages.0.content.0.tool_use_id: Field required",
        ),
        (
            {"messages": user({"type": "tool_use", "id": "t", "name": "f", "input": {}})},
            "messages.0.content.0.type: tool_use blocks may only appear in assistant messages",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": []}],
                    }
                ]
            },
            "messages.0.content.0.input: Input should be an object",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "thinking"}]}]},
            "messages.0.content.0.thinking: Field required",
        ),
        (
            {
                "messages": user(
                    {
                        "type": "document",
                        "source": {"type": "content", "content": [{"type": "document"}]},
                    }
                )
            },
            "messages.0.content.0.source.content.0.type: expected 'text' or 'image', got",
        ),
        (
            {"messages": user({"type": "tool_result", "tool_use_id": "t", "content": [7]})},
            "messages.0.content.0.content.0: Input should be an object",
        ),
        (
            {
                "messages": user(
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [
                            {
                                "type": "document",
                                "source": {
                                    "type": "base64",
                                    "media_type": "application/pdf",
                                    "data": PDF,
                                },
                            }
                        ],
                    }
                )
            },
            "messages.0.content.0.content.0: PDF documents are not supported here",
        ),
        ({"system": 3}, "system: Input should be a valid string or a list of text blocks"),
        ({"system": [{"type": "image"}]}, "system.0.type: system blocks must be text blocks"),
        ({"tools": [{"name": "f"}]}, "tools.0.input_schema: Field required"),
        ({"tools": [{**WEATHER, "name": "bad name"}]}, "tools.0.name: String should match pattern"),
        ({"tools": [WEATHER, WEATHER]}, "tools.1.name: tool names must be unique"),
        (
            {"tools": [{**WEATHER, "input_schema": {"type": "string"}}]},
            "tools.0.input_schema.type: Input should be 'object'",
        ),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "tools.0.type: tool type 'web_search_20250305' is not offered here",
        ),
        (
            {"tool_choice": {"type": "sometimes"}},
            "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
        ),
        ({"tool_choice": {"type": "any"}}, "tool_choice.type: 'any' requires at least one tool"),
        ({"tools": [WEATHER], "tool_choice": {"type": "tool"}}, "tool_choice.name: Field required"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "nope"}},
            "tool_choice.name: no tool named 'nope'",
        ),
        ({"stop_sequences": "END"}, "stop_sequences: Input should be a valid list"),
        ({"stop_sequences": ["ok", ""]}, "stop_sequences.1: stop sequences must be non-empty"),
        ({"stream": "yes"}, "stream: Input should be a valid boolean"),
        ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
        ({"top_k": -1}, "top_k: Input should be greater than or equal to 0"),
        ({"metadata": {"user_id": 3}}, "metadata.user_id: Input should be a valid string"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens: Field required"),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 100}},
            "thinking.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2000}},
            "max_tokens: must be greater than thinking.budget_tokens",
        ),
        (
            {"thinking": {"type": "sometimes"}},
            "thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'",
        ),
        ({"output_format": {"type": "json_schema"}}, "output_format.schema: Field required"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort: Input should be"),
    ],
)
def test_invalid_field_is_a_400_naming_its_path(
    settings: Settings, fields: dict[str, Any], message: str
) -> None:
    error = rejected(settings, **fields)
    assert (error.status, error.kind) == (400, "invalid_request")
    assert error.message.startswith(message), error.message
    assert error.param == message.split(":")[0]


def test_errors_never_leak_pydantic_internals(settings: Settings) -> None:
    error = rejected(settings, messages=[3], tool_choice=[1])
    for leak in ("_Message", "pydantic", "errors.pydantic.dev", "input_value", "For further"):
        assert leak not in error.message


def test_a_malformed_session_header_is_a_400(settings: Settings) -> None:
    with pytest.raises(ClawrapError) as info:
        decode_messages(body(), {"x-session-id": "a b\n"}, settings)
    assert (info.value.status, info.value.param) == (400, "X-Session-Id")


def test_count_tokens_mode_needs_no_max_tokens(settings: Settings) -> None:
    raw = body()
    del raw["max_tokens"]
    request = decode_messages(raw, {}, settings, require_max_tokens=False)
    assert request.max_output_tokens is None


def test_server_tools_are_refused_saying_claude_code_server_tools_are_not_offered(
    settings: Settings,
) -> None:
    error = rejected(settings, tools=[{"type": "bash_20250124", "name": "bash"}])
    assert "Claude Code's server tools" in error.message
    assert error.param == "tools.0.type"


def test_system_entries_among_the_messages_join_the_system_prompt_in_order(
    settings: Settings,
) -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {
            "role": "system",
            "content": [{"type": "text", "text": "Note one.", "cache_control": {"type": "x"}}],
            "output_config": {"effort": "low"},
        },
        {"role": "system", "content": []},
        {"role": "system", "content": "Note two."},
    ]
    request = decode(settings, system="Be brief.", messages=messages)
    assert request.system == "Be brief.\n\nNote one.\n\nNote two."
    assert [t.role for t in request.turns] == ["user"]
    assert request.effort == "low"


def test_a_system_entry_with_other_blocks_is_a_400(settings: Settings) -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": [{"type": "image", "source": {}}]},
    ]
    with pytest.raises(ClawrapError, match=r"messages\.1\.content\.0"):
        decode(settings, messages=messages)


def test_system_entries_alone_are_no_conversation(settings: Settings) -> None:
    with pytest.raises(ClawrapError, match="at least one message"):
        decode(settings, messages=[{"role": "system", "content": "x"}])
