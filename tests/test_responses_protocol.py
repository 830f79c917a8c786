"""The Responses API dialect, sans-IO: decoding requests, encoding events, on every split.

Every encoded stream is read back with openai-python's own models (strict validation) and
its stream accumulator, the way clients consume it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import (
    Event,
    Finished,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from clawrap.core._request import (
    ImagePart,
    NamedTool,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
    Turn,
)
from clawrap.protocol.responses._decode import (
    Outcome,
    Prior,
    ResponsesOptions,
    decode_responses,
)
from clawrap.protocol.responses._encode import ResponsesCollector, ResponsesStreamEncoder
from clawrap.protocol.responses._reasoning import decode_thinking, encode_thinking

SETTINGS = Settings()
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"
    "AAAABJRU5ErkJggg=="
)
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def decode(body: dict[str, Any], prior: Prior | None = None) -> Any:
    return decode_responses({"model": "sonnet", **body}, {}, SETTINGS, prior)


def error_of(body: dict[str, Any]) -> ClawrapError:
    with pytest.raises(ClawrapError) as info:
        decode(body)
    return info.value


# -- decoding ------------------------------------------------------------------------------


def test_a_string_input_is_one_user_turn_and_instructions_the_system_text() -> None:
    request, options = decode({"input": "Hello", "instructions": "Be brief."})
    assert request.turns == (Turn("user", (TextPart("Hello"),)),)
    assert request.system == "Be brief."
    assert options.input_items[0]["content"] == [{"type": "input_text", "text": "Hello"}]
    assert options.input_items[0]["id"].startswith("msg_")


def test_items_of_one_role_form_one_turn_and_developer_messages_the_system() -> None:
    thought = encode_thinking("Let me think.", "sig")
    request, _ = decode(
        {
            "instructions": "Rules.",
            "input": [
                {"role": "developer", "content": [{"type": "input_text", "text": "Dev."}]},
                {"role": "user", "content": "Weather?"},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": thought},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"a":1}'},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": ""},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "c2", "output": [
                    {"type": "input_text", "text": "rain"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
                ]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]},
                {"role": "user", "content": [{"type": "input_text", "text": "Thanks"}]},
            ],
        }
    )  # fmt: skip
    assert request.system == "Rules.\n\nDev."
    assert [t.role for t in request.turns] == ["user", "assistant", "user", "assistant", "user"]
    assert request.turns[1].parts == (
        ThinkingPart("Let me think.", "sig"),
        ToolUsePart("c1", "w", {"a": 1}),
        ToolUsePart("c2", "w", {}),
    )
    assert request.turns[2].parts == (
        ToolResultPart("c1", (TextPart("sunny"),)),
        ToolResultPart("c2", (TextPart("rain"), ImagePart("image/png", PNG))),
    )


def test_a_reasoning_item_from_another_server_is_dropped() -> None:
    request, _ = decode(
        {
            "input": [
                {"role": "user", "content": "Hi"},
                {"type": "reasoning", "id": "rs_x", "summary": [], "encrypted_content": "gAAAA"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Again"},
            ]
        }
    )
    assert request.turns[1].parts == (TextPart("Hello"),)


def test_thinking_round_trips_through_encrypted_content() -> None:
    assert decode_thinking(encode_thinking("a\nb", None)) == ThinkingPart("a\nb", None)
    assert decode_thinking("clawrap.thinking.v1:!!!") is None


def test_function_and_custom_tools_reach_the_model_and_hosted_ones_are_left_out() -> None:
    request, options = decode(
        {
            "input": "x",
            "tools": [
                {"type": "function", "name": "exec_command", "parameters": {"type": "object"},
                 "strict": False},
                {"type": "custom", "name": "apply_patch", "description": "Patch files.",
                 "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
                {"type": "web_search"},
            ],
            "tool_choice": "auto",
        }
    )  # fmt: skip
    assert [t.name for t in request.tools] == ["exec_command", "apply_patch"]
    assert request.tools[1].input_schema["required"] == ["input"]
    assert "start: /.+/" in request.tools[1].description
    assert options.custom_tools == {"apply_patch"}
    assert options.ignored_tools == ("web_search",)


@pytest.mark.parametrize("choice", [{"type": "web_search"}, "required", {"type": "file_search"}])
def test_a_tool_choice_needing_a_hosted_tool_is_a_400_naming_it(choice: Any) -> None:
    error = error_of({"input": "x", "tools": [{"type": "web_search"}], "tool_choice": choice})
    assert error.status == 400
    assert error.param == "tool_choice"


def test_named_and_allowed_tool_choices() -> None:
    tools = [{"type": "function", "name": n} for n in ("a", "b")]
    request, _ = decode(
        {"input": "x", "tools": tools, "tool_choice": {"type": "function", "name": "b"}}
    )
    assert request.tool_choice == NamedTool("b")
    request, _ = decode(
        {
            "input": "x",
            "tools": tools,
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "a"}],
            },
        }
    )
    assert request.tool_choice == "required"
    assert [t.name for t in request.tools] == ["a"]


def test_text_format_reasoning_and_limits() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    request, options = decode(
        {
            "input": "x",
            "text": {"format": {"type": "json_schema", "name": "N", "schema": schema,
                                "strict": True}},
            "reasoning": {"effort": "high", "summary": "auto"},
            "max_output_tokens": 50,
            "include": ["reasoning.encrypted_content"],
            "store": False,
            "metadata": {"k": "v"}, "prompt_cache_key": "p", "user": "u",
            "truncation": "disabled", "service_tier": "auto", "temperature": 0.2,
        }
    )  # fmt: skip
    assert request.response_format is not None
    assert request.response_format.schema == schema
    assert request.response_format.strict
    assert request.effort == "high"
    assert request.max_output_tokens == 50
    assert options.summaries and options.encrypted_reasoning and not options.store


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "background": True}, "background"),
        ({}, "input"),
        ({"input": 5}, "input"),
        ({"input": [{"type": "bogus"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
         "input[0].content[0].image_url"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f",
                     "arguments": "[1]"}]}, "input[0].arguments"),
        ({"input": "x", "tools": [{"type": "function", "name": "bad name"}]}, "tools[0].name"),
        ({"input": "x", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
        ({"input": "x", "tools": [{"type": "evil\r\nx-injected: 1"}]}, "tools[0].type"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
         "text.format.schema"),
    ],
)  # fmt: skip
def test_malformed_requests_are_400s_naming_the_param(body: dict[str, Any], param: str) -> None:
    error = error_of(body)
    assert error.status == 400
    assert error.param == param


def test_an_unknown_previous_response_is_a_404_naming_the_param() -> None:
    error = error_of({"input": "x", "previous_response_id": "resp_nope"})
    assert error.status == 404
    assert error.param == "previous_response_id"


def test_a_continuation_builds_on_the_prior_conversation() -> None:
    prior = Prior(
        "resp_1",
        (Turn("user", (TextPart("Hi"),)), Turn("assistant", (TextPart("Hello"),))),
        ("Dev.",),
    )
    request, options = decode(
        {"input": "More", "previous_response_id": "resp_1", "instructions": "New."}, prior
    )
    assert [t.text for t in request.turns] == ["Hi", "Hello", "More"]
    assert request.system == "New.\n\nDev."
    assert options.new_turns == (Turn("user", (TextPart("More"),)),)
    assert options.previous_response_id == "resp_1"


# -- encoding ------------------------------------------------------------------------------


def options(**kwargs: Any) -> ResponsesOptions:
    return ResponsesOptions(model="sonnet", **kwargs)


def parse_sse(data: bytes) -> list[dict[str, Any]]:
    events = []
    for frame in data.decode().split("\n\n")[:-1]:
        lines = frame.split("\n")
        if lines[0].startswith(":"):
            continue
        assert lines[0].startswith("event: ")
        payload = json.loads(lines[1][len("data: ") :])
        assert payload["type"] == lines[0][len("event: ") :]
        events.append(payload)
    return events


def stream(events: list[Event], opts: ResponsesOptions) -> list[dict[str, Any]]:
    encoder = ResponsesStreamEncoder(opts)
    data = encoder.start() + b"".join(encoder.encode(e) for e in events) + encoder.finish()
    return parse_sse(data)


def accumulate(raw: list[dict[str, Any]]) -> Response:
    """What openai-python's ``responses.stream()`` makes of the events."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for payload in raw:
        state.handle_event(EVENTS.validate_python(payload))
    completed = state._completed_response
    assert completed is not None
    return completed


