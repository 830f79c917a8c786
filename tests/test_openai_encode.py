"""Encoding internal events as OpenAI chat completions, checked with openai-python itself."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError, ErrorKind
from clawrap.core._events import (
    AgentProgress,
    Event,
    Finished,
    FinishReason,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from clawrap.protocol.openai._decode import ChatWireOptions
from clawrap.protocol.openai._dialect import OpenAIChatDialect
from clawrap.protocol.openai._encode import ChatCollector, ChatStreamEncoder, error_body

USAGE = Usage(
    input_tokens=10, output_tokens=5, cache_read_input_tokens=100, cache_creation_input_tokens=3
)


def wire(*, include_usage: bool = True, legacy: bool = False) -> ChatWireOptions:
    return ChatWireOptions(
        model="sonnet",
        include_usage=include_usage,
        legacy_functions=legacy,
        completion_id="chatcmpl-test",
        created=1_700_000_000,
    )


def stream_bytes(events: Iterable[Event], **options: Any) -> bytes:
    encoder = ChatStreamEncoder(wire(**options))
    return encoder.start() + b"".join(encoder.encode(e) for e in events) + encoder.finish()


def sse_payloads(raw: bytes) -> list[str]:
    """The ``data:`` payloads, checking that every event ends with a blank line."""
    assert raw.endswith(b"\n\n")
    payloads = []
    for event in raw.decode().split("\n\n")[:-1]:
        lines = event.split("\n")
        assert all(line.startswith(("data: ", ":")) for line in lines), event
        payloads.extend(line[len("data: ") :] for line in lines if line.startswith("data: "))
    return payloads


def chunks(raw: bytes) -> list[dict[str, Any]]:
    """Every chunk, each validated with openai-python's own model; [DONE] last."""
    payloads = sse_payloads(raw)
    assert payloads[-1] == "[DONE]"
    assert "[DONE]" not in payloads[:-1]
    out = [json.loads(p) for p in payloads[:-1]]
    for chunk in out:
        ChatCompletionChunk.model_validate(chunk)
    return out


def deltas(raw: bytes) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks(raw) if c["choices"]]


def accumulate(raw: bytes) -> Any:
    """openai-python's own stream accumulation (what ``.stream()`` uses).

    The snapshot, not ``get_final_completion()``, which raises on ``length``.
    """
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks(raw):
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    return state.current_completion_snapshot


