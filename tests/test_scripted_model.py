"""The scripted model without I/O: picking a reply, rendering it as JSON and as SSE events."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from clawrap.scripted._model import (
    RecordedRequest,
    Reply,
    ScriptedModel,
    SseEvent,
    ToolUse,
    find_directive,
    last_user_line,
    render_error,
    render_message,
    render_stream,
    reply_from_json,
    split_words,
)


def user(*texts: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": t} for t in texts]}


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-scripted", "messages": list(messages), **extra}


def deltas_of(events: list[SseEvent], kind: str) -> list[Any]:
    return [e.data["delta"] for e in events if e.is_delta and e.data["delta"]["type"] == kind]


def accumulate(events: list[SseEvent]) -> dict[str, Any]:
    """What a client rebuilds from the stream (like the SDKs' accumulators)."""
    message: dict[str, Any] = {}
    partial_json: dict[int, str] = {}
    for event in events:
        data = event.data
        if event.type == "message_start":
            message = json.loads(json.dumps(data["message"]))
        elif event.type == "content_block_start":
            message["content"].append(dict(data["content_block"]))
        elif event.type == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            else:
                partial_json[data["index"]] = (
                    partial_json.get(data["index"], "") + delta["partial_json"]
                )
        elif event.type == "content_block_stop" and data["index"] in partial_json:
            message["content"][data["index"]]["input"] = json.loads(partial_json[data["index"]])
        elif event.type == "message_delta":
            message.update(data["delta"])
            message["usage"].update(data["usage"])
    return message


# -- rendering


def test_text_streams_word_by_word_and_joins_back_exactly() -> None:
    events = render_stream(Reply(text="Hello  brave\nnew world. "), body(user("hi")))
    parts = [d["text"] for d in deltas_of(events, "text_delta")]
    assert parts == ["Hello", "  brave", "\nnew", " world.", " "]
    assert "".join(parts) == "Hello  brave\nnew world. "


def test_a_token_reply_is_one_delta_per_token_and_counts_them_as_output() -> None:
    events = render_stream(Reply(tokens=50), body(user("hi")))
    parts = [d["text"] for d in deltas_of(events, "text_delta")]
    assert len(parts) == 50
    assert "".join(parts) == " ".join(f"tok{i}" for i in range(1, 51))
    assert events[-2].data["usage"] == {"output_tokens": 50}


def test_explicit_deltas_are_sent_as_given() -> None:
    events = render_stream(Reply(deltas=["a", "", "bc"]), body(user("hi")))
    assert [d["text"] for d in deltas_of(events, "text_delta")] == ["a", "", "bc"]


def test_the_stream_has_the_messages_api_event_order() -> None:
    events = render_stream(Reply(text="one two"), body(user("hi")))
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0].data["message"]["content"] == []
    assert events[-2].data["delta"]["stop_reason"] == "end_turn"


def test_an_event_encodes_as_named_sse() -> None:
    event = SseEvent("message_stop", {"type": "message_stop"})
    assert event.encode() == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def test_tool_input_streams_as_several_json_pieces() -> None:
    tool = ToolUse("search", {"query": "trio nurseries", "limit": 10})
    events = render_stream(Reply(tool_uses=[tool]), body(user("hi")))
    pieces = [d["partial_json"] for d in deltas_of(events, "input_json_delta")]
    assert len(pieces) > 1
    assert json.loads("".join(pieces)) == tool.input
    start = next(e for e in events if e.type == "content_block_start")
    assert start.data["content_block"]["input"] == {}
    assert events[-2].data["delta"]["stop_reason"] == "tool_use"


def test_parallel_tool_calls_are_separate_blocks_with_distinct_ids() -> None:
    reply = Reply(tool_uses=[ToolUse("a", {"x": 1}), ToolUse("b", {"y": 2})])
    content = render_message(reply, body(user("hi")))["content"]
    assert [b["name"] for b in content] == ["a", "b"]
    assert content[0]["id"] != content[1]["id"]
    assert all(b["id"].startswith("toolu_") for b in content)


def test_a_tool_name_becomes_the_requests_mcp_tool_name() -> None:
    tools = [{"name": "Bash"}, {"name": "mcp__clawrap__get_weather"}]
    reply = Reply(tool_uses=[ToolUse("get_weather", {}, id="toolu_1"), ToolUse("Bash", {})])
    content = render_message(reply, body(user("hi"), tools=tools))["content"]
    assert [b["name"] for b in content] == ["mcp__clawrap__get_weather", "Bash"]
    assert content[0]["id"] == "toolu_1"