def reply(text: str, args: str) -> list[Event]:
    return [
        ReasoningDelta("Hmm."),
        ReasoningSignature("sig"),
        TextDelta(text),
        ToolCallStart(0, "toolu_1", "get_weather"),
        ToolCallDelta(0, args),
        ToolCallStart(1, "toolu_2", "get_weather"),
        ToolCallDelta(1, '{"city":"Rome"}'),
        Usage(10, 5, cache_read_input_tokens=3),
        Finished("tool_calls"),
    ]


def test_a_stream_has_the_order_sequence_numbers_and_a_full_final_response() -> None:
    opts = options(summaries=True, encrypted_reasoning=True)
    raw = stream(reply("Checking.", '{"city":"Paris"}'), opts)
    types = [e["type"] for e in raw]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e["sequence_number"] for e in raw] == list(range(len(raw)))
    assert types.count("response.output_item.added") == 4
    final = raw[-1]["response"]
    assert [i["type"] for i in final["output"]] == [
        "reasoning", "message", "function_call", "function_call",
    ]  # fmt: skip
    reasoning, message, paris, rome = final["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Hmm."}]
    assert decode_thinking(reasoning["encrypted_content"]) == ThinkingPart("Hmm.", "sig")
    assert message["content"][0]["text"] == "Checking."
    assert (paris["call_id"], paris["arguments"]) == ("toolu_1", '{"city":"Paris"}')
    assert rome["call_id"] == "toolu_2"
    assert final["usage"]["input_tokens"] == 13
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 3
    response = accumulate(raw)
    assert response.output_text == "Checking."
    Response.model_validate(final, strict=False)