@contextmanager
def openai_client(status: int, body: bytes, content_type: str) -> Iterator[openai.OpenAI]:
    """The real client, strict about response shapes, reading a canned response."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with openai.OpenAI(
        api_key="test",
        base_url="http://127.0.0.1:9/v1",
        http_client=http,
        max_retries=0,
        _strict_response_validation=True,
    ) as client:
        yield client


def tool_call(index: int, call_id: str, name: str, *pieces: str) -> list[Event]:
    return [ToolCallStart(index, call_id, name), *(ToolCallDelta(index, p) for p in pieces)]


# -- the stream ----------------------------------------------------------------------------


def test_every_chunk_shares_id_created_model_and_object() -> None:
    raw = stream_bytes([TextDelta("a"), TextDelta("b"), USAGE, Finished("end_turn")])
    got = {(c["id"], c["created"], c["model"], c["object"]) for c in chunks(raw)}
    assert got == {("chatcmpl-test", 1_700_000_000, "sonnet", "chat.completion.chunk")}


def test_the_role_is_sent_once_in_the_first_delta_with_empty_content() -> None:
    ds = deltas(stream_bytes([TextDelta("a"), TextDelta("b"), Finished("end_turn")]))
    assert ds[0] == {"role": "assistant", "content": ""}
    assert all("role" not in d for d in ds[1:])


def test_start_sends_the_role_chunk_at_once() -> None:
    encoder = ChatStreamEncoder(wire())
    assert deltas(encoder.start() + encoder.finish())[0]["role"] == "assistant"


def test_text_deltas_become_content_in_order() -> None:
    ds = deltas(stream_bytes([TextDelta("Hel"), TextDelta(""), TextDelta("lo")]))
    assert [d["content"] for d in ds if d.get("content")] == ["Hel", "lo"]


def test_reasoning_deltas_become_reasoning_content() -> None:
    ds = deltas(stream_bytes([ReasoningDelta("hmm"), ReasoningSignature("sig"), TextDelta("x")]))
    assert [d.get("reasoning_content") for d in ds[1:3]] == ["hmm", None]
    assert "sig" not in json.dumps(ds)


def test_agent_progress_is_a_one_line_note_in_reasoning_content() -> None:
    events: list[Event] = [
        ReasoningDelta("thinking"),
        AgentProgress("tool_use", "Bash", "ls -la\n  /tmp"),
        AgentProgress("tool_result", "Bash", "x" * 500),
    ]
    notes = [d["reasoning_content"] for d in deltas(stream_bytes(events))[2:4]]
    assert notes[0] == "\n[tool: Bash] ls -la /tmp\n"
    assert notes[1].startswith("[result: Bash] xxx") and notes[1].endswith("...\n")
    assert notes[1].count("\n") == 1 and len(notes[1]) < 250


def test_a_tool_call_sends_id_type_and_name_only_in_its_first_delta() -> None:
    ds = deltas(stream_bytes(tool_call(0, "call_1", "get_weather", '{"ci', 'ty":"P"}')))
    calls = [d["tool_calls"][0] for d in ds if "tool_calls" in d]
    assert calls[0] == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert calls[1:] == [
        {"index": 0, "function": {"arguments": '{"ci'}},
        {"index": 0, "function": {"arguments": 'ty":"P"}'}},
    ]


def test_parallel_tool_calls_accumulate_exactly_in_openai_python() -> None:
    events = [
        TextDelta("Checking."),
        *tool_call(0, "call_a", "get_weather", '{"city":', '"Paris"}'),
        *tool_call(1, "call_b", "get_time", '{"tz":"CET"}'),
        Finished("tool_calls"),
    ]
    final = accumulate(stream_bytes(events))
    message = final.choices[0].message
    assert message.content == "Checking."
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_time", '{"tz":"CET"}'),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_a_tool_call_without_arguments_gets_an_empty_object() -> None:
    final = accumulate(stream_bytes([*tool_call(0, "c", "now"), Finished("tool_calls")]))
    assert final.choices[0].message.tool_calls[0].function.arguments == "{}"


def test_a_repeated_tool_call_start_is_not_sent_twice() -> None:
    events = [*tool_call(0, "c", "now", "{}"), ToolCallStart(0, "c", "now")]
    final = accumulate(stream_bytes(events))
    assert (
        final.choices[0].message.tool_calls[0].id,
        final.choices[0].message.tool_calls[0].function.name,
    ) == ("c", "now")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_calls", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_finished_maps_to_the_openai_finish_reason(reason: FinishReason, expected: str) -> None:
    cs = chunks(stream_bytes([TextDelta("x"), Finished(reason)]))
    reasons = [c["choices"][0]["finish_reason"] for c in cs if c["choices"]]
    assert reasons[-1] == expected
    assert reasons.count(expected) == 1


def test_the_finish_chunk_has_an_empty_delta() -> None:
    cs = chunks(stream_bytes([TextDelta("x"), Finished("end_turn")]))
    finishing = [c["choices"][0] for c in cs if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishing == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]


def test_tool_calls_ending_the_turn_report_tool_calls() -> None:
    final = accumulate(stream_bytes([*tool_call(0, "c", "now", "{}"), Finished("end_turn")]))
    assert final.choices[0].finish_reason == "tool_calls"


def test_a_finish_reason_is_sent_even_without_finished() -> None:
    cs = chunks(stream_bytes([TextDelta("cut short")]))
    assert [c["choices"][0]["finish_reason"] for c in cs if c["choices"]][-1] == "stop"


def test_an_empty_stream_still_has_role_finish_reason_and_done() -> None:
    encoder = ChatStreamEncoder(wire(include_usage=False))
    ds = chunks(encoder.finish())
    assert ds[0]["choices"][0]["delta"]["role"] == "assistant"
    assert ds[-1]["choices"][0]["finish_reason"] == "stop"


def test_with_include_usage_every_chunk_has_null_usage_and_a_last_usage_chunk() -> None:
    cs = chunks(stream_bytes([TextDelta("x"), Finished("end_turn"), USAGE]))
    assert all(c["usage"] is None for c in cs[:-1])
    assert cs[-1]["choices"] == []
    assert cs[-1]["usage"] == {
        "prompt_tokens": 113,
        "completion_tokens": 5,
        "total_tokens": 118,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


def test_without_include_usage_no_chunk_mentions_usage() -> None:
    cs = chunks(stream_bytes([TextDelta("x"), USAGE, Finished("end_turn")], include_usage=False))
    assert all("usage" not in c and c["choices"] for c in cs)


def test_content_after_finished_is_dropped() -> None:
    ds = deltas(stream_bytes([TextDelta("a"), Finished("end_turn"), TextDelta("late")]))
    assert "late" not in json.dumps(ds)


def test_finish_twice_sends_nothing_more() -> None:
    encoder = ChatStreamEncoder(wire())
    encoder.finish()
    assert encoder.finish() == b""
    assert encoder.encode(TextDelta("x")) == b""


def test_a_mid_stream_error_is_an_error_event_then_done() -> None:
    encoder = ChatStreamEncoder(wire())
    raw = encoder.start() + encoder.encode(TextDelta("x"))
    raw += encoder.error(ClawrapError("overloaded", "Upstream is overloaded."))
    payloads = sse_payloads(raw)
    assert payloads[-1] == "[DONE]"
    assert json.loads(payloads[-2]) == {
        "error": {
            "message": "Upstream is overloaded.",
            "type": "server_error",
            "param": None,
            "code": "overloaded",
        }
    }
    assert encoder.finish() == b""


def test_openai_python_raises_api_error_from_a_mid_stream_error() -> None:
    encoder = ChatStreamEncoder(wire())
    raw = encoder.start() + encoder.error(ClawrapError("api_error", "The run failed."))
    with openai_client(200, raw, "text/event-stream") as client:
        stream = client.chat.completions.create(model="sonnet", messages=[], stream=True)
        with pytest.raises(openai.APIError, match="The run failed"):
            list(stream)


def test_keepalive_is_an_sse_comment() -> None:
    raw = ChatStreamEncoder(wire()).keepalive()
    assert raw.startswith(b":") and raw.endswith(b"\n\n")


def test_legacy_functions_stream_a_function_call() -> None:
    events = [*tool_call(0, "c", "now", '{"a":', "1}"), Finished("tool_calls")]
    raw = stream_bytes(events, legacy=True)
    ds = deltas(raw)
    assert [d["function_call"] for d in ds if "function_call" in d] == [
        {"name": "now", "arguments": ""},
        {"arguments": '{"a":'},
        {"arguments": "1}"},
    ]
    assert chunks(raw)[-2]["choices"][0]["finish_reason"] == "function_call"


def test_the_real_client_reads_the_stream_strictly() -> None:
    events = [
        ReasoningDelta("plan"),
        TextDelta("Hi "),
        TextDelta("there"),
        *tool_call(0, "call_1", "f", '{"x":1}'),
        Finished("tool_calls"),
        USAGE,
    ]
    with openai_client(200, stream_bytes(events), "text/event-stream") as client:
        got = list(client.chat.completions.create(model="sonnet", messages=[], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices) == "Hi there"
    assert got[-1].usage is not None and got[-1].usage.total_tokens == 118


def test_the_stream_helper_of_the_real_client_accumulates_without_doubling() -> None:
    events = [TextDelta("ok"), *tool_call(0, "call_1", "f", '{"x":', "1}"), Finished("tool_calls")]
    with (
        openai_client(200, stream_bytes(events), "text/event-stream") as client,
        client.chat.completions.stream(model="sonnet", messages=[]) as stream,
    ):
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.role == "assistant"
    assert message.content == "ok"
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("call_1", "f", '{"x":1}')


# -- any sequence of events -------------------------------------------------------------------

TEXT = st.text(max_size=6)


@st.composite
def event_sequences(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    calls = 0
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["text", "reasoning", "progress", "call", "args"]))
        if kind == "text":
            events.append(TextDelta(draw(TEXT)))
        elif kind == "reasoning":
            events.append(ReasoningDelta(draw(TEXT)))
        elif kind == "progress":
            events.append(AgentProgress("tool_use", "Read", draw(TEXT)))
        elif kind == "call":
            events.append(ToolCallStart(calls, f"call_{calls}", f"tool_{calls}"))
            calls += 1
        elif calls:
            events.append(ToolCallDelta(draw(st.integers(0, calls - 1)), draw(TEXT)))
    if draw(st.booleans()):
        events.append(USAGE)
    if draw(st.booleans()):
        events.append(Finished(draw(st.sampled_from(list(_REASONS)))))
    return events


_REASONS = ("end_turn", "max_tokens", "stop_sequence", "tool_calls", "refusal")


@settings(max_examples=150, deadline=None)
@given(event_sequences(), st.booleans())
def test_any_event_sequence_accumulates_to_what_the_collector_says(
    events: list[Event], include_usage: bool
) -> None:
    final = accumulate(stream_bytes(events, include_usage=include_usage))
    collector = ChatCollector(wire(include_usage=include_usage))
    for event in events:
        collector.add(event)
    body = ChatCompletion.model_validate(collector.body())
    streamed, collected = final.choices[0], body.choices[0]
    assert streamed.finish_reason == collected.finish_reason
    assert (streamed.message.content or "") == (collected.message.content or "")
    streamed_calls = [
        (c.id, c.function.name, c.function.arguments) for c in streamed.message.tool_calls or []
    ]
    collected_calls = [
        (c.id, c.function.name, c.function.arguments) for c in collected.message.tool_calls or []
    ]
    assert streamed_calls == collected_calls


# -- one JSON body --------------------------------------------------------------------------


def collect(events: Iterable[Event], **options: Any) -> dict[str, Any]:
    collector = ChatCollector(wire(**options))
    for event in events:
        collector.add(event)
    body = collector.body()
    ChatCompletion.model_validate(body)
    return body


def test_the_collected_body_is_a_chat_completion() -> None:
    body = collect([TextDelta("Hello "), TextDelta("world"), USAGE, Finished("end_turn")])
    assert body["id"] == "chatcmpl-test"
    assert body["object"] == "chat.completion"
    assert body["model"] == "sonnet"
    assert body["system_fingerprint"] is None
    assert body["choices"][0]["message"]["content"] == "Hello world"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 113
    assert "reasoning_content" not in body["choices"][0]["message"]
    assert "tool_calls" not in body["choices"][0]["message"]


def test_a_collected_reply_of_only_tool_calls_has_null_content() -> None:
    body = collect([*tool_call(0, "c", "f", '{"a"', ":1}"), Finished("tool_calls")])
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    ]
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_collected_reasoning_is_reasoning_content() -> None:
    body = collect([ReasoningDelta("because"), TextDelta("yes"), Finished("end_turn")])
    assert body["choices"][0]["message"]["reasoning_content"] == "because"


def test_a_collected_reply_without_finished_reports_stop() -> None:
    assert collect([TextDelta("x")])["choices"][0]["finish_reason"] == "stop"


def test_usage_after_finished_is_collected() -> None:
    body = collect([TextDelta("x"), Finished("max_tokens"), USAGE])
    assert body["usage"]["completion_tokens"] == 5
    assert body["choices"][0]["finish_reason"] == "length"


def test_a_collected_legacy_reply_has_a_function_call() -> None:
    body = collect([*tool_call(0, "c", "f", "{}"), Finished("tool_calls")], legacy=True)
    message = body["choices"][0]["message"]
    assert message["function_call"] == {"name": "f", "arguments": "{}"}
    assert "tool_calls" not in message
    assert body["choices"][0]["finish_reason"] == "function_call"


def test_the_real_client_reads_the_collected_body_strictly() -> None:
    body = collect([TextDelta("hi"), USAGE, Finished("end_turn")])
    with openai_client(200, json.dumps(body).encode(), "application/json") as client:
        got = client.chat.completions.create(model="sonnet", messages=[])
    assert got.choices[0].message.content == "hi"


# -- errors and the dialect ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [
        ("invalid_request", "invalid_request_error"),
        ("authentication", "authentication_error"),
        ("permission", "permission_error"),
        ("not_found", "invalid_request_error"),
        ("method_not_allowed", "invalid_request_error"),
        ("conflict", "invalid_request_error"),
        ("request_too_large", "invalid_request_error"),
        ("rate_limit", "rate_limit_error"),
        ("api_error", "api_error"),
        ("overloaded", "server_error"),
        ("timeout", "timeout"),
    ],
)
def test_error_bodies_carry_the_openai_error_type(kind: ErrorKind, error_type: str) -> None:
    body = error_body(ClawrapError(kind, "nope", param="p", code="c"))
    assert body == {"error": {"message": "nope", "type": error_type, "param": "p", "code": "c"}}


def test_a_model_not_found_error_keeps_its_code() -> None:
    err = ClawrapError("not_found", "no such model", param="model", code="model_not_found")
    assert error_body(err)["error"]["code"] == "model_not_found"


def test_the_real_client_raises_the_matching_error_from_an_error_body() -> None:
    body = error_body(ClawrapError("invalid_request", "Only n=1 is supported.", param="n"))
    with (
        openai_client(400, json.dumps(body).encode(), "application/json") as client,
        pytest.raises(openai.BadRequestError) as info,
    ):
        client.chat.completions.create(model="sonnet", messages=[])
    assert info.value.param == "n"
    assert "Only n=1" in info.value.message


def test_the_dialect_decodes_and_builds_encoders() -> None:
    dialect = OpenAIChatDialect()
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    request, options = dialect.decode(body, {}, Settings())
    assert dialect.name == "openai"
    assert isinstance(dialect.stream_encoder(request, options), ChatStreamEncoder)
    assert isinstance(dialect.collector(request, options), ChatCollector)
    assert dialect.error_body(ClawrapError("timeout", "slow"))["error"]["type"] == "timeout"
