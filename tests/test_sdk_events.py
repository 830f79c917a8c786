"""SDK messages of one turn become internal events, shaped as the real CLI sends them.

The CLI yields a StreamEvent per upstream SSE event, repeats the content in an
AssistantMessage before the stream ends, and closes the turn with a ResultMessage.
"""

from __future__ import annotations

from typing import Any

import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    TextBlock,
    ToolUseBlock,
)
from claude_agent_sdk.types import Message

from clawrap.claude._client_tools import ClientTools
from clawrap.claude._sdk_events import TurnTranslator, usage_from_result
from clawrap.core._errors import ClawrapError
from clawrap.core._events import (
    Event,
    Finished,
    InputTokens,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)


def se(event: dict[str, Any], parent: str | None = None) -> StreamEvent:
    return StreamEvent(uuid="u", session_id="s", event=event, parent_tool_use_id=parent)


def start(msg_id: str = "msg_1") -> StreamEvent:
    return se({"type": "message_start", "message": {"id": msg_id, "content": []}})


def block(index: int, content_block: dict[str, Any]) -> StreamEvent:
    return se({"type": "content_block_start", "index": index, "content_block": content_block})


def delta(index: int, d: dict[str, Any]) -> StreamEvent:
    return se({"type": "content_block_delta", "index": index, "delta": d})


def text(index: int, t: str) -> StreamEvent:
    return delta(index, {"type": "text_delta", "text": t})


def stop(reason: str, sequence: str | None = None) -> StreamEvent:
    return se(
        {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence}}
    )


def result(**overrides: Any) -> ResultMessage:
    fields: dict[str, Any] = {
        "subtype": "success",
        "duration_ms": 300,
        "duration_api_ms": 200,
        "is_error": False,
        "num_turns": 1,
        "session_id": "s",
        "stop_reason": "end_turn",
        "total_cost_usd": 0.00009,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 4,
            "cache_read_input_tokens": 3,
            "cache_creation_input_tokens": 2,
        },
    }
    fields.update(overrides)
    return ResultMessage(**fields)


def feed_all(messages: list[Message], tools: ClientTools | None = None) -> list[Event]:
    translator = TurnTranslator(tools)
    out: list[Event] = []
    for m in messages:
        out.extend(translator.feed(m))
    return out


USAGE = Usage(10, 4, 3, 2, 0.00009)


def test_each_upstream_text_delta_becomes_one_text_event_in_order() -> None:
    events = feed_all(
        [start(), block(0, {"type": "text", "text": ""}), text(0, "Hel"), text(0, "lo")]
    )
    assert events == [TextDelta("Hel"), TextDelta("lo")]


def test_the_first_delta_is_emitted_on_its_own_stream_event() -> None:
    translator = TurnTranslator()
    assert translator.feed(start()) == []
    assert translator.feed(text(0, "Hi")) == [TextDelta("Hi")]


def test_the_upstreams_input_token_count_comes_first_and_once() -> None:
    def started(msg_id: str, tokens: int) -> StreamEvent:
        message = {"id": msg_id, "content": [], "usage": {"input_tokens": tokens}}
        return se({"type": "message_start", "message": message})

    translator = TurnTranslator()
    assert translator.feed(started("msg_1", 1234)) == [InputTokens(1234)]
    assert not translator.content_sent  # a failed reused process may still be retried
    assert translator.feed(started("msg_2", 99)) == []


def test_the_assistant_message_repeating_streamed_content_adds_nothing() -> None:
    repeat = AssistantMessage(content=[TextBlock("Hello")], model="m", message_id="msg_1")
    events = feed_all([start(), text(0, "Hello"), repeat, stop("end_turn"), result()])
    assert events == [TextDelta("Hello"), USAGE, Finished("end_turn")]


def test_an_assistant_message_that_was_never_streamed_is_emitted_whole() -> None:
    whole = AssistantMessage(content=[TextBlock("Whole")], model="m", message_id="msg_9")
    assert feed_all([whole]) == [TextDelta("Whole")]


