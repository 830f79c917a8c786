"""A request with a system prompt no warm process has takes an idle one, its prompt switched.

Real SDK and CLI, the scripted model. ``pool_max=1`` leaves no room for any other process,
so the pool's ``spawned`` counter shows whether the request cost a start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
import trio
from e2e import in_thread

from clawrap.claude._backend import ClaudeBackend, open_claude_backend
from clawrap.claude._sdk_options import NEUTRAL_SYSTEM_PROMPT, SpawnKey
from clawrap.claude.pool._prompt_switch import differs_in_prompt_only
from clawrap.core._auth import bundled_cli
from clawrap.core._events import Finished
from clawrap.scripted._model import Reply, ToolUse
from tests.pool_helpers import idle_processes, pids, wait_warm
from tests.procs import claude_children
from tests.test_processes import LIMIT, Used, ask, collect, completions, settings
from tests.test_tool_loop import Messages, _round

if TYPE_CHECKING:
    from e2e import Clawrap

    from tests.conftest import RunningScriptedModel


@pytest.fixture
async def one(claude_env: dict[str, str]) -> AsyncIterator[ClaudeBackend]:
    """A started backend with room for one process, that one warm and idle."""
    with trio.fail_after(LIMIT):
        async with open_claude_backend(settings(pool_max=1), cli_env=claude_env) as backend:
            await wait_warm(backend.pool)
            yield backend
    assert claude_children() == []


def test_only_a_key_differing_in_the_system_prompt_alone_is_switchable() -> None:
    key = SpawnKey("ALPHA", cwd="/w")
    assert differs_in_prompt_only(key, SpawnKey("BETA", cwd="/w"))
    assert not differs_in_prompt_only(key, key)
    assert not differs_in_prompt_only(key, SpawnKey("BETA", cwd="/elsewhere"))
    assert not differs_in_prompt_only(key, dataclasses.replace(key, tools_signature="t"))


@pytest.mark.e2e
async def test_a_new_system_prompt_takes_the_idle_process_and_spawns_nothing(
    one: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = Used(one, monkeypatch)
    spawned = one.pool.status()["spawned"]
    events = await collect(one, ask("ALPHA-QUESTION", system="ALPHA-SYSTEM: be terse."))
    assert events[-1] == Finished("end_turn")
    with trio.fail_after(LIMIT):
        await one.pool.wait_for(lambda: used.procs[0] in idle_processes(one.pool))
    await collect(one, ask("BETA-QUESTION", system="BETA-SYSTEM: be kind."))
    status = one.pool.status()
    assert status["spawned"] == spawned and status["switched"] == 2
    assert used.procs[0] is used.procs[1] and used.procs[0].reused
    alpha, beta = completions(scripted_model)[-2:]
    assert "ALPHA-SYSTEM: be terse." in alpha.system_text
    assert NEUTRAL_SYSTEM_PROMPT not in alpha.system_text
    # The model sees the new prompt and nothing of the old one or its conversation.
    assert "BETA-SYSTEM: be kind." in beta.system_text
    assert "ALPHA" not in str(beta.body)
    # The same request as the first, prompt and question aside (and the first system block,
    # the CLI's billing line, which carries a hash of the request).
    swap = str(alpha.body["system"][1:]).replace("ALPHA-SYSTEM: be terse.", "BETA-SYSTEM: be kind.")
    assert swap == str(beta.body["system"][1:])
    swap = str(alpha.body["messages"]).replace("ALPHA-QUESTION", "BETA-QUESTION")
    assert swap == str(beta.body["messages"])


@pytest.mark.e2e
async def test_a_process_on_haiku_switches_prompts_too(
    one: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (The CLI refuses a prompt switch bound to the current model for a session on haiku.)
    used = Used(one, monkeypatch)
    spawned = one.pool.status()["spawned"]
    for prompt in ("ALPHA-SYSTEM", "BETA-SYSTEM"):
        await collect(one, ask("question", system=prompt, model="haiku"))
        with trio.fail_after(LIMIT):
            await one.pool.wait_for(lambda: used.procs[-1] in idle_processes(one.pool))
    assert one.pool.status()["spawned"] == spawned and one.pool.status()["switched"] == 2
    last = completions(scripted_model)[-1]
    assert "haiku" in last.body["model"]
    assert "BETA-SYSTEM" in last.system_text and "ALPHA" not in str(last.body)


@pytest.mark.e2e
async def test_a_process_whose_switch_fails_is_replaced_not_reused(
    one: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = Used(one, monkeypatch)
    [idle] = idle_processes(one.pool)
    # The pool's record of its model now disagrees with the CLI's: the CLI refuses the switch.
    idle.model = "claude-opus-4-1"
    spawned = one.pool.status()["spawned"]
    events = await collect(one, ask("GAMMA-QUESTION", system="GAMMA-SYSTEM"))
    assert events[-1] == Finished("end_turn")
    status = one.pool.status()
    assert status["switched"] == 0 and status["spawned"] == spawned + 1
    assert used.procs[0] is not idle and not used.procs[0].reused
    assert idle.pid not in pids(one.pool) and not idle.alive
    assert "GAMMA-SYSTEM" in completions(scripted_model)[-1].system_text


@pytest.mark.e2e
async def test_a_cli_of_the_operators_choosing_never_has_its_prompt_switched(
    claude_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # (Older builds answer the switch with success and keep their prompt.)
    bundled = bundled_cli()
    assert bundled is not None
    custom = settings(pool_max=1, cli_path=str(bundled))
    with trio.fail_after(LIMIT):
        async with open_claude_backend(custom, cli_env=claude_env) as backend:
            await wait_warm(backend.pool)
            used = Used(backend, monkeypatch)
            await collect(backend, ask("DELTA-QUESTION", system="DELTA-SYSTEM"))
            assert backend.pool.status()["switched"] == 0
            assert not used.procs[0].reused
    assert claude_children() == []


@pytest.mark.e2e
@pytest.mark.clawrap(tool_wait=0, pool_parked=0, pool_max=1)
async def test_a_process_resumed_from_a_transcript_takes_a_new_prompt_once_reset(
    clawrap_server: Clawrap,
) -> None:
    # With tool_wait=0 the tool-result round starts a process resumed from a transcript
    # (the only process there is room for); once reset it is idle, and a new system
    # prompt with the same tools switches it.
    call = ToolUse("get_weather", {"city": "Oslo"}, "toolu_Oslo")
    clawrap_server.model.when("RESUMED", Reply(tool_uses=[call]), Reply(text="Cold."))
    clawrap_server.model.when("SWITCHED", Reply(text="Fine."))
    pool = clawrap_server.backend.pool
    history: Messages = [
        {"role": "system", "content": "EPSILON-SYSTEM"},
        {"role": "user", "content": "RESUMED: weather?"},
    ]
    fresh: Messages = [
        {"role": "system", "content": "ZETA-SYSTEM"},
        {"role": "user", "content": "SWITCHED"},
    ]
    with trio.fail_after(LIMIT):
        await in_thread(lambda: _round(clawrap_server, history, {"toolu_Oslo": "-3C"}))
        await in_thread(lambda: _round(clawrap_server, history, {}))
        await pool.wait_for(lambda: len(idle_processes(pool)) == 1)
        [resumed] = idle_processes(pool)
        status, prompt = clawrap_server.pool_status(), resumed.key.system_prompt
        reply = await in_thread(lambda: _round(clawrap_server, fresh, {}))
    assert status["continued"] == 0 and "EPSILON-SYSTEM" in prompt
    assert reply.choices[0].message.content == "Fine."
    assert clawrap_server.pool_status()["switched"] == status["switched"] + 1
    assert clawrap_server.pool_status()["spawned"] == status["spawned"]
    assert "ZETA-SYSTEM" in resumed.key.system_prompt
    [last] = clawrap_server.requests("SWITCHED")
    assert "ZETA-SYSTEM" in last.system_text
    assert "EPSILON" not in str(last.body) and "RESUMED" not in str(last.body)