@pytest.mark.parametrize("cut", range(0, 12))
def test_every_split_of_text_and_arguments_gives_the_same_response(cut: int) -> None:
    text, args = "Hello, wörld!", '{"city": "Paris"}'
    whole = stream(reply(text, args), options(summaries=True))[-1]["response"]
    events: list[Event] = [
        ReasoningDelta("Hmm."),
        ReasoningSignature("sig"),
        TextDelta(text[:cut]),
        TextDelta(text[cut:]),
        ToolCallStart(0, "toolu_1", "get_weather"),
        ToolCallDelta(0, args[:cut]),
        ToolCallDelta(0, args[cut:]),
        ToolCallStart(1, "toolu_2", "get_weather"),
        ToolCallDelta(1, '{"city":"Rome"}'),
        Usage(10, 5, cache_read_input_tokens=3),
        Finished("tool_calls"),
    ]
    raw = stream(events, options(summaries=True))
    split = raw[-1]["response"]

    def strip(r: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in i.items() if k != "id"} for i in r["output"]]

    assert strip(split) == strip(whole)
    deltas = [e["delta"] for e in raw if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == text
    assert accumulate(raw).output_text == text


def test_a_json_body_equals_the_final_response_of_the_stream() -> None:
    events = reply("Checking.", '{"city":"Paris"}')
    streamed = stream(events, options())[-1]["response"]
    collector = ResponsesCollector(options())
    for e in events:
        collector.add(e)
    body = collector.body()

    def strip(r: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in i.items() if k != "id"} for i in r["output"]]

    assert strip(body) == strip(streamed)
    assert body["status"] == "completed"
    Response.model_validate(body)


def test_max_tokens_ends_incomplete_and_an_error_ends_failed() -> None:
    raw = stream([TextDelta("cut"), Finished("max_tokens")], options())
    assert raw[-1]["type"] == "response.incomplete"
    assert raw[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    encoder = ResponsesStreamEncoder(options())
    data = encoder.start() + encoder.encode(TextDelta("partial"))
    data += encoder.error(ClawrapError("rate_limit", "Slow down."))
    failed = parse_sse(data)
    assert failed[-1]["type"] == "response.failed"
    assert failed[-1]["response"]["error"] == {
        "code": "rate_limit_exceeded",
        "message": "Slow down.",
    }
    assert failed[-1]["response"]["output"][0]["content"][0]["text"] == "partial"
    assert encoder.finish() == b""


def test_a_custom_tool_call_carries_its_free_form_input() -> None:
    opts = options(custom_tools=frozenset({"apply_patch"}))
    raw = stream(
        [
            ToolCallStart(0, "toolu_p", "apply_patch"),
            ToolCallDelta(0, '{"input": "*** Begin'),
            ToolCallDelta(0, ' Patch"}'),
            Finished("tool_calls"),
        ],
        opts,
    )
    item = raw[-1]["response"]["output"][0]
    assert item["type"] == "custom_tool_call"
    assert item["input"] == "*** Begin Patch"
    assert "response.custom_tool_call_input.done" in [e["type"] for e in raw]
    accumulate(raw)


def test_the_outcome_is_reported_with_the_reply_as_a_turn() -> None:
    outcomes: list[Outcome] = []
    opts = options(on_complete=outcomes.append)
    stream([TextDelta("Hi"), Finished("end_turn")], opts)
    [outcome] = outcomes
    assert outcome.reply == Turn("assistant", (TextPart("Hi"),))
    assert outcome.response["id"] == opts.response_id


def test_a_namespace_of_functions_is_offered_and_its_calls_name_it() -> None:
    tool = {"type": "namespace", "name": "agents", "description": "Sub-agents.",
            "tools": [{"type": "function", "name": "close_agent", "parameters": {}}]}  # fmt: skip
    request, opts = decode({"input": "x", "tools": [tool]})
    assert [t.name for t in request.tools] == ["close_agent"]
    raw = stream([ToolCallStart(0, "toolu_c", "close_agent"), Finished("tool_calls")], opts)
    assert raw[-1]["response"]["output"][0]["namespace"] == "agents"
    accumulate(raw)