def test_thinking_streams_as_reasoning_then_its_signature() -> None:
    events = feed_all(
        [
            block(0, {"type": "thinking", "thinking": "", "signature": ""}),
            delta(0, {"type": "thinking_delta", "thinking": "hmm"}),
            delta(0, {"type": "signature_delta", "signature": "sig"}),
        ]
    )
    assert events == [ReasoningDelta("hmm"), ReasoningSignature("sig")]


def test_the_result_gives_usage_then_the_finish_reason() -> None:
    assert feed_all([stop("end_turn"), result()]) == [USAGE, Finished("end_turn")]


@pytest.mark.parametrize(
    ("upstream", "finish"),
    [
        ("end_turn", "end_turn"),
        ("max_tokens", "max_tokens"),
        ("stop_sequence", "stop_sequence"),
        ("refusal", "refusal"),
        ("model_context_window_exceeded", "max_tokens"),
    ],
)
def test_upstream_stop_reasons_map_to_finish_reasons(upstream: str, finish: str) -> None:
    events = feed_all([stop(upstream), result(stop_reason=upstream)])
    assert isinstance(events[-1], Finished) and events[-1].reason == finish


def test_a_stop_sequence_is_reported_with_its_text() -> None:
    events = feed_all([stop("stop_sequence", "END"), result(stop_reason="stop_sequence")])
    assert events[-1] == Finished("stop_sequence", "END")


def test_a_client_tool_call_streams_with_the_clients_own_name() -> None:
    events = feed_all(
        [
            block(0, {"type": "text", "text": ""}),
            text(0, "Checking."),
            block(1, {"type": "tool_use", "id": "toolu_1", "name": "mcp__clawrap__get_weather"}),
            delta(1, {"type": "input_json_delta", "partial_json": '{"city":'}),
            delta(1, {"type": "input_json_delta", "partial_json": '"Paris"}'}),
            stop("tool_use"),
            result(stop_reason="tool_deferred"),
        ],
        ClientTools(),
    )
    assert events == [
        TextDelta("Checking."),
        ToolCallStart(0, "toolu_1", "get_weather"),
        ToolCallDelta(0, '{"city":'),
        ToolCallDelta(0, '"Paris"}'),
        USAGE,
        Finished("tool_calls"),
    ]


def test_parallel_tool_calls_are_numbered_from_zero_in_order() -> None:
    events = feed_all(
        [
            block(0, {"type": "tool_use", "id": "a", "name": "mcp__clawrap__one"}),
            block(1, {"type": "tool_use", "id": "b", "name": "mcp__clawrap__two"}),
            delta(1, {"type": "input_json_delta", "partial_json": "{}"}),
        ],
        ClientTools(),
    )
    assert events == [
        ToolCallStart(0, "a", "one"),
        ToolCallStart(1, "b", "two"),
        ToolCallDelta(1, "{}"),
    ]


def test_a_call_to_a_tool_that_is_not_the_clients_is_not_shown() -> None:
    events = feed_all(
        [
            block(0, {"type": "tool_use", "id": "a", "name": "Bash"}),
            delta(0, {"type": "input_json_delta", "partial_json": "{}"}),
        ],
        ClientTools(),
    )
    assert events == []


def test_a_tool_call_that_hit_the_turn_limit_still_finishes_as_tool_calls() -> None:
    events = feed_all(
        [
            block(0, {"type": "tool_use", "id": "a", "name": "mcp__clawrap__one"}),
            stop("tool_use"),
            result(subtype="error_max_turns", is_error=True, terminal_reason="max_turns"),
        ],
        ClientTools(),
    )
    assert events[-1] == Finished("tool_calls")


