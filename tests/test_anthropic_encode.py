"""Encoding internal events as Anthropic Messages output, checked by the anthropic SDK itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast, get_args

import anthropic
import httpx2
import pytest
from anthropic._streaming import SSEDecoder
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from clawrap.core._errors import ClawrapError, ErrorKind
from clawrap.core._events import (
    AgentProgress,
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
from clawrap.core._request import CompletionRequest, TextPart, Turn
from clawrap.protocol.anthropic._dialect import AnthropicMessagesDialect
from clawrap.protocol.anthropic._encode import (
    AnthropicCollector,
    AnthropicStreamEncoder,
    AnthropicWireOptions,
    error_body,
    new_message_id,
    progress_note,
)

OPTIONS = AnthropicWireOptions("msg_01TEST", "claude-sonnet-4-5")
REQUEST = CompletionRequest(
    model="claude-sonnet-4-5",
    requested_model="claude-sonnet-4-5",
    turns=(Turn("user", (TextPart("Hi"),)),),
)
EVENTS = TypeAdapter[Any](RawMessageStreamEvent)

THOUGHT_TEXT_AND_TOOL: list[Event] = [
    ReasoningDelta("Let me "),
    ReasoningDelta("think."),
    ReasoningSignature("sig-1"),
    TextDelta("Checking "),
    TextDelta("the weather."),
    ToolCallStart(0, "toolu_1", "get_weather"),
    ToolCallDelta(0, '{"city": '),
    ToolCallDelta(0, '"Oslo", "days": [1, 2]}'),
    Finished("tool_calls"),
    Usage(12, 34, cache_read_input_tokens=5, cache_creation_input_tokens=6),
]


def stream(events: list[Event], *, finish: bool = True) -> bytes:
    encoder = AnthropicStreamEncoder(REQUEST, OPTIONS)
    out = encoder.start() + b"".join(encoder.encode(e) for e in events)
    return out + encoder.finish() if finish else out


def collect(events: list[Event]) -> dict[str, Any]:
    collector = AnthropicCollector(REQUEST, OPTIONS)
    for event in events:
        collector.add(event)
    return collector.body()


def sse_events(data: bytes) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """(event name, JSON payload) pairs, parsed by the SDK's own SSE decoder."""
    for sse in SSEDecoder().iter_bytes(iter([data])):
        yield sse.event, sse.json()


def accumulate(data: bytes) -> Message:
    """What anthropic-python's stream helper builds from ``data``, events validated strictly."""
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    for name, payload in sse_events(data):
        if name == "ping":
            continue
        event = EVENTS.validate_python(payload)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    return plain(snapshot)


def plain(message: Any) -> Message:
    """A ``Message`` without the stream helper's extras (``parsed_output``), for comparing."""
    return Message.model_validate(message.model_dump(exclude_none=True))


def sdk_client(respond: httpx2.Response) -> anthropic.Anthropic:
    """A real client, validating every response strictly, whose transport answers ``respond``."""
    return anthropic.Anthropic(
        api_key="dummy",
        base_url="http://127.0.0.1:9",
        max_retries=0,
        _strict_response_validation=True,
        http_client=httpx2.Client(transport=httpx2.MockTransport(lambda _: respond)),
    )


def sse_response(data: bytes) -> httpx2.Response:
    return httpx2.Response(200, content=data, headers={"content-type": "text/event-stream"})


def sdk_final_message(data: bytes) -> Message:
    client = sdk_client(sse_response(data))
    with client.messages.stream(
        model="claude-sonnet-5", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    ) as s:
        return plain(s.get_final_message())


def blocks(message: Message) -> list[dict[str, Any]]:
    return [b.model_dump(exclude_none=True) for b in message.content]


# -- the stream, read by the SDK -------------------------------------------------------


def test_sdk_stream_helper_rebuilds_thinking_text_and_tool_use() -> None:
    message = sdk_final_message(stream(THOUGHT_TEXT_AND_TOOL))
    assert message.id == "msg_01TEST" and message.model == "claude-sonnet-4-5"
    assert blocks(message) == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"},
        {"type": "text", "text": "Checking the weather."},
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "get_weather",
            "input": {"city": "Oslo", "days": [1, 2]},
        },
    ]
    assert (message.stop_reason, message.stop_sequence) == ("tool_use", None)
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (12, 34)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (5, 6)


