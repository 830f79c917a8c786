"""Implicit continuation: a conversation resent with one more message goes on on the live process.

Real SDK and CLI against the scripted model. After a turn that ends normally the process is
parked holding its conversation; a request extending exactly that conversation is served by it
with only the new message sent. Every test is bounded and proves no CLI process is left.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
import trio

from clawrap.claude._backend import ClaudeBackend, continuation_point, open_claude_backend
from clawrap.claude._cli_process import CliProcess
from clawrap.core._config import Settings
from clawrap.core._events import Event, Finished, TextDelta
from clawrap.core._request import CompletionRequest, TextPart, ToolResultPart, ToolSpec, Turn
from clawrap.scripted._model import RecordedRequest
from tests.pool_helpers import idle_processes, wait_warm
from tests.procs import claude_children

if TYPE_CHECKING:
    from tests.conftest import RunningScriptedModel

pytestmark = pytest.mark.e2e

LIMIT = 60
MODEL = "claude-sonnet-4-5"


def user(text: str) -> Turn:
    return Turn("user", (TextPart(text),))


def assistant(text: str) -> Turn:
    return Turn("assistant", (TextPart(text),))


def scripted(question: str, answer: str) -> Turn:
    """A user turn the scripted model answers with exactly ``answer``."""
    return user(f"{question} [[mock:{json.dumps({'text': answer})}]]")


def chat(*turns: Turn, **fields: Any) -> CompletionRequest:
    return CompletionRequest(model=MODEL, requested_model=MODEL, turns=turns, **fields)


class Spy:
    """Which process each run used, and every message sent to a CLI process."""

    def __init__(self, backend: ClaudeBackend, monkeypatch: pytest.MonkeyPatch) -> None:
        self.procs: list[CliProcess] = []
        self.sent: list[Any] = []
        pool = backend.pool
        acquire, take_parked = pool.acquire, pool.take_parked

        async def spy_acquire(*args: Any, **kwargs: Any) -> CliProcess:
            proc = await acquire(*args, **kwargs)
            self.procs.append(proc)
            return proc

        async def spy_take(*args: Any, **kwargs: Any) -> CliProcess | None:
            proc = await take_parked(*args, **kwargs)
            if proc is not None:
                self.procs.append(proc)
            return proc

        send = CliProcess.send

        async def spy_send(proc: CliProcess, content: Any) -> None:
            self.sent.append(content)
            await send(proc, content)

        monkeypatch.setattr(pool, "acquire", spy_acquire)
        monkeypatch.setattr(pool, "take_parked", spy_take)
        monkeypatch.setattr(CliProcess, "send", spy_send)


def backend_settings(**overrides: Any) -> Settings:
    return Settings(**{"pool_size": 1, "upstream_retries": 0, **overrides})


@pytest.fixture
async def backend(claude_env: dict[str, str]) -> AsyncIterator[ClaudeBackend]:
    with trio.fail_after(LIMIT):
        async with open_claude_backend(backend_settings(), cli_env=claude_env) as b:
            await wait_warm(b.pool)
            yield b
    assert claude_children() == []


async def collect(backend: ClaudeBackend, request: CompletionRequest) -> list[Event]:
    send, receive = trio.open_memory_channel[Event](math.inf)
    with trio.fail_after(LIMIT):
        async with send:
            await backend.run(request, send, trio.Event())
    return [e async for e in receive]


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def completions(model: RunningScriptedModel) -> list[RecordedRequest]:
    return [r for r in model.model.requests if r.body.get("stream")]


def conversation(recorded: RecordedRequest) -> list[tuple[str, str]]:
    """(role, typed text) of each upstream message; the CLI's reminder blocks left out."""
    out = []
    for message in recorded.body["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        texts = [
            b["text"]
            for b in blocks
            if b.get("type") == "text" and not b["text"].lstrip().startswith("<system-reminder>")
        ]
        out.append((message["role"], "".join(texts)))
    return out


async def parked(backend: ClaudeBackend, count: int) -> None:
    with trio.fail_after(LIMIT):
        await backend.pool.wait_for(lambda: backend.status()["parked"] == count)


# ---------------------------------------------------------------- where the new message starts


def test_the_new_message_starts_after_the_last_answer() -> None:
    turns = (user("a"), assistant("b"), user("c"), user("d"))
    assert continuation_point(turns) == 2


def test_a_first_message_or_a_trailing_answer_has_nothing_to_continue() -> None:
    assert continuation_point((user("a"),)) is None
    assert continuation_point((user("a"), assistant("b"))) is None


def test_tool_results_are_never_sent_to_a_live_process() -> None:
    result = Turn("user", (ToolResultPart("toolu_1", (TextPart("21C"),)),))
    assert continuation_point((user("a"), assistant("b"), result)) is None


# ---------------------------------------------------------------- the live process