def test_a_whole_tool_use_message_that_was_never_streamed_is_emitted() -> None:
    whole = AssistantMessage(
        content=[ToolUseBlock("t1", "mcp__clawrap__one", {"a": 1})], model="m", message_id="x"
    )
    assert feed_all([whole], ClientTools()) == [
        ToolCallStart(0, "t1", "one"),
        ToolCallDelta(0, '{"a": 1}'),
    ]


def test_subagent_stream_events_are_ignored() -> None:
    assert feed_all([text(0, "inner")], None) == [TextDelta("inner")]
    assert (
        feed_all(
            [
                se(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "x"},
                    },
                    parent="t",
                )
            ]
        )
        == []
    )


def test_system_messages_produce_nothing() -> None:
    assert feed_all([SystemMessage("init", {"type": "system", "subtype": "init"})]) == []


def test_a_failed_result_raises_the_mapped_error() -> None:
    failed = result(is_error=True, api_error_status=429, terminal_reason="api_error")
    with pytest.raises(ClawrapError) as info:
        feed_all([failed])
    assert info.value.status == 429


def test_the_synthetic_error_message_is_used_when_the_result_lacks_a_status() -> None:
    synthetic = AssistantMessage(
        content=[TextBlock("Failed to authenticate.")],
        model="<synthetic>",
        error="authentication_failed",
    )
    translator = TurnTranslator()
    assert translator.feed(synthetic) == []
    with pytest.raises(ClawrapError) as info:
        translator.feed(result(is_error=True, subtype="error_during_execution"))
    assert info.value.status == 401


def test_a_stream_that_ends_without_a_result_is_a_process_failure() -> None:
    translator = TurnTranslator()
    translator.feed(text(0, "partial"))
    assert translator.unfinished_error().code == "cli_process_failed"


def test_an_interrupted_turn_reports_usage_from_the_per_model_counts() -> None:
    interrupted = result(
        subtype="error_during_execution",
        is_error=True,
        terminal_reason="aborted_streaming",
        usage={"input_tokens": 0, "output_tokens": 0},
        model_usage={"claude": {"inputTokens": 10, "outputTokens": 2, "costUSD": 0.1}},
        total_cost_usd=0.00006,
    )
    assert usage_from_result(interrupted) == Usage(10, 2, 0, 0, 0.00006)


def test_malformed_stream_events_are_ignored() -> None:
    junk: list[Message] = [
        se({"type": "content_block_delta", "delta": "nope"}),
        se({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}}),
        se({"type": "content_block_start", "content_block": None}),
        se({"type": "message_start", "message": []}),
        se({}),
    ]
    assert feed_all(junk, ClientTools()) == []


def test_nothing_after_the_models_message_is_content() -> None:
    translator = TurnTranslator()
    translator.feed(text(0, "cut"))
    translator.feed(stop("max_tokens"))
    translator.feed(se({"type": "message_stop"}))
    assert translator.needs_interrupt
    assert translator.feed(start("msg_2")) == []
    assert translator.feed(text(0, "continued")) == []
    assert translator.feed(stop("end_turn")) == []
    interrupted = result(is_error=True, subtype="error_during_execution", stop_reason=None)
    interrupted.terminal_reason = "aborted_streaming"
    assert translator.feed(interrupted)[-1] == Finished("max_tokens")


class _SingleCallTools(ClientTools):
    def __init__(self) -> None:
        super().__init__()
        self.single_call = True


def test_with_parallel_calls_off_only_the_first_call_reaches_the_client() -> None:
    events = feed_all(
        [
            block(0, {"type": "tool_use", "id": "a", "name": "mcp__clawrap__one"}),
            delta(0, {"type": "input_json_delta", "partial_json": "{}"}),
            block(1, {"type": "tool_use", "id": "b", "name": "mcp__clawrap__two"}),
            delta(1, {"type": "input_json_delta", "partial_json": "{}"}),
        ],
        _SingleCallTools(),
    )
    assert events == [ToolCallStart(0, "a", "one"), ToolCallDelta(0, "{}")]
