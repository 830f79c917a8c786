"""Resetting a CLI process: after it, the model sees exactly what a new process would send.

Real SDK and CLI against the scripted model. Each test drives one process the way the
pool does (spawn, send, read the turn, reset, send again) and checks the upstream request
that follows the reset: only the new message, nothing of the earlier conversation and
nothing about the reset itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from procs import claude_children

from clawrap.claude._cli_process import CliProcess, spawn_process
from clawrap.claude._sdk_options import OptionsBuilder, SpawnSpec
from clawrap.claude._transcript import plan_history
from clawrap.core._config import Settings
from clawrap.core._request import CompletionRequest, TextPart, Turn
from clawrap.scripted._model import RecordedRequest, Reply

if TYPE_CHECKING:
    from conftest import RunningScriptedModel

pytestmark = pytest.mark.e2e

LIMIT = 60  # seconds; only bounds a hang


def request(*texts: str) -> CompletionRequest:
    """Alternating user and assistant turns, starting with the user's."""
    turns = tuple(
        Turn("user" if i % 2 == 0 else "assistant", (TextPart(t),)) for i, t in enumerate(texts)
    )
    return CompletionRequest(model="sonnet", requested_model="sonnet", turns=turns)


def user_texts(recorded: RecordedRequest) -> list[str]:
    """Every text block of every user message, in order."""
    texts: list[str] = []
    for message in recorded.body["messages"]:
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
        else:
            texts += [b["text"] for b in content if b.get("type") == "text"]
    return texts


def the_model_sees_only(recorded: RecordedRequest, text: str) -> None:
    """``text`` is the only user text, apart from the CLI's own <system-reminder> context."""
    own = [t for t in user_texts(recorded) if not t.startswith("<system-reminder>")]
    assert own == [text]
    assert "command-name" not in str(recorded.body)
    assert "local-command" not in str(recorded.body)


@pytest.fixture
def builder(claude_env: dict[str, str], tmp_path: Path) -> OptionsBuilder:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return OptionsBuilder(Settings(upstream_retries=0), claude_env, str(cwd.resolve()))


@pytest.fixture
async def ended() -> AsyncIterator[list[CliProcess]]:
    """Processes to close at the end of the test; none may be left after."""
    procs: list[CliProcess] = []
    yield procs
    for proc in procs:
        await proc.close()
    assert claude_children() == []


async def spawn(spec: SpawnSpec, ended: list[CliProcess]) -> CliProcess:
    proc = await spawn_process(spec)
    ended.append(proc)
    return proc


async def turn(proc: CliProcess, text: str) -> None:
    with trio.fail_after(LIMIT):
        await proc.send(text)
        result = await proc.finish_turn()
    assert result is not None and not result.is_error


def streamed(model: RunningScriptedModel) -> list[RecordedRequest]:
    return [r for r in model.model.requests if r.body.get("stream")]


async def reset_then_start_anew(proc: CliProcess, model: RunningScriptedModel) -> str:
    """Reset ``proc``, start a new conversation on it, check what the model saw of it and
    return that request's whole body as text."""
    assert await proc.reset()
    await turn(proc, "a new conversation")
    after = streamed(model)[-1]
    the_model_sees_only(after, "a new conversation")
    return str(after.body)


async def test_after_a_reset_the_model_sees_only_the_new_message(
    builder: OptionsBuilder, scripted_model: RunningScriptedModel, ended: list[CliProcess]
) -> None:
    scripted_model.model.when("FIRST-SECRET", Reply(text="FIRST-ANSWER"))
    proc = await spawn(builder.default_spec(), ended)
    await turn(proc, "FIRST-SECRET question")
    await turn(proc, "and a follow-up")
    assert "FIRST" not in await reset_then_start_anew(proc, scripted_model)


async def test_a_reset_is_repeatable_and_a_reset_of_an_unused_process_is_a_no_op(
    builder: OptionsBuilder, scripted_model: RunningScriptedModel, ended: list[CliProcess]
) -> None:
    proc = await spawn(builder.default_spec(), ended)
    assert await proc.reset()  # nothing said yet
    for n in range(3):
        await turn(proc, f"conversation {n}")
        assert await proc.reset()
    await turn(proc, "the last one")
    the_model_sees_only(streamed(scripted_model)[-1], "the last one")


async def test_a_process_resumed_from_a_transcript_resets_to_empty(
    builder: OptionsBuilder,
    scripted_model: RunningScriptedModel,
    claude_env: dict[str, str],
    ended: list[CliProcess],
) -> None:
    req = request("OLD-QUESTION", "OLD-ANSWER", "NOW-QUESTION")
    plan = plan_history(req, Path(claude_env["CLAUDE_CONFIG_DIR"]), builder.cwd)
    assert plan.resume is not None and plan.prompt is not None
    spec = builder.spec(req, None, plan.resume, plan.env)
    proc = await spawn(replace(spec, history_anchors=plan.anchors), ended)
    plan.cleanup()
    await turn(proc, "NOW-QUESTION")
    assert "OLD-QUESTION" in str(streamed(scripted_model)[-1].body)  # the history was there
    after = await reset_then_start_anew(proc, scripted_model)
    assert "OLD-" not in after and "NOW-" not in after


async def test_a_turn_interrupted_mid_reply_is_reset_too(
    builder: OptionsBuilder, scripted_model: RunningScriptedModel, ended: list[CliProcess]
) -> None:
    scripted_model.model.when("SLOW-SECRET", Reply(tokens=400, delay=0.05))
    proc = await spawn(builder.default_spec(), ended)
    with trio.fail_after(LIMIT):
        await proc.send("SLOW-SECRET please")
        while type(await proc.receive()).__name__ != "StreamEvent":
            pass
    assert proc.in_turn
    assert "SLOW-SECRET" not in await reset_then_start_anew(proc, scripted_model)


async def test_a_refused_rewind_is_reported_so_the_process_is_not_reused(
    builder: OptionsBuilder, scripted_model: RunningScriptedModel, ended: list[CliProcess]
) -> None:
    proc = await spawn(builder.default_spec(), ended)
    await turn(proc, "hello")
    proc._first_uuid = "00000000-0000-4000-8000-000000000000"  # a message the CLI never had
    assert not await proc.reset()
    assert proc.alive  # the pool closes it; the reset alone does not