def test_accumulated_events_equal_the_sdk_stream_helper() -> None:
    data = stream(THOUGHT_TEXT_AND_TOOL)
    assert accumulate(data) == sdk_final_message(data)


def test_stop_sequence_is_reported_with_its_text() -> None:
    message = sdk_final_message(stream([TextDelta("a"), Finished("stop_sequence", "END")]))
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("end_turn", "end_turn"),
        ("max_tokens", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("refusal", "refusal"),
    ],
)
def test_finish_reasons_map_to_anthropic_stop_reasons(reason: Any, expected: str) -> None:
    assert accumulate(stream([TextDelta("x"), Finished(reason)])).stop_reason == expected


def test_without_finished_the_stream_still_closes_with_end_turn() -> None:
    data = stream([TextDelta("partial")])
    names = [name for name, _ in sse_events(data)]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert accumulate(data).stop_reason == "end_turn"


def test_stream_starts_with_message_start_then_ping() -> None:
    first, second = list(sse_events(stream([])))[:2]
    assert first == (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01TEST",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-sonnet-4-5",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        },
    )
    assert second == ("ping", {"type": "ping"})


def test_every_event_name_equals_its_json_type() -> None:
    for name, payload in sse_events(stream(THOUGHT_TEXT_AND_TOOL)):
        assert name == payload["type"]


def test_every_frame_ends_with_a_blank_line() -> None:
    data = stream(THOUGHT_TEXT_AND_TOOL)
    frames = data.split(b"\n\n")
    assert frames[-1] == b"" and all(f.startswith(b"event: ") for f in frames[:-1])


def test_usage_after_finished_still_reaches_message_delta() -> None:
    events: list[Event] = [TextDelta("x"), Finished("end_turn"), Usage(7, 3)]
    usage = accumulate(stream(events)).usage
    assert (usage.input_tokens, usage.output_tokens) == (7, 3)


def test_a_signature_without_thinking_text_is_still_a_thinking_block() -> None:
    message = accumulate(stream([ReasoningSignature("s"), TextDelta("hi")]))
    assert blocks(message)[0] == {"type": "thinking", "thinking": "", "signature": "s"}


def test_thinking_after_a_signature_starts_a_new_block() -> None:
    events: list[Event] = [ReasoningDelta("a"), ReasoningSignature("s1"), ReasoningDelta("b")]
    assert [b["thinking"] for b in blocks(accumulate(stream(events)))] == ["a", "b"]


def test_agent_progress_is_a_compact_text_note() -> None:
    events: list[Event] = [
        TextDelta("Looking."),
        AgentProgress("tool_use", "Read", "src/app.py"),
        AgentProgress("tool_result", "Read", ""),
        TextDelta("Done."),
    ]
    assert blocks(accumulate(stream(events))) == [
        {"type": "text", "text": "Looking.\n[Read: src/app.py]\nDone."}
    ]


def test_progress_notes_are_one_short_line() -> None:
    note = progress_note(AgentProgress("tool_use", "Bash", "echo hi\n" * 100))
    assert note.count("\n") == 2 and len(note) < 140
    assert (
        progress_note(AgentProgress("tool_result", "Bash", "exit 0")) == "[Bash result: exit 0]\n"
    )


def test_parallel_tool_calls_are_separate_blocks_in_order() -> None:
    events: list[Event] = [
        ToolCallStart(0, "t0", "a"),
        ToolCallDelta(0, '{"x": 1}'),
        ToolCallStart(1, "t1", "b"),
        ToolCallDelta(1, "{}"),
        Finished("tool_calls"),
    ]
    got = [(b["id"], b["input"]) for b in blocks(accumulate(stream(events)))]
    assert got == [("t0", {"x": 1}), ("t1", {})]