def test_thinking_streams_first_then_its_signature() -> None:
    events = render_stream(Reply(thinking="let me see", text="ok"), body(user("hi")))
    starts = [e.data["content_block"]["type"] for e in events if e.type == "content_block_start"]
    assert starts == ["thinking", "text"]
    assert "".join(d["thinking"] for d in deltas_of(events, "thinking_delta")) == "let me see"
    assert deltas_of(events, "signature_delta") == [
        {"type": "signature_delta", "signature": Reply().signature}
    ]


@pytest.mark.parametrize(
    "reply",
    [
        Reply(text="plain words here"),
        Reply(tokens=7, input_tokens=3, output_tokens=99, stop_reason="max_tokens"),
        Reply(thinking="hmm", deltas=["x", "y"]),
        Reply(text="calling", tool_uses=[ToolUse("t", {"a": [1, 2, {"b": "c"}]}, id="toolu_x")]),
        Reply(),
    ],
)
def test_the_stream_rebuilds_into_the_json_body(reply: Reply) -> None:
    request = body(user("hi"))
    whole = render_message(reply, request, message_id="msg_1")
    assert accumulate(render_stream(reply, request, message_id="msg_1")) == whole


@given(st.text(max_size=60))
def test_split_words_never_loses_text(text: str) -> None:
    assert "".join(split_words(text)) == text


def test_usage_defaults_to_a_rough_input_count_and_the_delta_count() -> None:
    usage = render_message(Reply(tokens=4), body(user("x" * 400)))["usage"]
    assert usage["output_tokens"] == 4
    assert usage["input_tokens"] >= 100


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, "authentication_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_an_error_status_maps_to_anthropics_error_type(status: int, error_type: str) -> None:
    error = render_error(Reply(status=status))
    assert error["type"] == "error"
    assert error["error"]["type"] == error_type


def test_an_error_can_name_its_own_type_and_message() -> None:
    error = render_error(Reply(status=400, error_type="invalid_request_error", message="nope"))
    assert error == {"type": "error", "error": {"type": "invalid_request_error", "message": "nope"}}


def test_a_reply_takes_at_most_one_kind_of_text() -> None:
    with pytest.raises(ValueError, match="at most one"):
        Reply(text="a", tokens=3)


# -- replies from JSON


def test_a_reply_reads_from_json_with_tool_uses_as_objects() -> None:
    reply = reply_from_json({"text": "hi", "tool_uses": [{"name": "f", "input": {"a": 1}}]})
    assert reply == Reply(text="hi", tool_uses=(ToolUse("f", {"a": 1}),))


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"txt": "typo"},
        {"tokens": "five"},
        {"delay": True},
        {"deltas": ["a", 1]},
        {"tool_uses": [{"input": {}}]},
        {"tool_uses": [{"name": "f", "input": []}]},
        {"status": 302},
        {"stall_after": -1},
        {"tokens": 10**9},
        {"delay": 1e9},
        {
            "then": {
                "then": {"then": {"then": {"then": {"then": {"then": {"then": {"then": {}}}}}}}}
            }
        },
    ],
)
def test_a_malformed_json_reply_is_refused(raw: Any) -> None:
    with pytest.raises(ValueError):
        reply_from_json(raw)


# -- picking


def test_a_rule_answers_in_order_and_repeats_its_last_reply() -> None:
    model = ScriptedModel()
    model.when("MARK", Reply(text="first"), Reply(text="second"))
    picked = [model.pick(body(user("say MARK"))).text for _ in range(3)]
    assert picked == ["first", "second", "second"]


def test_a_rule_matches_tool_result_contents() -> None:
    model = ScriptedModel()
    model.when("RESULT-42", Reply(text="got it"))
    result = {
        "type": "tool_result",
        "tool_use_id": "t",
        "content": [{"type": "text", "text": "RESULT-42"}],
    }
    assert model.pick(body({"role": "user", "content": [result]})).text == "got it"


def test_a_rule_ignores_the_system_prompt_and_system_messages() -> None:
    model = ScriptedModel(default=Reply(text="default"))
    model.when("SECRET", Reply(text="matched"))
    request = body(
        {"role": "system", "content": "SECRET"}, user("hello"), system="SECRET system prompt"
    )
    assert model.pick(request).text == "default"


