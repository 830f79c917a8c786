"""The Claude Code backend end to end: real SDK, real CLI, the scripted model on loopback.

Every test is bounded with fail_after and ends with no CLI process left running.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from claude_agent_sdk import HookMatcher, create_sdk_mcp_server, tool

from clawrap.claude import _backend as _claude_backend
from clawrap.claude._backend import ClaudeBackend
from clawrap.claude._client_tools import ClientTools
from clawrap.core._config import Settings
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
from clawrap.core._request import (
    CompletionRequest,
    TextPart,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
    Turn,
)
from clawrap.scripted._model import RecordedRequest, Reply, ToolUse
from tests.pool_helpers import wait_warm
from tests.procs import claude_children

if TYPE_CHECKING:
    from tests.conftest import RunningScriptedModel

pytestmark = pytest.mark.e2e

LIMIT = 60  # seconds: generous, the machine is shared


def ask(text: str, **fields: Any) -> CompletionRequest:
    model = fields.pop("model", "claude-sonnet-4-5")
    return CompletionRequest(
        model=model,
        requested_model=model,
        turns=(Turn("user", (TextPart(text),)),),
        **fields,
    )


@pytest.fixture
async def backend(claude_env: dict[str, str]) -> AsyncIterator[ClaudeBackend]:
    """A cold backend (no warm processes) talking to the scripted model."""
    b = ClaudeBackend(Settings(pool_size=0, upstream_retries=0), cli_env=claude_env)
    try:
        yield b
    finally:
        with trio.CancelScope(shield=True):
            await b.aclose()
    assert claude_children() == []


async def collect(
    backend: ClaudeBackend, request: CompletionRequest, halt: trio.Event | None = None
) -> list[Event]:
    send, receive = trio.open_memory_channel[Event](math.inf)
    with trio.fail_after(LIMIT):
        async with send:
            await backend.run(request, send, halt or trio.Event())
    return [e async for e in receive]


def last_user_text(recorded: RecordedRequest) -> str:
    """The last text block of the last user message (newer CLIs add system messages after it)."""
    user = [m for m in recorded.body["messages"] if m["role"] == "user"][-1]
    texts = [b["text"] for b in user["content"] if b.get("type") == "text"]
    return str(texts[-1])


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_a_reply_streams_as_text_deltas_then_usage_then_finished(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel
) -> None:
    scripted_model.model.when("greet", Reply(deltas=["Hello", " there", "!"], input_tokens=42))
    events = await collect(backend, ask("greet me"))
    assert events[0] == InputTokens(42)  # the upstream's count, before any content
    assert events[1:4] == [TextDelta("Hello"), TextDelta(" there"), TextDelta("!")]
    assert isinstance(events[4], Usage) and events[4].output_tokens > 0
    assert events[5:] == [Finished("end_turn")]


async def test_the_upstream_request_is_lean_and_carries_the_system_text_verbatim(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel
) -> None:
    await collect(backend, ask("hello", system="Answer like a pirate."))
    (recorded,) = scripted_model.model.requests
    body = recorded.body
    assert "Answer like a pirate." in recorded.system_text
    assert body.get("tools", []) == []
    assert body["thinking"] == {"type": "disabled"}
    assert body["model"] == "claude-sonnet-4-5"
    assert len(json.dumps(body)) < 10_000


async def test_without_system_text_the_agent_prompt_is_not_sent(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel
) -> None:
    await collect(backend, ask("hello"))
    (recorded,) = scripted_model.model.requests
    assert "Claude Code" not in recorded.system_text
    assert len(recorded.system_text) < 500


async def test_a_thinking_budget_turns_thinking_on_and_streams_reasoning(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel
) -> None:
    scripted_model.model.when("ponder", Reply(thinking="Let me see.", text="Done."))
    events = await collect(backend, ask("ponder this", thinking_budget=2048))
    (recorded,) = scripted_model.model.requests
    thinking = recorded.body["thinking"]
    assert (thinking["type"], thinking["budget_tokens"]) == ("enabled", 2048)
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert reasoning == "Let me see."
    assert any(isinstance(e, ReasoningSignature) for e in events)
    assert text_of(events) == "Done."


@pytest.mark.parametrize("text", ["/clear", "@/etc/hostname what is in this file?"])
async def test_client_text_reaches_the_model_verbatim(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel, text: str
) -> None:
    await collect(backend, ask(text))
    (recorded,) = scripted_model.model.requests
    assert last_user_text(recorded) == text
    hostname = (await trio.Path("/etc/hostname").read_text()).strip()
    assert hostname not in recorded.text.replace(text, "")


async def test_max_tokens_from_upstream_is_the_finish_reason(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel
) -> None:
    scripted_model.model.when("long", Reply(text="cut", stop_reason="max_tokens"))
    events = await collect(backend, ask("long story"))
    assert events[-1] == Finished("max_tokens")
    assert isinstance(events[-2], Usage)
    assert text_of(events) == "cut"


@pytest.mark.parametrize(
    ("status", "kind", "http"),
    [
        (401, "authentication", 401),
        (429, "rate_limit", 429),
        (529, "overloaded", 503),
        (500, "api_error", 502),
    ],
)
async def test_an_upstream_failure_raises_the_matching_error(
    backend: ClaudeBackend,
    scripted_model: RunningScriptedModel,
    status: int,
    kind: str,
    http: int,
) -> None:
    scripted_model.model.when("fail", Reply(status=status, message="upstream said no"))
    with pytest.raises(ClawrapError) as info:
        await collect(backend, ask("fail please"))
    assert (info.value.kind, info.value.status) == (kind, http)
    assert "upstream said no" not in info.value.message


async def test_a_missing_cli_is_a_503_saying_what_to_do(claude_env: dict[str, str]) -> None:
    settings = Settings(pool_size=0, cli_path="/nonexistent/claude")
    backend = ClaudeBackend(settings, cli_env=claude_env)
    try:
        with pytest.raises(ClawrapError) as info:
            await collect(backend, ask("hello"))
    finally:
        await backend.aclose()
    assert info.value.status == 503
    assert "/nonexistent" not in info.value.message


async def test_a_cli_that_crashes_at_start_is_a_503(
    claude_env: dict[str, str], tmp_path: Path
) -> None:
    fake = tmp_path / "claude"
    fake.write_text("#!/bin/sh\necho 'not json at all'\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    backend = ClaudeBackend(Settings(pool_size=0, cli_path=str(fake)), cli_env=claude_env)
    try:
        with pytest.raises(ClawrapError) as info:
            await collect(backend, ask("hello"))
    finally:
        await backend.aclose()
    assert info.value.status in (502, 503)
    assert str(tmp_path) not in info.value.message


async def test_halt_stops_the_turn_and_still_reports_usage(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel
) -> None:
    scripted_model.model.when("slow", Reply(tokens=400, delay=0.05))
    send, receive = trio.open_memory_channel[Event](math.inf)
    halt = trio.Event()
    seen: list[Event] = []
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                async with send:
                    await backend.run(ask("slow please"), send, halt)

            nursery.start_soon(run)
            async for event in receive:
                seen.append(event)
                if len([e for e in seen if isinstance(e, TextDelta)]) == 3:
                    halt.set()
    assert isinstance(seen[-1], Usage)
    assert not any(isinstance(e, Finished) for e in seen)
    assert len([e for e in seen if isinstance(e, TextDelta)]) < 400


async def test_a_cancelled_run_leaves_no_cli_process(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel
) -> None:
    scripted_model.model.when("slow", Reply(tokens=400, delay=0.05))
    send, receive = trio.open_memory_channel[Event](math.inf)
    first = trio.Event()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                await backend.run(ask("slow please"), send, trio.Event())

            async def watch() -> None:
                async for event in receive:
                    if isinstance(event, TextDelta):
                        first.set()

            nursery.start_soon(run)
            nursery.start_soon(watch)
            await first.wait()
            assert len(claude_children()) == 1
            nursery.cancel_scope.cancel()
    # The cancelled run returned only after its process was gone.
    assert claude_children() == []


def deferring_tools() -> ClientTools:
    """A real in-process MCP tool with a hook that defers every call (the client runs it)."""

    @tool("get_weather", "Weather for a city", {"city": str})
    async def get_weather(args: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("the CLI must never run a client tool")

    async def defer(inp: Any, tool_use_id: str | None, ctx: Any) -> dict[str, Any]:
        return {
            "hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "defer"}
        }

    return ClientTools(
        mcp_servers={"clawrap": create_sdk_mcp_server("clawrap", tools=[get_weather])},
        allowed_tools=["mcp__clawrap__get_weather"],
        hooks={"PreToolUse": [HookMatcher(matcher="mcp__clawrap__.*", hooks=[defer])]},
        signature="get_weather",
    )


async def test_a_client_tool_call_streams_and_ends_the_run_with_tool_calls(
    backend: ClaudeBackend,
    scripted_model: RunningScriptedModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        _claude_backend, "build_client_tools", lambda request, **_: deferring_tools()
    )
    scripted_model.model.when(
        "weather", Reply(text="Checking.", tool_uses=[ToolUse("get_weather", {"city": "Paris"})])
    )
    events = await collect(backend, ask("weather in Paris?"))
    (recorded,) = scripted_model.model.requests
    assert [t["name"] for t in recorded.body["tools"]] == ["mcp__clawrap__get_weather"]
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [(s.index, s.name) for s in starts] == [(0, "get_weather")]
    arguments = "".join(e.arguments for e in events if isinstance(e, ToolCallDelta))
    assert json.loads(arguments) == {"city": "Paris"}
    assert isinstance(events[-2], Usage)
    assert events[-1] == Finished("tool_calls")
    assert text_of(events) == "Checking."


async def test_the_cli_runs_in_an_empty_directory_of_its_own(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel
) -> None:
    await collect(backend, ask("hello"))
    assert backend.cwd != os.getcwd()
    assert os.listdir(backend.cwd) == []


async def test_earlier_turns_reach_the_model_through_a_resumed_session(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel
) -> None:
    request = CompletionRequest(
        model="claude-sonnet-4-5",
        requested_model="claude-sonnet-4-5",
        turns=(
            Turn("user", (TextPart("My name is Ada."),)),
            Turn("assistant", (TextPart("Nice to meet you, Ada."),)),
            Turn("user", (TextPart("What is my name?"),)),
        ),
    )
    events = await collect(backend, request)
    assert events[-1] == Finished("end_turn")
    (recorded,) = scripted_model.model.requests
    turns = [m for m in recorded.body["messages"] if m["role"] in ("user", "assistant")]
    assert [m["role"] for m in turns] == ["user", "assistant", "user"]
    assert last_user_text(recorded) == "What is my name?"


async def test_a_conversation_ending_on_tool_results_continues_without_a_new_message(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel
) -> None:
    scripted_model.model.when("sunny", Reply(text="It is sunny in Paris."))
    request = CompletionRequest(
        model="claude-sonnet-4-5",
        requested_model="claude-sonnet-4-5",
        turns=(
            Turn("user", (TextPart("Weather in Paris?"),)),
            Turn("assistant", (ToolUsePart("toolu_1", "get_weather", {"city": "Paris"}),)),
            Turn("user", (ToolResultPart("toolu_1", (TextPart("sunny, 21C"),)),)),
        ),
        tools=(ToolSpec("get_weather", "Weather", {"type": "object", "properties": {}}),),
    )
    events = await collect(backend, request)
    assert text_of(events) == "It is sunny in Paris."
    assert events[-1] == Finished("end_turn")
    assert len(scripted_model.model.requests) == 1


async def test_a_bug_while_running_is_raised_as_itself_not_retried_as_a_cli_failure(
    claude_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The exchange answers anything but a ClawrapError with a 500 internal_error and logs its
    # traceback (test_exchange); here the backend must not turn a bug into a retried
    # cli_process_failed on a fresh process.
    from clawrap.claude._cli_process import CliProcess

    calls: list[CliProcess] = []

    async def broken_send(self: CliProcess, content: object) -> None:
        calls.append(self)
        raise TypeError("a bug in clawrap")

    settings = Settings(pool_size=1, upstream_retries=0)
    with trio.fail_after(LIMIT):
        async with _claude_backend.open_claude_backend(settings, cli_env=claude_env) as warm:
            await wait_warm(warm.pool)
            monkeypatch.setattr(CliProcess, "send", broken_send)
            with pytest.raises(TypeError, match="a bug in clawrap"):
                await collect(warm, ask("hello", model="sonnet"))
            assert len(calls) == 1 and calls[0].reused
    assert claude_children() == []