def test_argument_deltas_for_a_closed_tool_block_are_not_sent() -> None:
    events: list[Event] = [ToolCallStart(0, "t0", "a"), TextDelta("x"), ToolCallDelta(0, "{}")]
    names = [name for name, _ in sse_events(stream(events))]
    assert (
        "input_json_delta" not in stream(events).decode() and names.count("content_block_stop") == 2
    )


def test_message_ids_look_like_anthropics_and_differ() -> None:
    a, b = new_message_id(), new_message_id()
    assert a.startswith("msg_01") and len(a) == 28 and a != b


def test_keepalive_is_a_ping_event() -> None:
    encoder = AnthropicStreamEncoder(REQUEST, OPTIONS)
    assert encoder.keepalive() == b'event: ping\ndata: {"type":"ping"}\n\n'


# -- errors ----------------------------------------------------------------------------


def test_mid_stream_error_is_an_error_event_without_message_stop() -> None:
    encoder = AnthropicStreamEncoder(REQUEST, OPTIONS)
    data = encoder.start() + encoder.encode(TextDelta("x"))
    data += encoder.error(ClawrapError("overloaded", "Upstream is overloaded."))
    data += encoder.finish()
    events = list(sse_events(data))
    assert events[-1] == (
        "error",
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Upstream is overloaded."},
        },
    )
    assert all(name != "message_stop" for name, _ in events)


def test_sdk_raises_on_a_mid_stream_error() -> None:
    encoder = AnthropicStreamEncoder(REQUEST, OPTIONS)
    data = encoder.start() + encoder.error(ClawrapError("api_error", "The CLI failed."))
    with pytest.raises(anthropic.APIStatusError, match="The CLI failed"):
        sdk_final_message(data)


KINDS: dict[ErrorKind, tuple[str, int]] = {
    "invalid_request": ("invalid_request_error", 400),
    "authentication": ("authentication_error", 401),
    "permission": ("permission_error", 403),
    "not_found": ("not_found_error", 404),
    "method_not_allowed": ("invalid_request_error", 405),
    "conflict": ("invalid_request_error", 409),
    "request_too_large": ("request_too_large", 413),
    "rate_limit": ("rate_limit_error", 429),
    "api_error": ("api_error", 502),
    "overloaded": ("overloaded_error", 503),
    "timeout": ("timeout_error", 504),
}


def test_every_error_kind_has_an_anthropic_error_type() -> None:
    assert set(KINDS) == set(get_args(ErrorKind))


@pytest.mark.parametrize("kind", list(KINDS))
def test_error_body_type_follows_the_kind(kind: ErrorKind) -> None:
    body = AnthropicMessagesDialect().error_body(ClawrapError(kind, "Nope."))
    assert body == {"type": "error", "error": {"type": KINDS[kind][0], "message": "Nope."}}
    if kind != "request_too_large":  # Anthropic's 413 type, absent from the SDK's models
        ErrorResponse.model_validate(body)


@pytest.mark.parametrize("kind", list(KINDS))
def test_sdk_reads_the_error_body_message(kind: ErrorKind) -> None:
    error = ClawrapError(kind, "Clear words.")
    client = sdk_client(httpx2.Response(error.status, json=error_body(error)))
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == error.status and "Clear words." in str(info.value)


# -- the collector ---------------------------------------------------------------------


def test_collector_body_is_a_valid_message() -> None:
    body = collect(THOUGHT_TEXT_AND_TOOL)
    message = Message.model_validate(body)
    assert body["content"][2]["input"] == {"city": "Oslo", "days": [1, 2]}
    assert (message.stop_reason, message.usage.output_tokens) == ("tool_use", 34)


def test_sdk_create_reads_the_collector_body() -> None:
    body = collect(THOUGHT_TEXT_AND_TOOL)
    client = sdk_client(httpx2.Response(200, json=body))
    message = client.messages.create(
        model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]
    )
    assert plain(message) == accumulate(stream(THOUGHT_TEXT_AND_TOOL))


