"""Conversation history as a CLI transcript: normalisation, entries, files (no CLI started)."""

from __future__ import annotations

import json
import os
import stat
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from clawrap.claude._transcript import (
    LEADING_USER_TEXT,
    RESUME_ENV,
    RESUME_PROMPT,
    plan_history,
    project_key,
    split_history,
    to_messages,
    transcript_entries,
)
from clawrap.core._errors import ClawrapError
from clawrap.core._request import (
    CompletionRequest,
    DocumentPart,
    ImagePart,
    NamedTool,
    Part,
    TextPart,
    ThinkingPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
    Turn,
)

WEATHER = ToolSpec("get_weather", "Weather", {"type": "object", "properties": {}})
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def user(*parts: Part | str) -> Turn:
    return Turn("user", tuple(TextPart(p) if isinstance(p, str) else p for p in parts))


def assistant(*parts: Part | str) -> Turn:
    return Turn("assistant", tuple(TextPart(p) if isinstance(p, str) else p for p in parts))


def call(n: int, city: str = "Paris") -> ToolUsePart:
    return ToolUsePart(f"toolu_{n}", "get_weather", {"city": city})


def result(n: int, text: str = "sunny", is_error: bool = False) -> ToolResultPart:
    return ToolResultPart(f"toolu_{n}", (TextPart(text),), is_error)


def request(
    *turns: Turn, tools: tuple[ToolSpec, ...] = (WEATHER,), tool_choice: ToolChoice = "auto"
) -> CompletionRequest:
    return CompletionRequest(
        model="claude-sonnet-4-5",
        requested_model="claude-sonnet-4-5",
        turns=turns,
        tools=tools,
        tool_choice=tool_choice,
    )


TOOL_LOOP = (
    user("weather in Paris and Rome?"),
    assistant("Checking.", call(1), call(2, "Rome")),
    user(result(1), result(2, "boom", is_error=True)),
)


# ---------------------------------------------------------------- splitting


def test_a_single_user_turn_is_just_the_prompt() -> None:
    history, prompt = split_history(request(user("hello")))
    assert history == []
    assert prompt == {"role": "user", "content": [{"type": "text", "text": "hello"}]}


def test_earlier_turns_go_to_the_transcript_and_the_last_is_the_prompt() -> None:
    history, prompt = split_history(request(user("a"), assistant("b"), user("c")))
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert prompt == {"role": "user", "content": [{"type": "text", "text": "c"}]}


def test_a_last_turn_of_tool_results_goes_to_the_transcript_with_no_prompt() -> None:
    history, prompt = split_history(request(*TOOL_LOOP))
    assert prompt is None
    assert [m["role"] for m in history] == ["user", "assistant", "user"]


def test_prefill_is_refused() -> None:
    with pytest.raises(ClawrapError) as caught:
        split_history(request(user("a"), assistant("{")))
    assert caught.value.status == 400
    assert "prefill" in caught.value.message


def test_an_empty_conversation_is_refused() -> None:
    with pytest.raises(ClawrapError):
        split_history(request(user("   ")))


# ---------------------------------------------------------------- blocks


def test_tool_calls_and_results_become_real_blocks_under_the_model_side_name() -> None:
    history, _ = split_history(request(*TOOL_LOOP))
    assert history[1]["content"] == [
        {"type": "text", "text": "Checking."},
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "mcp__clawrap__get_weather",
            "input": {"city": "Paris"},
        },
        {
            "type": "tool_use",
            "id": "toolu_2",
            "name": "mcp__clawrap__get_weather",
            "input": {"city": "Rome"},
        },
    ]
    assert history[2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": [{"type": "text", "text": "sunny"}],
        },
        {
            "type": "tool_result",
            "tool_use_id": "toolu_2",
            "content": [{"type": "text", "text": "boom"}],
            "is_error": True,
        },
    ]


def test_images_and_documents_keep_their_data() -> None:
    (message,) = to_messages(
        [
            user(
                ImagePart("image/png", PNG),
                ImagePart("", "", url="https://example.com/a.png"),
                DocumentPart("application/pdf", "JVBERi0=", "spec.pdf"),
            )
        ]
    )
    assert message["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "spec.pdf",
        },
    ]


def test_an_image_in_a_tool_result_stays_an_image() -> None:
    part = ToolResultPart("toolu_1", (ImagePart("image/png", PNG),))
    (_, _, message) = to_messages([user("q"), assistant(call(1)), user(part)])
    assert message["content"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    ]