async def test_turn_two_of_a_resent_conversation_goes_on_on_the_same_process(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(backend, monkeypatch)
    first = scripted("My name is Ada.", "Hello Ada.")
    assert text_of(await collect(backend, chat(first))) == "Hello Ada."
    await parked(backend, 1)
    second = scripted("What is my name?", "You are Ada.")
    events = await collect(backend, chat(first, assistant("Hello Ada."), second))
    assert text_of(events) == "You are Ada." and events[-1] == Finished("end_turn")
    assert spy.procs[0] is spy.procs[1]
    assert backend.status()["continued"] == 1
    # Only the new message went to the process ...
    assert len(spy.sent) == 2 and json.dumps(spy.sent[1]).count("Ada") == 1
    assert "What is my name?" in json.dumps(spy.sent[1])
    # ... and the upstream request still carries every turn once, in order.
    upstream = completions(scripted_model)[-1]
    assert conversation(upstream) == [
        ("user", first.text),
        ("assistant", "Hello Ada."),
        ("user", second.text),
    ]


async def test_a_conversation_goes_on_live_for_several_turns(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(backend, monkeypatch)
    history: tuple[Turn, ...] = ()
    for n in range(4):
        question = scripted(f"Question {n}.", f"Answer {n}.")
        events = await collect(backend, chat(*history, question))
        history += (question, assistant(text_of(events)))
        await parked(backend, 1)
    assert len({id(p) for p in spy.procs}) == 1
    assert backend.status()["continued"] == 3
    upstream = completions(scripted_model)[-1]
    assert [text for _, text in conversation(upstream)] == [t.text for t in history[:-1]]


async def test_an_edited_earlier_message_starts_from_a_transcript_instead(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(backend, monkeypatch)
    await collect(backend, chat(scripted("Call me Ada.", "Hello Ada.")))
    await parked(backend, 1)
    edited = scripted("Call me Grace.", "Hello Grace.")
    await collect(backend, chat(edited, assistant("Hello Grace."), user("And now?")))
    assert spy.procs[0] is not spy.procs[1]
    assert backend.status()["continued"] == 0
    upstream = completions(scripted_model)[-1]
    assert "Ada" not in json.dumps(upstream.body["messages"])
    assert [role for role, _ in conversation(upstream)] == ["user", "assistant", "user"]


async def test_another_system_prompt_does_not_take_the_parked_process(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(backend, monkeypatch)
    first = scripted("Hi.", "Hello.")
    await collect(backend, chat(first, system="Be brief."))
    await parked(backend, 1)
    await collect(backend, chat(first, assistant("Hello."), user("Again?"), system="Be long."))
    assert spy.procs[0] is not spy.procs[1]
    assert backend.status()["continued"] == 0
    system = completions(scripted_model)[-1].system_text
    assert "Be long." in system and "Be brief." not in system


async def test_a_turn_ending_in_client_tool_calls_is_parked_with_its_calls_open(
    backend: ClaudeBackend, scripted_model: RunningScriptedModel
) -> None:
    reply = {"tool_uses": [{"name": "get_weather", "input": {"city": "Paris"}}]}
    request = chat(
        user(f"Weather? [[mock:{json.dumps(reply)}]]"),
        tools=(ToolSpec("get_weather", "Weather", {"type": "object", "properties": {}}),),
    )
    events = await collect(backend, request)
    assert events[-1] == Finished("tool_calls")
    with trio.fail_after(LIMIT):
        await backend.pool.wait_for(lambda: backend.status()["busy"] == 0)
    # Held for the request with the results, not as a finished conversation to extend.
    assert backend.status()["parked_open"] == 1
    assert [len(p.open_calls) for p in backend.pool._parked.all()] == [1]
    assert continuation_point(request.turns) is None


async def test_the_oldest_parked_conversation_is_reset_when_the_limit_is_reached(
    claude_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(LIMIT):
        async with open_claude_backend(
            backend_settings(pool_parked=1), cli_env=claude_env
        ) as backend:
            spy = Spy(backend, monkeypatch)
            first = scripted("One.", "First.")
            await collect(backend, chat(first))
            await collect(backend, chat(scripted("Two.", "Second.")))
            await parked(backend, 1)
            await backend.pool.wait_for(lambda: spy.procs[0] in idle_processes(backend.pool))
            await collect(backend, chat(first, assistant("First."), user("More?")))
            assert backend.status()["continued"] == 0
    assert claude_children() == []


async def test_with_no_room_a_fresh_request_takes_a_parked_process_cleared(
    claude_env: dict[str, str],
    scripted_model: RunningScriptedModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with trio.fail_after(LIMIT):
        async with open_claude_backend(backend_settings(pool_max=1), cli_env=claude_env) as backend:
            await wait_warm(backend.pool)
            spy = Spy(backend, monkeypatch)
            await collect(backend, chat(scripted("SECRET-ONE", "Noted.")))
            await parked(backend, 1)
            await collect(backend, chat(user("Something else.")))
            assert spy.procs[0] is spy.procs[1]
            assert backend.status()["spawned"] == 1
            assert "SECRET-ONE" not in json.dumps(completions(scripted_model)[-1].body)
    assert claude_children() == []


async def test_with_parking_off_every_process_is_cleared_after_its_turn(
    claude_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(LIMIT):
        async with open_claude_backend(
            backend_settings(pool_parked=0), cli_env=claude_env
        ) as backend:
            await wait_warm(backend.pool)
            spy = Spy(backend, monkeypatch)
            first = scripted("Hi.", "Hello.")
            await collect(backend, chat(first))
            await backend.pool.wait_for(lambda: spy.procs[0] in idle_processes(backend.pool))
            await collect(backend, chat(first, assistant("Hello."), user("And?")))
            assert backend.status()["continued"] == 0 and backend.status()["parked"] == 0
    assert claude_children() == []
