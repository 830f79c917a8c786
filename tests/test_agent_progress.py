"""Agent mode in the translator: Claude Code's own tools become progress notes, not tool calls."""

from __future__ import annotations

from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from clawrap.claude._agent_progress import tool_result_summary, tool_use_summary
from clawrap.claude._sdk_events import TurnTranslator
from clawrap.core._events import AgentProgress, Finished, TextDelta, ToolCallStart, Usage


def se(event: dict[str, Any]) -> StreamEvent:
    return StreamEvent(uuid="u", session_id="s", event=event)


def message(msg_id: str, *events: dict[str, Any]) -> list[StreamEvent]:
    """One model message as the CLI streams it: start, the given events, stop."""
    return [
        se({"type": "message_start", "message": {"id": msg_id, "content": []}}),
        *[se(e) for e in events],
        se({"type": "message_stop"}),
    ]


def text_block(index: int, text: str) -> list[dict[str, Any]]:
    return [
        {"type": "content_block_start", "index": index, "content_block": {"type": "text"}},
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "text_delta", "text": text},
        },
    ]


def tool_block(index: int, tool_id: str, name: str) -> dict[str, Any]:
    return {
        "type": "content_block_start",
        "index": index,
        "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}},
    }


def assistant(msg_id: str, *blocks: Any) -> AssistantMessage:
    return AssistantMessage(content=list(blocks), model="m", message_id=msg_id)


def result() -> ResultMessage:
    return ResultMessage(
        subtype="success",
        duration_ms=1,
        duration_api_ms=1,
        is_error=False,
        num_turns=3,
        session_id="s",
        stop_reason="end_turn",
        usage={"input_tokens": 10, "output_tokens": 4},
    )


def run(translator: TurnTranslator, messages: list[Any]) -> list[Any]:
    return [event for m in messages for event in translator.feed(m)]


READ = ToolUseBlock(id="t1", name="Read", input={"file_path": "/work/p/src/app.py"})
BASH = ToolUseBlock(id="t2", name="Bash", input={"command": "ls  -la\n"})


def an_agent_run() -> list[Any]:
    return [
        SystemMessage("init", {"tools": ["Bash", "Read"], "mcp_servers": []}),
        *message("m1", *text_block(0, "Looking."), tool_block(1, "t1", "Read")),
        assistant("m1", TextBlock("Looking."), READ),
        UserMessage(content=[ToolResultBlock("t1", "1\tone\n2\ttwo\n", None)]),
        *message("m2", tool_block(0, "t2", "Bash")),
        assistant("m2", BASH),
        UserMessage(content=[ToolResultBlock("t2", "a\nb\nc", False)]),
        *message("m3", *text_block(0, "Done.")),
        assistant("m3", TextBlock("Done.")),
        result(),
    ]


def test_claude_codes_tool_uses_and_results_become_progress_between_the_text() -> None:
    events = run(TurnTranslator(agent=True, cwd="/work/p"), an_agent_run())
    assert events == [
        TextDelta("Looking."),
        AgentProgress("tool_use", "Read", "src/app.py", {"id": "t1", "input": READ.input}),
        AgentProgress("tool_result", "Read", "2 lines", {"id": "t1", "is_error": False}),
        AgentProgress("tool_use", "Bash", "ls -la", {"id": "t2", "input": BASH.input}),
        AgentProgress("tool_result", "Bash", "a (+2 more lines)", {"id": "t2", "is_error": False}),
        TextDelta("\n\nDone."),
        Usage(10, 4),
        Finished("end_turn"),
    ]


def test_claude_codes_tool_uses_are_never_client_tool_calls() -> None:
    events = run(TurnTranslator(agent=True), an_agent_run())
    assert not any(isinstance(e, ToolCallStart) for e in events)
    assert events[-1] == Finished("end_turn")


def test_the_init_report_is_kept() -> None:
    translator = TurnTranslator(agent=True)
    run(translator, an_agent_run())
    assert translator.init == {"tools": ["Bash", "Read"], "mcp_servers": []}


def test_without_agent_mode_only_the_first_message_counts_and_tools_stay_silent() -> None:
    events = run(TurnTranslator(), an_agent_run())
    assert events == [TextDelta("Looking."), Usage(10, 4), Finished("end_turn")]


def test_summaries_name_the_command_the_pattern_or_the_input() -> None:
    assert tool_use_summary("Bash", {"command": "echo hi", "description": "x"}) == "echo hi"
    assert tool_use_summary("Grep", {"pattern": "TODO", "path": "/p/src"}, "/p") == "TODO in src"
    assert tool_use_summary("Write", {"file_path": "/elsewhere/a"}, "/p") == "/elsewhere/a"
    assert tool_use_summary("mcp__docs__find", {"q": 1}) == '{"q": 1}'


def test_result_summaries_show_the_error_or_the_first_line() -> None:
    assert tool_result_summary("Bash", "boom\nmore", True) == "error: boom"
    assert tool_result_summary("Bash", [{"type": "text", "text": "ok"}], False) == "ok"
    assert tool_result_summary("Bash", "", False) == "done (no output)"