def test_signed_thinking_is_kept() -> None:
    (_, message) = to_messages([user("q"), assistant(ThinkingPart("hmm", "sig"), "a")])
    assert message["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": "sig"}


def test_unsigned_thinking_is_dropped() -> None:
    (_, message) = to_messages([user("q"), assistant(ThinkingPart("hmm"), "a")])
    assert message["content"] == [{"type": "text", "text": "a"}]


def test_without_tools_offered_calls_and_results_become_text() -> None:
    history, prompt = split_history(request(*TOOL_LOOP, tools=()))
    assert history[1]["content"][1] == {
        "type": "text",
        "text": '[called tool get_weather with {"city": "Paris"}]',
    }
    assert prompt is not None
    assert prompt["content"] == [
        {"type": "text", "text": "[result of tool call toolu_1: sunny]"},
        {"type": "text", "text": "[error from tool call toolu_2: boom]"},
    ]


def test_tool_choice_none_renders_the_tool_history_as_text() -> None:
    history, prompt = split_history(request(*TOOL_LOOP, tool_choice="none"))
    assert prompt is not None  # the results are text now, so they can be sent
    assert all(b["type"] == "text" for m in history for b in m["content"])


def test_a_named_tool_choice_keeps_real_blocks() -> None:
    history, _ = split_history(request(*TOOL_LOOP, tool_choice=NamedTool("get_weather")))
    assert history[1]["content"][1]["type"] == "tool_use"


# ---------------------------------------------------------------- normalisation


def test_consecutive_user_turns_merge_with_tool_results_first() -> None:
    turns = [user("q"), assistant(call(1), call(2)), user(result(1)), user("note"), user(result(2))]
    messages = to_messages(turns)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [b["type"] for b in messages[2]["content"]] == ["tool_result", "tool_result", "text"]