def test_collector_keeps_unparseable_tool_input_as_empty_and_notes_it() -> None:
    collector = AnthropicCollector(REQUEST, OPTIONS)
    events: list[Event] = [ToolCallStart(0, "t0", "f"), ToolCallDelta(0, '{"x": ')]
    for event in events:
        collector.add(event)
    assert collector.body()["content"][0]["input"] == {}
    assert collector.notes == ["tool call t0 (f): arguments are not a JSON object"]


def test_collector_without_events_is_an_empty_end_turn_message() -> None:
    body = collect([])
    assert (body["content"], body["stop_reason"]) == ([], "end_turn")
    Message.model_validate(body)


# -- properties ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def event_streams(draw: st.DrawFn) -> list[Event]:
    """Arbitrary interleavings of every event kind, as a backend may emit them."""
    events: list[Event] = []
    tools = 0
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["text", "thinking", "signature", "tool", "progress"]))
        if kind == "text":
            events.append(TextDelta(draw(st.text(max_size=6))))
        elif kind == "thinking":
            events.append(ReasoningDelta(draw(st.text(max_size=6))))
        elif kind == "signature":
            events.append(ReasoningSignature(draw(st.text(min_size=1, max_size=6))))
        elif kind == "progress":
            name = draw(st.sampled_from(["Read", "Bash"]))
            step = draw(st.sampled_from(["tool_use", "tool_result"]))
            events.append(AgentProgress(cast(Any, step), name, draw(st.text(max_size=10))))
        else:
            args = json.dumps(draw(st.dictionaries(st.text(max_size=5), json_values, max_size=3)))
            cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=3)))
            events.append(ToolCallStart(tools, f"toolu_{tools}", f"tool_{tools}"))
            pieces = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)], strict=True)]
            events.extend(ToolCallDelta(tools, p) for p in pieces)
            tools += 1
    if draw(st.booleans()):
        events.append(Finished(draw(st.sampled_from(["end_turn", "max_tokens", "tool_calls"]))))
    if draw(st.booleans()):
        events.insert(draw(st.integers(0, len(events))), Usage(1, 2))
    return events


def block_protocol_errors(data: bytes) -> list[str]:
    """Every way ``data`` departs from Anthropic's event order; empty when well formed."""
    names = [name for name, _ in sse_events(data)]
    problems = []
    if names[:2] != ["message_start", "ping"] or names[-2:] != ["message_delta", "message_stop"]:
        problems.append(f"bad envelope {names}")
    open_index, next_index = None, 0
    for name, payload in sse_events(data):
        if name != payload["type"]:
            problems.append(f"event {name} carries {payload['type']}")
        if name == "content_block_start":
            if open_index is not None or payload["index"] != next_index:
                problems.append(f"start {payload['index']} while {open_index} open")
            open_index, next_index = payload["index"], next_index + 1
        elif name in ("content_block_delta", "content_block_stop"):
            if payload["index"] != open_index:
                problems.append(f"{name} {payload['index']} while {open_index} open")
            if name == "content_block_stop":
                open_index = None
        elif name in ("message_delta", "message_stop") and open_index is not None:
            problems.append(f"{name} while block {open_index} open")
    return problems


@settings(max_examples=150, deadline=None)
@given(event_streams())
def test_any_event_stream_gives_well_formed_blocks(events: list[Event]) -> None:
    assert block_protocol_errors(stream(events)) == []


@settings(max_examples=150, deadline=None)
@given(event_streams())
def test_collector_body_equals_what_the_sdk_accumulates_from_the_stream(
    events: list[Event],
) -> None:
    assert plain(Message.model_validate(collect(events))) == accumulate(stream(events))


def test_message_start_carries_the_upstreams_input_tokens() -> None:
    encoder = AnthropicStreamEncoder(REQUEST, OPTIONS)
    # The exchange encodes the first event before it writes the start with it.
    first = encoder.encode(InputTokens(1234))
    data = encoder.start() + first + encoder.encode(TextDelta("Hi")) + encoder.finish()
    events = [payload for _, payload in sse_events(data)]
    assert events[0]["type"] == "message_start"
    assert events[0]["message"]["usage"] == {"input_tokens": 1234, "output_tokens": 0}
    assert accumulate(data).content[0].text == "Hi"  # type: ignore[union-attr]
