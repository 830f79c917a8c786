"""Decoding OpenAI chat completion requests into the internal request."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._request import (
    CompletionRequest,
    DocumentPart,
    ImagePart,
    NamedTool,
    ResponseFormat,
    TextPart,
    ToolResultPart,
    ToolUsePart,
)
from clawrap.protocol.openai._decode import ChatWireOptions
from clawrap.protocol.openai._dialect import decode_chat_request

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image").decode()
PDF = base64.b64encode(b"%PDF-1.4 fake document").decode()
USER = {"role": "user", "content": "hi"}


def decode(
    body: Any, headers: dict[str, str] | None = None, **overrides: Any
) -> tuple[CompletionRequest, ChatWireOptions]:
    return decode_chat_request(body, headers or {}, Settings(**overrides))


def request(**fields: Any) -> CompletionRequest:
    body: dict[str, Any] = {"model": "sonnet", "messages": [USER], **fields}
    return decode(body)[0]


def rejects(body: Any, headers: dict[str, str] | None = None, **overrides: Any) -> ClawrapError:
    with pytest.raises(ClawrapError) as info:
        decode(body, headers, **overrides)
    return info.value


def rejected_param(**fields: Any) -> str | None:
    err = rejects({"model": "sonnet", "messages": [USER], **fields})
    assert err.status == 400
    assert err.kind == "invalid_request"
    return err.param


def user_parts(*parts: dict[str, Any], **overrides: Any) -> tuple[Any, ...]:
    body = {"model": "sonnet", "messages": [{"role": "user", "content": list(parts)}]}
    return decode(body, **overrides)[0].turns[0].parts


# -- the basics --------------------------------------------------------------------------


def test_a_minimal_request_becomes_one_user_turn() -> None:
    req = request()
    assert [(t.role, t.text) for t in req.turns] == [("user", "hi")]
    assert req.model == "sonnet"
    assert req.requested_model == "sonnet"
    assert req.stream is False


def test_a_missing_model_falls_back_to_the_default_model() -> None:
    req, options = decode({"messages": [USER]}, default_model="haiku")
    assert req.model == "haiku"
    assert options.model == "haiku"


def test_the_requested_model_is_kept_for_echo() -> None:
    req, options = decode({"model": "claude-sonnet-4-5-20250929", "messages": [USER]})
    assert req.requested_model == "claude-sonnet-4-5-20250929"
    assert options.model == "claude-sonnet-4-5-20250929"


def test_an_unknown_model_is_a_404_model_not_found() -> None:
    err = rejects({"model": "gpt-4o", "messages": [USER]})
    assert (err.status, err.code, err.param) == (404, "model_not_found", "model")


def test_wire_options_carry_a_fresh_completion_id_and_time() -> None:
    _, first = decode({"model": "sonnet", "messages": [USER]})
    _, second = decode({"model": "sonnet", "messages": [USER]})
    assert first.completion_id.startswith("chatcmpl-")
    assert first.completion_id != second.completion_id
    assert isinstance(first.created, int) and first.created > 1_600_000_000


@pytest.mark.parametrize("body", [[], "text", 3, None, True, [{"messages": []}]])
def test_a_body_that_is_not_an_object_is_a_400(body: Any) -> None:
    err = rejects(body)
    assert err.status == 400
    assert "JSON object" in err.message


def test_missing_messages_is_a_400_naming_messages() -> None:
    assert rejects({"model": "sonnet"}).param == "messages"


def test_empty_messages_is_a_400_naming_messages() -> None:
    assert rejected_param(messages=[]) == "messages"


def test_system_messages_alone_are_a_400() -> None:
    assert rejected_param(messages=[{"role": "system", "content": "be brief"}]) == "messages"


def test_unknown_fields_are_ignored() -> None:
    assert request(frobnicate={"x": 1}, extra_body=[1, 2]).turns


def test_common_sampling_options_are_accepted_and_ignored() -> None:
    req = request(
        temperature=0.2,
        top_p=1,
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        logit_bias={"50256": -100},
        logprobs=False,
        top_logprobs=0,
        user="u-1",
        metadata={"k": "v"},
        store=False,
        service_tier="auto",
        prompt_cache_key="abc",
        prediction={"type": "content", "content": "x"},
        modalities=["text"],
        verbosity="low",
    )
    assert req.turns[0].text == "hi"


# -- roles and content -----------------------------------------------------------------------


def test_system_and_developer_messages_join_in_order_with_blank_lines() -> None:
    req = request(
        messages=[
            {"role": "system", "content": "one"},
            {"role": "developer", "content": [{"type": "text", "text": "two"}]},
            USER,
            {"role": "system", "content": "three"},
        ]
    )
    assert req.system == "one\n\ntwo\n\nthree"
    assert len(req.turns) == 1


def test_content_may_be_an_array_of_text_parts() -> None:
    parts = user_parts({"type": "text", "text": "a"}, {"type": "text", "text": "b"})
    assert parts == (TextPart("a"), TextPart("b"))


def test_parts_carrying_cache_control_are_accepted() -> None:
    part = {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}
    assert user_parts(part) == (TextPart("a"),)


def test_a_data_uri_image_becomes_an_image_part_and_detail_is_ignored() -> None:
    url = f"data:image/png;base64,{PNG}"
    (part,) = user_parts({"type": "image_url", "image_url": {"url": url, "detail": "high"}})
    assert part == ImagePart(media_type="image/png", data=PNG)


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("image/jpeg", "image/jpeg"),
        ("image/jpg", "image/jpeg"),
        ("image/gif", "image/gif"),
        ("image/webp", "image/webp"),
    ],
)
def test_each_supported_image_type_is_accepted(declared: str, expected: str) -> None:
    url = f"data:{declared};base64,{PNG}"
    (part,) = user_parts({"type": "image_url", "image_url": {"url": url}})
    assert isinstance(part, ImagePart) and part.media_type == expected


def test_an_image_url_given_as_a_bare_string_is_accepted() -> None:
    (part,) = user_parts({"type": "image_url", "image_url": f"data:image/png;base64,{PNG}"})
    assert isinstance(part, ImagePart)


def test_an_unsupported_image_type_is_a_400_naming_the_part() -> None:
    url = f"data:image/svg+xml;base64,{PNG}"
    part = {"type": "image_url", "image_url": {"url": url}}
    err = rejects({"model": "sonnet", "messages": [{"role": "user", "content": [part]}]})
    assert err.param == "messages[0].content[0].image_url"


def test_an_image_with_broken_base64_is_a_400() -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
    err = rejects({"model": "sonnet", "messages": [{"role": "user", "content": [part]}]})
    assert err.param == "messages[0].content[0].image_url"


def test_a_remote_image_is_a_400_naming_the_part_by_default() -> None:
    text = {"type": "text", "text": "look"}
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    err = rejects({"model": "sonnet", "messages": [{"role": "user", "content": [text, image]}]})
    assert err.param == "messages[0].content[1].image_url"
    assert "data: URI" in err.message


def test_a_remote_image_is_passed_as_a_url_when_allowed() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.PNG?x=1"}}
    (part,) = user_parts(image, allow_remote_images=True)
    assert part == ImagePart(media_type="image/png", data="", url="https://example.com/cat.PNG?x=1")


def test_a_pdf_file_part_becomes_a_document() -> None:
    file = {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"}
    (part,) = user_parts({"type": "file", "file": file})
    assert part == DocumentPart(media_type="application/pdf", data=PDF, title="a.pdf")


def test_a_pdf_file_part_may_carry_bare_base64() -> None:
    (part,) = user_parts({"type": "file", "file": {"file_data": PDF}})
    assert part == DocumentPart(media_type="application/pdf", data=PDF)


def test_a_non_pdf_file_is_a_400() -> None:
    data = "data:text/csv;base64," + base64.b64encode(b"a,b").decode()
    part = {"type": "file", "file": {"file_data": data}}
    err = rejects({"model": "sonnet", "messages": [{"role": "user", "content": [part]}]})
    assert err.param == "messages[0].content[0].file.file_data"


def test_a_file_id_is_a_400() -> None:
    part = {"type": "file", "file": {"file_id": "file-123"}}
    err = rejects({"model": "sonnet", "messages": [{"role": "user", "content": [part]}]})
    assert err.param == "messages[0].content[0].file.file_data"
    assert "file ids" in err.message


def test_an_unsupported_part_type_is_a_400_naming_the_part_type() -> None:
    part = {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
    err = rejects({"model": "sonnet", "messages": [USER, {"role": "user", "content": [part]}]})
    assert err.param == "messages[1].content[0].type"
    assert "input_audio" in err.message


def test_a_part_without_a_type_is_a_400() -> None:
    err = rejects({"model": "sonnet", "messages": [{"role": "user", "content": [{"text": "x"}]}]})
    assert err.param == "messages[0].content[0].type"


def test_content_of_the_wrong_type_is_a_400_naming_the_content() -> None:
    err = rejects({"model": "sonnet", "messages": [{"role": "user", "content": 5}]})
    assert err.param == "messages[0].content"


def test_an_image_in_a_system_message_is_a_400() -> None:
    part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    err = rejects({"model": "sonnet", "messages": [{"role": "system", "content": [part]}, USER]})
    assert err.param == "messages[0].content[0].type"


def test_an_unknown_role_is_a_400_naming_the_role() -> None:
    err = rejects({"model": "sonnet", "messages": [USER, USER, {"role": "robot", "content": "x"}]})
    assert err.param == "messages[2].role"


def test_a_message_that_is_not_an_object_is_a_readable_400() -> None:
    err = rejects({"model": "sonnet", "messages": [USER, "hello"]})
    assert err.param == "messages[1]"
    assert "ChatMessage" not in err.message
    assert "should be an object" in err.message


def test_consecutive_same_role_messages_merge_into_one_turn() -> None:
    req = request(messages=[USER, {"role": "user", "content": "again"}])
    assert [(t.role, t.text) for t in req.turns] == [("user", "hiagain")]


def test_an_assistant_refusal_part_is_kept_as_text() -> None:
    req = request(
        messages=[USER, {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}]
    )
    assert req.turns[1].text == "no"


# -- tool calls in the history -----------------------------------------------------------------


TOOL_HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "w", "arguments": '{"c":"P"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "w", "arguments": '{"c":"R"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
    {"role": "user", "content": "thanks"},
]


def test_assistant_tool_calls_become_tool_use_parts() -> None:
    req = request(messages=TOOL_HISTORY)
    assert req.turns[1].parts == (
        ToolUsePart(id="call_1", name="w", input={"c": "P"}),
        ToolUsePart(id="call_2", name="w", input={"c": "R"}),
    )


def test_tool_results_and_the_next_user_message_form_one_user_turn() -> None:
    req = request(messages=TOOL_HISTORY)
    assert [t.role for t in req.turns] == ["user", "assistant", "user"]
    assert req.turns[2].parts == (
        ToolResultPart(tool_use_id="call_1", content=(TextPart("sunny"),)),
        ToolResultPart(tool_use_id="call_2", content=(TextPart("rain"),)),
        TextPart("thanks"),
    )


def test_unparseable_tool_call_arguments_are_a_400_naming_them() -> None:
    history = [dict(m) for m in TOOL_HISTORY]
    call = {"id": "c", "type": "function", "function": {"name": "w", "arguments": "{oops"}}
    history[1] = {"role": "assistant", "tool_calls": [call]}
    assert rejected_param(messages=history) == "messages[1].tool_calls[0].function.arguments"


def test_tool_call_arguments_that_are_not_an_object_are_a_400() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "w", "arguments": "[1]"}}
    history = [USER, {"role": "assistant", "tool_calls": [call]}]
    assert rejected_param(messages=history) == "messages[1].tool_calls[0].function.arguments"


def test_empty_tool_call_arguments_mean_no_arguments() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "w", "arguments": ""}}
    req = request(messages=[USER, {"role": "assistant", "tool_calls": [call]}])
    assert req.turns[1].parts == (ToolUsePart(id="c", name="w", input={}),)


def test_a_tool_message_without_tool_call_id_is_a_400() -> None:
    assert rejected_param(messages=[USER, {"role": "tool", "content": "x"}]) == (
        "messages[1].tool_call_id"
    )


def test_legacy_function_call_and_function_result_pair_up() -> None:
    req = request(
        messages=[
            USER,
            {"role": "assistant", "function_call": {"name": "w", "arguments": "{}"}},
            {"role": "function", "name": "w", "content": "sunny"},
        ]
    )
    (use,) = req.turns[1].parts
    (result,) = req.turns[2].parts
    assert isinstance(use, ToolUsePart) and isinstance(result, ToolResultPart)
    assert result.tool_use_id == use.id
    assert result.content == (TextPart("sunny"),)


# -- options -----------------------------------------------------------------------------------


def test_max_tokens_becomes_max_output_tokens() -> None:
    assert request(max_tokens=50).max_output_tokens == 50


def test_max_completion_tokens_becomes_max_output_tokens() -> None:
    assert request(max_completion_tokens=7).max_output_tokens == 7


@pytest.mark.parametrize("value", [0, -1, "5", 2.5, True])
def test_an_invalid_max_tokens_is_a_400_naming_it(value: Any) -> None:
    assert rejected_param(max_tokens=value) == "max_tokens"


def test_stop_may_be_a_string() -> None:
    assert request(stop="END").stop == ("END",)


def test_stop_may_be_a_list_and_empty_strings_are_dropped() -> None:
    assert request(stop=["a", "", "b"]).stop == ("a", "b")


@pytest.mark.parametrize("value", [5, [1], {"a": "b"}, ["x"] * 65, ["x" * 1001]])
def test_an_invalid_stop_is_a_400(value: Any) -> None:
    assert rejected_param(stop=value) == "stop"


def test_n_above_the_cap_or_below_one_is_a_400_naming_n() -> None:
    # The cap: CLAWRAP_MAX_N (4) and the run slots (CLAWRAP_MAX_CONCURRENCY, 4).
    assert rejected_param(n=5) == "n"
    assert rejected_param(n=0) == "n"
    assert rejected_param(n=2, session_id="s-1") == "n"


def test_n_within_the_cap_reaches_the_wire_options() -> None:
    _, options = decode_chat_request(
        {"model": "sonnet", "messages": [USER], "n": 3}, {}, Settings()
    )
    assert options.n == 3


def test_n_of_one_is_accepted() -> None:
    assert request(n=1).turns


def test_logprobs_true_is_a_400() -> None:
    assert rejected_param(logprobs=True) == "logprobs"


def test_audio_output_is_a_400() -> None:
    assert rejected_param(modalities=["text", "audio"]) == "modalities"


def test_stream_and_include_usage_are_read() -> None:
    req, options = decode(
        {
            "model": "sonnet",
            "messages": [USER],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert req.stream is True
    assert options.include_usage is True


def test_include_usage_is_off_by_default() -> None:
    assert decode({"model": "sonnet", "messages": [USER], "stream": True})[1].include_usage is False


def test_an_invalid_include_usage_is_a_400_with_a_dotted_param() -> None:
    assert rejected_param(stream_options={"include_usage": "yes"}) == "stream_options.include_usage"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}


def test_tools_become_tool_specs() -> None:
    (spec,) = request(tools=[WEATHER]).tools
    assert spec.name == "get_weather"
    assert spec.description == "Weather for a city"
    assert spec.input_schema["properties"] == {"city": {"type": "string"}}


def test_a_tool_without_parameters_gets_an_empty_object_schema() -> None:
    (spec,) = request(tools=[{"type": "function", "function": {"name": "now"}}]).tools
    assert spec.input_schema == {"type": "object", "properties": {}}
    assert spec.description == ""


@pytest.mark.parametrize("name", ["has space", "", "x" * 65, "dots.are.bad"])
def test_an_invalid_tool_name_is_a_400(name: str) -> None:
    tool = {"type": "function", "function": {"name": name}}
    assert rejected_param(tools=[WEATHER, tool]) == "tools[1].function.name"


def test_duplicate_tool_names_are_a_400() -> None:
    assert rejected_param(tools=[WEATHER, WEATHER]) == "tools[1].function.name"


def test_a_non_function_tool_is_a_400() -> None:
    assert rejected_param(tools=[{"type": "web_search"}]) == "tools[0].type"


def test_legacy_functions_are_tools_and_mark_the_wire_options() -> None:
    body = {
        "model": "sonnet",
        "messages": [USER],
        "functions": [{"name": "now"}],
        "function_call": {"name": "now"},
    }
    req, options = decode(body)
    assert [t.name for t in req.tools] == ["now"]
    assert req.tool_choice == NamedTool("now")
    assert req.parallel_tool_calls is False
    assert options.legacy_functions is True


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_strings_pass_through(choice: str) -> None:
    assert request(tools=[WEATHER], tool_choice=choice).tool_choice == choice


def test_a_named_tool_choice_becomes_named_tool() -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    assert request(tools=[WEATHER], tool_choice=choice).tool_choice == NamedTool("get_weather")


def test_a_named_tool_choice_must_name_a_declared_tool() -> None:
    choice = {"type": "function", "function": {"name": "other"}}
    assert rejected_param(tools=[WEATHER], tool_choice=choice) == "tool_choice"


def test_required_tool_choice_without_tools_is_a_400() -> None:
    assert rejected_param(tool_choice="required") == "tool_choice"


def test_a_nonsense_tool_choice_is_a_400() -> None:
    assert rejected_param(tools=[WEATHER], tool_choice="sometimes") == "tool_choice"


def test_parallel_tool_calls_is_read() -> None:
    assert request(tools=[WEATHER], parallel_tool_calls=False).parallel_tool_calls is False
    assert request(tools=[WEATHER]).parallel_tool_calls is True


def test_response_format_text_means_none() -> None:
    assert request(response_format={"type": "text"}).response_format is None


def test_response_format_json_object() -> None:
    fmt = request(response_format={"type": "json_object"}).response_format
    assert fmt == ResponseFormat("json_object")


def test_response_format_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = request(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "thing", "schema": schema, "strict": True},
        }
    ).response_format
    assert fmt == ResponseFormat("json_schema", schema=schema, name="thing", strict=True)


def test_an_unknown_response_format_is_a_400() -> None:
    assert rejected_param(response_format={"type": "yaml"}) == "response_format.type"


@pytest.mark.parametrize(
    ("given_effort", "effort"),
    [
        ("minimal", "low"),
        ("low", "low"),
        ("medium", "medium"),
        ("high", "high"),
        ("max", "max"),
        ("xhigh", "max"),
        ("none", None),
    ],
)
def test_reasoning_effort_maps_to_effort(given_effort: str, effort: str | None) -> None:
    assert request(reasoning_effort=given_effort).effort == effort


def test_an_unknown_reasoning_effort_is_a_400() -> None:
    assert rejected_param(reasoning_effort="extreme") == "reasoning_effort"


def test_thinking_enabled_sets_the_budget() -> None:
    assert request(thinking={"type": "enabled", "budget_tokens": 2048}).thinking_budget == 2048


def test_thinking_disabled_leaves_it_off() -> None:
    assert request(thinking={"type": "disabled"}).thinking_budget is None


def test_thinking_enabled_without_a_budget_is_a_400() -> None:
    assert rejected_param(thinking={"type": "enabled"}) == "thinking.budget_tokens"


def test_session_id_comes_from_the_body() -> None:
    assert request(session_id="s-1").session_id == "s-1"


def test_session_id_comes_from_the_header_in_any_case() -> None:
    body = {"model": "sonnet", "messages": [USER]}
    assert decode(body, {"x-session-id": "h-1"})[0].session_id == "h-1"
    assert decode(body, {"X-Session-Id": "h-2"})[0].session_id == "h-2"


def test_the_body_session_id_wins_over_the_header() -> None:
    body = {"model": "sonnet", "messages": [USER], "session_id": "b"}
    assert decode(body, {"x-session-id": "h"})[0].session_id == "b"


def test_an_unprintable_session_id_is_a_400() -> None:
    assert rejected_param(session_id="a\nb") == "session_id"


# -- hostile input --------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "messages",
        "model",
        "stop",
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "response_format",
        "thinking",
        "stream_options",
        "max_tokens",
        "reasoning_effort",
        "session_id",
        "n",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(FIELDS, JSON, max_size=4))
def test_any_json_fails_only_with_a_clawrap_error(fields: dict[str, Any]) -> None:
    body = {"model": "sonnet", "messages": [USER], **fields}
    try:
        decode(body)
    except ClawrapError as err:
        assert err.status in (400, 404)
        assert "pydantic" not in err.message.lower()
        assert "Model" not in err.message.replace("model", "")


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_any_message_fails_only_with_a_clawrap_error(message: Any) -> None:
    try:
        decode({"model": "sonnet", "messages": [USER, message]})
    except ClawrapError as err:
        assert err.status == 400
        assert err.param is not None and err.param.startswith("messages")


def test_error_messages_do_not_echo_long_client_strings() -> None:
    part = {"type": "x" * 10_000}
    err = rejects({"model": "sonnet", "messages": [{"role": "user", "content": [part]}]})
    assert len(err.message) < 200