def test_consecutive_assistant_turns_merge() -> None:
    messages = to_messages([user("q"), assistant("a"), assistant("b")])
    assert messages[1]["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]


def test_empty_turns_and_blank_text_are_dropped() -> None:
    messages = to_messages([user("q", "  "), assistant(""), user("r")])
    assert messages == [
        {"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "text", "text": "r"}]}
    ]


def test_a_leading_assistant_turn_gets_a_user_turn_before_it() -> None:
    messages = to_messages([assistant("How can I help?"), user("q")])
    assert messages[0] == {"role": "user", "content": [{"type": "text", "text": LEADING_USER_TEXT}]}
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]


def test_a_call_without_a_result_is_refused() -> None:
    with pytest.raises(ClawrapError) as caught:
        split_history(request(user("q"), assistant(call(1), call(2)), user(result(1))))
    assert "toolu_2" in caught.value.message


def test_a_result_without_a_call_is_refused() -> None:
    with pytest.raises(ClawrapError) as caught:
        split_history(request(user("q"), assistant("a"), user(result(7))))
    assert "toolu_7" in caught.value.message


# ---------------------------------------------------------------- entries


def entries_for(*turns: Turn) -> list[dict[str, object]]:
    history, _ = split_history(request(*turns))
    ids = count(1)
    return transcript_entries(
        history,
        session_id="sess",
        cwd="/work",
        model="claude-sonnet-4-5",
        timestamp="2025-01-01T00:00:00.000Z",
        new_uuid=lambda: f"u{next(ids)}",
    )


def test_entries_chain_each_to_the_one_before() -> None:
    entries = entries_for(*TOOL_LOOP)
    assert [(e["uuid"], e["parentUuid"]) for e in entries] == [
        ("u1", None),
        ("u2", "u1"),
        ("u3", "u2"),
    ]


def test_entries_carry_the_session_and_place() -> None:
    for entry in entries_for(*TOOL_LOOP):
        assert entry["sessionId"] == "sess"
        assert entry["cwd"] == "/work"
        assert entry["isSidechain"] is False
        assert entry["timestamp"] == "2025-01-01T00:00:00.000Z"


def test_user_entries_hold_the_plain_message() -> None:
    entry = entries_for(*TOOL_LOOP)[0]
    assert entry["type"] == "user"
    assert entry["message"] == {
        "role": "user",
        "content": [{"type": "text", "text": "weather in Paris and Rome?"}],
    }


def test_assistant_entries_look_like_api_messages() -> None:
    entries = entries_for(user("q"), assistant("a"), user("r"))
    message = entries[1]["message"]
    assert entries[1]["type"] == "assistant"
    assert isinstance(message, dict)
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["model"] == "claude-sonnet-4-5"
    assert message["stop_reason"] == "end_turn"
    assert message["content"] == [{"type": "text", "text": "a"}]
    assert set(message["usage"]) == {"input_tokens", "output_tokens"}


def test_an_assistant_turn_with_calls_stopped_for_tool_use() -> None:
    message = entries_for(*TOOL_LOOP)[1]["message"]
    assert isinstance(message, dict)
    assert message["stop_reason"] == "tool_use"


# ---------------------------------------------------------------- files


def test_project_key_replaces_every_non_alphanumeric() -> None:
    assert project_key("/tmp/clawrap-cwd.x_1") == "-tmp-clawrap-cwd-x-1"


def test_a_single_turn_writes_nothing(tmp_path: Path) -> None:
    plan = plan_history(request(user("hi")), tmp_path, str(tmp_path))
    assert plan.resume is None
    assert plan.transcript is None
    assert not (tmp_path / "projects").exists()


def test_the_plan_writes_a_private_transcript_where_the_cli_looks(tmp_path: Path) -> None:
    config, cwd = tmp_path / "config", tmp_path / "cwd"
    cwd.mkdir()
    plan = plan_history(request(user("a"), assistant("b"), user("c")), config, str(cwd))
    assert plan.resume is not None
    assert plan.fork_session is True
    expected = config / "projects" / project_key(os.path.realpath(cwd)) / f"{plan.resume}.jsonl"
    assert plan.transcript == expected
    assert stat.S_IMODE(expected.stat().st_mode) == 0o600
    assert stat.S_IMODE(expected.parent.stat().st_mode) == 0o700
    lines = [json.loads(line) for line in expected.read_text().splitlines()]
    assert [e["type"] for e in lines] == ["user", "assistant"]
    assert {e["sessionId"] for e in lines} == {plan.resume}


def test_each_plan_gets_a_new_unguessable_session(tmp_path: Path) -> None:
    turns = (user("a"), assistant("b"), user("c"))
    first = plan_history(request(*turns), tmp_path, str(tmp_path))
    second = plan_history(request(*turns), tmp_path, str(tmp_path))
    assert first.resume != second.resume
    assert first.resume is not None and len(first.resume) == 36


def test_a_tool_loop_plan_asks_the_cli_to_continue_by_itself(tmp_path: Path) -> None:
    plan = plan_history(request(*TOOL_LOOP), tmp_path, str(tmp_path))
    assert plan.prompt is None
    assert plan.env == RESUME_ENV


def lines(plan_path: Path | None) -> list[dict[str, Any]]:
    assert plan_path is not None
    return [json.loads(line) for line in plan_path.read_text().splitlines()]


def test_text_after_the_results_becomes_the_cli_resume_prompt(tmp_path: Path) -> None:
    turns = (*TOOL_LOOP[:2], user(result(1), result(2), "Answer in one word."))
    plan = plan_history(request(*turns), tmp_path, str(tmp_path))
    assert plan.env == RESUME_ENV | {RESUME_PROMPT: "Answer in one word."}
    last = lines(plan.transcript)[-1]["message"]
    assert [b["type"] for b in last["content"]] == ["tool_result", "tool_result"]


@pytest.mark.parametrize(
    "extra",
    [
        (),  # results alone: the CLI adds its own line, nothing to hand it
        (" padded ",),  # the environment would not carry it unchanged
        ("one", "two"),  # two blocks would arrive as one
        (ImagePart("image/png", PNG),),
    ],
)
def test_other_tool_result_turns_stay_whole_in_the_transcript(
    tmp_path: Path, extra: tuple[Part | str, ...]
) -> None:
    turns = (*TOOL_LOOP[:2], user(result(1), result(2), *extra))
    plan = plan_history(request(*turns), tmp_path, str(tmp_path))
    assert plan.env == RESUME_ENV
    last = lines(plan.transcript)[-1]["message"]
    assert len(last["content"]) == 2 + len(extra)


def test_a_prompt_plan_needs_no_extra_environment(tmp_path: Path) -> None:
    plan = plan_history(request(user("a"), assistant("b"), user("c")), tmp_path, str(tmp_path))
    assert plan.env == {}


def test_cleanup_removes_the_transcript_and_may_run_twice(tmp_path: Path) -> None:
    plan = plan_history(request(user("a"), assistant("b"), user("c")), tmp_path, str(tmp_path))
    assert plan.transcript is not None and plan.transcript.exists()
    plan.cleanup()
    plan.cleanup()
    assert not plan.transcript.exists()
