"""History and client tools through the real SDK and CLI, against the scripted model.

Each test spawns one CLI the way the Claude backend does (no built-in tools, no settings, a
plain system prompt, streamed partial messages, the plan's resume/fork/env, the client tools'
MCP server and hook), runs one turn, and checks what reached the model upstream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from procs import claude_children

from clawrap.claude._client_tools import ClientTools, build_client_tools
from clawrap.claude._transcript import plan_history
from clawrap.core._request import (
    CompletionRequest,
    DocumentPart,
    ImagePart,
    Part,
    TextPart,
    ThinkingPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
    Turn,
)
from clawrap.scripted._model import Reply, ToolUse

if TYPE_CHECKING:
    from conftest import RunningScriptedModel

pytestmark = pytest.mark.e2e

RUN_LIMIT = 60  # seconds; a CLI cold start is ~0.3 s, this only bounds a hang
WEATHER = ToolSpec(
    "get_weather",
    "Weather for a city",
    {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
        "additionalProperties": False,
    },
)
PDF = "JVBERi0xLjQKJcOkw7zDtsOfCg=="
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def user(*parts: Part | str) -> Turn:
    return Turn("user", tuple(TextPart(p) if isinstance(p, str) else p for p in parts))


def assistant(*parts: Part | str) -> Turn:
    return Turn("assistant", tuple(TextPart(p) if isinstance(p, str) else p for p in parts))


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
    user("Weather in Paris and Rome? LOOP", ImagePart("image/png", PNG)),
    assistant(
        ThinkingPart("two cities", "c2lnbmVk"),
        "Checking both.",
        ToolUsePart("toolu_a", "get_weather", {"city": "Paris"}),
        ToolUsePart("toolu_b", "get_weather", {"city": "Rome"}),
    ),
    user(
        ToolResultPart("toolu_a", (TextPart("sunny"),)),
        ToolResultPart("toolu_b", (TextPart("no data"),), is_error=True),
    ),
)


class Run:
    """What one CLI turn produced."""

    def __init__(self, tools: ClientTools | None) -> None:
        self.tools = tools
        self.messages: list[Any] = []

    @property
    def stream_events(self) -> list[dict[str, Any]]:
        return [m.event for m in self.messages if type(m).__name__ == "StreamEvent"]

    @property
    def result(self) -> Any:
        (result,) = [m for m in self.messages if type(m).__name__ == "ResultMessage"]
        return result

    def streamed_tool_calls(self) -> list[tuple[str | None, str]]:
        """(client name, arguments JSON) of each tool_use block in the stream."""
        calls: dict[int, list[Any]] = {}
        for event in self.stream_events:
            if event["type"] == "content_block_start":
                block = event["content_block"]
                if block["type"] == "tool_use":
                    assert self.tools is not None
                    calls[event["index"]] = [self.tools.client_name(block["name"]), ""]
            elif event["type"] == "content_block_delta" and event["index"] in calls:
                calls[event["index"]][1] += event["delta"].get("partial_json", "")
        return [(name, args) for name, args in calls.values()]


async def run_turn(env: dict[str, str], req: CompletionRequest, cwd: Path) -> Run:
    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient

    tools = build_client_tools(req)
    plan = plan_history(req, Path(env["CLAUDE_CONFIG_DIR"]), str(cwd))
    system = "You are terse."
    if tools is not None and tools.system_suffix:
        system += "\n\n" + tools.system_suffix
    options = ClaudeAgentOptions(
        tools=[],
        setting_sources=[],
        system_prompt=system,
        include_partial_messages=True,
        model=req.model,
        cwd=str(cwd),
        env={**env, **plan.env},
        resume=plan.resume,
        fork_session=plan.fork_session,
        mcp_servers=dict(tools.mcp_servers) if tools else {},
        allowed_tools=list(tools.allowed_tools) if tools else [],
        hooks=dict(tools.hooks) if tools else None,  # type: ignore[arg-type]
    )
    run = Run(tools)
    client = ClaudeSDKClient(options)
    messages = client.receive_messages()
    try:
        with trio.fail_after(RUN_LIMIT):
            await client.connect()
            plan.cleanup()  # the CLI has read it; it continues in a forked session
            if plan.prompt is not None:
                prompt = plan.prompt

                async def one_message() -> AsyncIterator[dict[str, Any]]:
                    yield {
                        "type": "user",
                        "message": prompt,
                        "parent_tool_use_id": None,
                        "client_composed": True,
                    }

                await client.query(one_message())
            async for message in messages:
                run.messages.append(message)
                if type(message).__name__ == "ResultMessage":
                    break
    finally:
        with trio.CancelScope(shield=True):
            await client.disconnect()
            # Let the message generator end on the closed stream rather than be
            # collected half-way (a ResourceWarning).
            with suppress(Exception):
                async for _ in messages:
                    pass
        plan.cleanup()
    return run


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    path = tmp_path / "work.dir"
    path.mkdir()
    return path


def roles_and_types(body: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [
        (
            m["role"],
            [b["type"] for b in m["content"]] if isinstance(m["content"], list) else ["str"],
        )
        for m in body["messages"]
        if m["role"] in ("user", "assistant")
    ]


def all_text(body: dict[str, Any]) -> str:
    import json

    return json.dumps(body["messages"])


async def test_earlier_turns_arrive_as_real_messages_with_their_blocks(
    scripted_model: RunningScriptedModel, claude_env: dict[str, str], cwd: Path
) -> None:
    scripted_model.model.when("AND TOMORROW", Reply(text="Rain."))
    turns = (
        user(
            "Look:",
            ImagePart("", "", url="https://example.com/a.png"),
            DocumentPart("application/pdf", PDF, "a.pdf"),
        ),
        assistant("A picture and a PDF."),
        *TOOL_LOOP,
        assistant("Sunny in Paris."),
        user("AND TOMORROW?"),
    )
    run = await run_turn(claude_env, request(*turns), cwd)
    (upstream,) = scripted_model.model.requests
    assert roles_and_types(upstream.body)[:6] == [
        ("user", ["text", "image", "document"]),
        ("assistant", ["text"]),
        ("user", ["text", "image"]),
        ("assistant", ["thinking", "text", "tool_use", "tool_use"]),
        ("user", ["tool_result", "tool_result"]),
        ("assistant", ["text"]),
    ]
    assistant_turn = upstream.body["messages"][3]["content"]
    assert assistant_turn[0]["signature"] == "c2lnbmVk"
    assert [b["name"] for b in assistant_turn[2:]] == ["mcp__clawrap__get_weather"] * 2
    results = upstream.body["messages"][4]["content"]
    assert results[1]["is_error"] is True
    last = upstream.body["messages"][-1]
    assert last["role"] == "user" and last["content"][-1]["text"] == "AND TOMORROW?"
    assert "No response requested." not in all_text(upstream.body)
    assert run.result.stop_reason == "end_turn"
    assert claude_children() == []


async def test_a_tool_loop_continues_without_a_new_user_message(
    scripted_model: RunningScriptedModel, claude_env: dict[str, str], cwd: Path
) -> None:
    scripted_model.model.when("LOOP", Reply(text="Paris is sunny; Rome unknown."))
    run = await run_turn(claude_env, request(*TOOL_LOOP), cwd)
    (upstream,) = scripted_model.model.requests
    assert [r for r, _ in roles_and_types(upstream.body)] == ["user", "assistant", "user"]
    results = upstream.body["messages"][-1]["content"]
    assert [b["type"] for b in results[:2]] == ["tool_result", "tool_result"]
    assert results[0]["content"][0]["text"] == "sunny"
    assert "No response requested." not in all_text(upstream.body)
    assert run.result.stop_reason == "end_turn"
    assert claude_children() == []


async def test_the_model_sees_the_client_schema_under_the_prefixed_name(
    scripted_model: RunningScriptedModel, claude_env: dict[str, str], cwd: Path
) -> None:
    scripted_model.model.when("SCHEMA", Reply(text="ok"))
    await run_turn(claude_env, request(user("SCHEMA")), cwd)
    (upstream,) = scripted_model.model.requests
    assert upstream.body["tools"] == [
        {
            "name": "mcp__clawrap__get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER.input_schema,
        }
    ]
    assert claude_children() == []


async def test_two_parallel_calls_both_stream_and_the_hook_stops_the_run(
    scripted_model: RunningScriptedModel, claude_env: dict[str, str], cwd: Path
) -> None:
    calls = (
        ToolUse("get_weather", {"city": "Paris"}, "toolu_1"),
        ToolUse("get_weather", {"city": "Rome"}, "toolu_2"),
    )
    scripted_model.model.when("PARALLEL", Reply(text="Checking.", tool_uses=calls))
    run = await run_turn(claude_env, request(user("PARALLEL")), cwd)
    assert run.streamed_tool_calls() == [
        ("get_weather", '{"city": "Paris"}'),
        ("get_weather", '{"city": "Rome"}'),
    ]
    assert run.result.stop_reason == "tool_deferred"
    assert len(scripted_model.model.requests) == 1  # no tool ran, no second model call
    assert claude_children() == []


async def test_tool_choice_none_offers_no_tools_and_sends_history_as_text(
    scripted_model: RunningScriptedModel, claude_env: dict[str, str], cwd: Path
) -> None:
    scripted_model.model.when("LOOP", Reply(text="Summary."))
    await run_turn(claude_env, request(*TOOL_LOOP, tool_choice="none"), cwd)
    (upstream,) = scripted_model.model.requests
    assert not upstream.body.get("tools")
    assert all(
        t == "text" or t == "image" or t == "thinking"
        for _, ts in roles_and_types(upstream.body)
        for t in ts
    )
    assert claude_children() == []


async def test_a_required_tool_choice_reaches_the_system_prompt(
    scripted_model: RunningScriptedModel, claude_env: dict[str, str], cwd: Path
) -> None:
    scripted_model.model.when("REQUIRED", Reply(text="ok"))
    await run_turn(claude_env, request(user("REQUIRED"), tool_choice="required"), cwd)
    (upstream,) = scripted_model.model.requests
    assert "must call at least one tool" in upstream.system_text
    assert claude_children() == []


async def test_a_sent_prompt_keeps_its_image_and_document(
    scripted_model: RunningScriptedModel, claude_env: dict[str, str], cwd: Path
) -> None:
    scripted_model.model.when("DESCRIBE", Reply(text="A dot."))
    prompt = user("DESCRIBE", ImagePart("image/png", PNG), DocumentPart("application/pdf", PDF))
    await run_turn(claude_env, request(prompt), cwd)
    (upstream,) = scripted_model.model.requests
    kinds = [b["type"] for b in upstream.body["messages"][-1]["content"]]
    assert "image" in kinds and "document" in kinds
    assert claude_children() == []