def test_rules_prefer_the_marker_in_the_latest_message() -> None:
    model = ScriptedModel()
    model.when("OLD", Reply(text="old"))
    model.when("NEW", Reply(text="new"))
    request = body(user("OLD"), {"role": "assistant", "content": "ok"}, user("NEW"))
    assert model.pick(request).text == "new"


def test_a_rule_wins_over_a_directive() -> None:
    model = ScriptedModel()
    model.when("MARK", Reply(text="rule"))
    assert model.pick(body(user('MARK [[mock:{"text": "directive"}]]'))).text == "rule"


def test_the_directive_in_the_latest_user_text_wins() -> None:
    request = body(
        user('[[mock:{"text": "old"}]]'),
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        user("<system-reminder>x</system-reminder>", '[[mock:{"tokens": 3}]]'),
    )
    assert find_directive(request) == Reply(tokens=3)


def test_a_directive_in_assistant_text_is_ignored() -> None:
    request = body(user("hi"), {"role": "assistant", "content": '[[mock:{"text": "x"}]]'})
    assert find_directive(request) is None


def tool_result(text: str) -> dict[str, Any]:
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": text}
    return {"role": "user", "content": [result]}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


SCRIPT = '[[mock:{"tool_uses": [{"name": "f"}], "then": [{"text": "done"}]}]]'


def test_a_directives_then_replies_answer_the_turns_after_tool_results() -> None:
    first = body(user(SCRIPT))
    second = body(user(SCRIPT), assistant("calling"), tool_result("42"))
    assert find_directive(first) == Reply(tool_uses=[ToolUse("f")], then=[Reply(text="done")])
    assert find_directive(second) == Reply(text="done")


def test_a_directive_runs_out_after_its_then_replies() -> None:
    third = body(user(SCRIPT), assistant("a"), tool_result("1"), assistant("b"), tool_result("2"))
    assert find_directive(third) is None


def test_a_newer_typed_message_ends_an_older_directive() -> None:
    request = body(user('[[mock:{"status": 529}]]'), assistant("error"), user("try again"))
    assert find_directive(request) is None


@pytest.mark.parametrize(
    "text", ["[[mock:{not json}]]", '[[mock:{"text": "a"}', '[[mock:{"bad": 1}]]']
)
def test_a_malformed_directive_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        ScriptedModel().pick(body(user(text)))


def test_the_default_reply_says_it_is_not_claude_and_quotes_the_user() -> None:
    request = body(
        user(
            "<system-reminder>\nToday's date is 2026-11-24.\n</system-reminder>\n", "What is\ntrio?"
        )
    )
    text = ScriptedModel().pick(request).text or ""
    assert "not Claude" in text
    assert '"trio?"' in text
    assert "ANTHROPIC_API_KEY" in text


def test_the_last_user_line_skips_reminders_and_tool_results() -> None:
    result = {"type": "tool_result", "tool_use_id": "t", "content": "tool output"}
    request = body(
        user("<system-reminder>r</system-reminder>", "line one\nline two"),
        {"role": "user", "content": [result]},
    )
    assert last_user_line(request) == "line two"


def test_a_plain_string_message_is_read_like_a_text_block() -> None:
    model = ScriptedModel()
    model.when("MARK", Reply(text="yes"))
    assert model.pick(body({"role": "user", "content": "MARK"})).text == "yes"


def test_hostile_bodies_fall_back_to_the_default_reply() -> None:
    model = ScriptedModel(default=Reply(text="default"))
    hostile: Any
    for hostile in [None, [], {"messages": "x"}, {"messages": [1, {"content": {"a": 1}}]}]:
        assert model.pick(hostile).text == "default"


# -- recording


def recorded(text: str) -> RecordedRequest:
    return RecordedRequest("POST", "/v1/messages", {}, body(user(text), system="SYS"))


def test_requests_matching_finds_markers_in_messages_and_system_prompt() -> None:
    model = ScriptedModel()
    first, second = recorded("alpha"), recorded("beta")
    model.record(first)
    model.record(second)
    assert model.requests_matching("beta") == [second]
    assert model.requests_matching("SYS") == [first, second]


async def test_waiting_for_the_nth_request_wakes_when_it_is_recorded() -> None:
    model = ScriptedModel()
    got: list[RecordedRequest] = []

    async def wait() -> None:
        got.extend(await model.wait_for_requests(2))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            model.record(recorded("one"))
            await trio.testing.wait_all_tasks_blocked()
            assert got == []
            model.record(recorded("two"))
    assert [r.text for r in got] == ["one", "two"]
