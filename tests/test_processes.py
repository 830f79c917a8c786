"""Warm CLI processes: reused without leaking, replaced when they die, all ended at close.

Real SDK and CLI against the scripted model; every test is bounded and proves no
CLI process outlives the backend.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

from clawrap.claude import _backend as _claude_backend
from clawrap.claude._backend import ClaudeBackend, open_claude_backend
from clawrap.claude.pool._pool import CliProcess, ProcessPool
from clawrap.core._config import Settings
from clawrap.core._events import Event, Finished, TextDelta
from clawrap.core._request import CompletionRequest, TextPart, Turn
from clawrap.scripted._model import RecordedRequest, Reply
from tests.pool_helpers import idle_processes, is_awaited, pids, wait_warm
from tests.procs import claude_children
from tests.test_claude_backend import deferring_tools, last_user_text

if TYPE_CHECKING:
    from tests.conftest import RunningScriptedModel

pytestmark = pytest.mark.e2e

LIMIT = 60


def ask(text: str, **fields: Any) -> CompletionRequest:
    model = fields.pop("model", "sonnet")
    return CompletionRequest(
        model=model, requested_model=model, turns=(Turn("user", (TextPart(text),)),), **fields
    )


def settings(**overrides: Any) -> Settings:
    # Parking off: these tests follow one process through reset and reuse.
    return Settings(**{"pool_size": 1, "upstream_retries": 0, "pool_parked": 0, **overrides})


@pytest.fixture
async def warm(claude_env: dict[str, str]) -> AsyncIterator[ClaudeBackend]:
    """A started backend keeping one process warm, with that process ready."""
    with trio.fail_after(LIMIT):
        async with open_claude_backend(settings(), cli_env=claude_env) as backend:
            await wait_warm(backend.pool)
            yield backend
    assert claude_children() == []


class Used:
    """Records the processes a backend's runs get from its pool."""

    def __init__(self, backend: ClaudeBackend, monkeypatch: pytest.MonkeyPatch) -> None:
        self.procs: list[CliProcess] = []
        original = backend.pool.acquire

        async def acquire(*args: Any, **kwargs: Any) -> CliProcess:
            proc = await original(*args, **kwargs)
            self.procs.append(proc)
            return proc

        monkeypatch.setattr(backend.pool, "acquire", acquire)


async def collect(backend: ClaudeBackend, request: CompletionRequest) -> list[Event]:
    send, receive = trio.open_memory_channel[Event](math.inf)
    with trio.fail_after(LIMIT):
        async with send:
            await backend.run(request, send, trio.Event())
    return [e async for e in receive]


def completions(model: RunningScriptedModel) -> list[RecordedRequest]:
    """The streamed completion requests (not the CLI's model checks)."""
    return [r for r in model.model.requests if r.body.get("stream")]


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def idle_again(backend: ClaudeBackend, proc: CliProcess) -> None:
    with trio.fail_after(LIMIT):
        await backend.pool.wait_for(lambda: proc in idle_processes(backend.pool))


async def test_the_first_request_gets_a_warm_process(
    warm: ClaudeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = Used(warm, monkeypatch)
    events = await collect(warm, ask("hello"))
    assert events[-1] == Finished("end_turn")
    assert used.procs[0].reused


async def test_a_reused_process_carries_nothing_from_the_previous_conversation(
    warm: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = Used(warm, monkeypatch)
    scripted_model.model.when("FIRST-SECRET", Reply(text="FIRST-ANSWER"))
    await collect(warm, ask("FIRST-SECRET question"))
    await idle_again(warm, used.procs[0])
    await collect(warm, ask("second question"))
    assert used.procs[0] is used.procs[1]
    second = completions(scripted_model)[-1]
    assert "second question" in second.text
    assert "FIRST-SECRET" not in str(second.body)
    assert "FIRST-ANSWER" not in str(second.body)
    # Nor anything about the reset: the request is what a new process would send.
    first_body = completions(scripted_model)[-2].body
    assert str(first_body["messages"]).replace("FIRST-SECRET question", "second question") == str(
        second.body["messages"]
    )


async def test_a_process_that_cannot_be_reset_is_replaced_not_reused(
    warm: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = Used(warm, monkeypatch)
    send = CliProcess.send

    async def send_and_forget_it(proc: CliProcess, content: Any) -> None:
        await send(proc, content)
        # The reset then asks the CLI to rewind to a message it never had: it refuses.
        proc._first_uuid = "00000000-0000-4000-8000-000000000000"

    with monkeypatch.context() as m:
        m.setattr(CliProcess, "send", send_and_forget_it)
        await collect(warm, ask("FIRST-SECRET question"))
    first = used.procs[0]
    with trio.fail_after(LIMIT):
        await warm.pool.wait_for(lambda: first.pid not in pids(warm.pool))
    await collect(warm, ask("second question"))
    assert used.procs[1] is not first
    assert "FIRST-SECRET" not in str(completions(scripted_model)[-1].body)


async def test_client_slash_text_reaches_the_model_and_resets_nothing(
    warm: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = Used(warm, monkeypatch)
    await collect(warm, ask("remember BANANA"))
    await collect(warm, ask("/clear"))  # sent verbatim: the model sees it, nothing resets
    assert last_user_text(completions(scripted_model)[-1]) == "/clear"
    assert all(p.reused for p in used.procs)


async def test_another_system_prompt_or_tool_set_never_shares_a_process(
    warm: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = Used(warm, monkeypatch)
    with monkeypatch.context() as m:
        m.setattr(_claude_backend, "build_client_tools", lambda request, **_: deferring_tools())
        await collect(warm, ask("with tools", system="ALPHA-SYSTEM"))
    await collect(warm, ask("plain question"))
    assert used.procs[0] is not used.procs[1]
    plain = completions(scripted_model)[-1]
    assert "ALPHA-SYSTEM" not in plain.system_text
    assert plain.body.get("tools", []) == []


async def test_a_model_change_to_an_alias_reuses_the_warm_process(
    warm: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = Used(warm, monkeypatch)
    await collect(warm, ask("hello", model="haiku"))
    assert used.procs[0].reused
    assert "haiku" in completions(scripted_model)[-1].body["model"]


async def test_without_room_for_another_process_a_full_model_id_is_switched_to_live(
    claude_env: dict[str, str],
    scripted_model: RunningScriptedModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with trio.fail_after(LIMIT):
        async with open_claude_backend(settings(pool_max=1), cli_env=claude_env) as backend:
            await wait_warm(backend.pool)
            used = Used(backend, monkeypatch)
            await collect(backend, ask("hello", model="claude-haiku-4-5"))
    assert used.procs[0].reused
    assert completions(scripted_model)[-1].body["model"] == "claude-haiku-4-5"
    assert claude_children() == []


async def test_a_repeated_system_prompt_gets_a_warm_process_after_its_first_request(
    warm: ClaudeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = Used(warm, monkeypatch)
    # The first takes the warm process, its system prompt switched (test_prompt_switch).
    await collect(warm, ask("one", system="You are an IDE assistant."))
    assert used.procs[0].reused and warm.pool.status()["switched"] == 1
    await idle_again(warm, used.procs[0])
    await collect(warm, ask("two", system="You are an IDE assistant."))
    assert used.procs[1] is used.procs[0] and used.procs[1].reused
    assert warm.pool.status()["switched"] == 1


async def test_a_request_arriving_during_a_reset_waits_for_that_process_not_a_new_one(
    warm: ClaudeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = Used(warm, monkeypatch)
    pool = warm.pool
    resume = trio.Event()
    reset = CliProcess.reset

    async def held_reset(proc: CliProcess) -> bool:
        await resume.wait()
        return await reset(proc)

    monkeypatch.setattr(CliProcess, "reset", held_reset)
    await collect(warm, ask("one"))
    first = used.procs[0]
    spawned = pool.count.spawned
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(collect, warm, ask("two"))
            await pool.wait_for(lambda: is_awaited(pool, first))
            resume.set()
    assert used.procs[1] is first
    assert pool.count.spawned == spawned


async def test_concurrent_requests_keep_as_many_processes_as_they_use_not_twice_that(
    warm: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = warm.pool
    scripted_model.model.when("burst", Reply(tokens=5, delay=0.05))
    most = 0

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, len(pids(pool)))
            await pool.count.changed.wait()

    async def burst() -> None:
        nonlocal most
        # The watcher runs until every request is done: waiting on the pool's
        # counters alone would miss a request that ends after its last change.
        async with trio.open_nursery() as outer:
            outer.start_soon(watch)
            async with trio.open_nursery() as nursery:
                for n in range(4):
                    nursery.start_soon(collect, warm, ask(f"burst {n}"))
            most = max(most, len(pids(pool)))
            outer.cancel_scope.cancel()

    with trio.fail_after(LIMIT):
        await burst()
        await pool.wait_for(lambda: pool.status()["busy"] == 0 and pool.count.spawning == 0)
        spawned = pool.count.spawned
        await burst()
        await pool.wait_for(lambda: pool.status()["busy"] == 0 and pool.count.spawning == 0)
    assert pool.count.spawned == spawned  # the second burst found its four processes
    assert most <= 4 and len(pids(pool)) == 4


async def test_pooled_processes_leave_no_transcript_of_their_requests_on_disk(
    warm: ClaudeBackend, claude_env: dict[str, str]
) -> None:
    history = (
        Turn("user", (TextPart("OLD-QUESTION"),)),
        Turn("assistant", (TextPart("OLD-ANSWER"),)),
        Turn("user", (TextPart("now"),)),
    )
    await collect(warm, ask("DISK-SECRET one"))
    await collect(warm, CompletionRequest(model="sonnet", requested_model="sonnet", turns=history))
    await collect(warm, ask("DISK-SECRET two"))
    assert files_mentioning("SECRET", Path(claude_env["CLAUDE_CONFIG_DIR"])) == []


def files_mentioning(text: str, directory: Path) -> list[Path]:
    return [
        p for p in directory.rglob("*") if p.is_file() and text in p.read_text("utf-8", "replace")
    ]


async def test_a_full_model_id_is_never_switched_to_on_a_live_process_while_there_is_room(
    warm: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Switching a live process to a full model id costs the CLI a check call upstream
    # (and ~0.7 s); an alias it resolves by itself.
    def checks() -> int:
        return len(scripted_model.model.requests) - len(completions(scripted_model))

    used = Used(warm, monkeypatch)
    (default,) = idle_processes(warm.pool)
    await collect(warm, ask("first", model="claude-haiku-4-5"))
    assert used.procs[0] is not default and checks() == 0
    await idle_again(warm, used.procs[0])
    await collect(warm, ask("second", model="claude-haiku-4-5"))
    assert used.procs[1] is used.procs[0] and checks() == 0
    await collect(warm, ask("third", model="haiku"))
    assert used.procs[2].reused and checks() == 0
    assert [r.body["model"] for r in completions(scripted_model)][:2] == ["claude-haiku-4-5"] * 2


async def test_warm_processes_start_on_the_model_clients_ask_for(
    warm: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = Used(warm, monkeypatch)
    await collect(warm, ask("first", model="claude-haiku-4-5"))
    killed = {p.pid for p in idle_processes(warm.pool) + used.procs}
    for pid in killed:
        os.kill(pid or 0, signal.SIGKILL)  # the pool replaces them for the next request
    with trio.fail_after(LIMIT):
        await warm.pool.wait_for(
            lambda: [p.pid not in killed for p in idle_processes(warm.pool)] == [True]
        )
    (replacement,) = idle_processes(warm.pool)
    assert replacement.model == "claude-haiku-4-5"
    await collect(warm, ask("second", model="claude-haiku-4-5"))
    assert used.procs[1] is replacement


async def test_a_killed_warm_process_does_not_harm_the_next_request(
    warm: ClaudeBackend, scripted_model: RunningScriptedModel
) -> None:
    (pid,) = pids(warm.pool)
    os.kill(pid, signal.SIGKILL)
    scripted_model.model.when("after", Reply(text="still fine"))
    events = await collect(warm, ask("after the kill"))
    assert text_of(events) == "still fine"
    assert pid not in pids(warm.pool)


async def test_a_reused_process_that_fails_silently_is_retried_on_a_fresh_one(
    warm: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend the health check missed the death, so the request meets the dead process.
    monkeypatch.setattr(CliProcess, "alive", property(lambda self: not self._closed))
    used = Used(warm, monkeypatch)
    (pid,) = pids(warm.pool)
    os.kill(pid, signal.SIGKILL)  # whenever it dies, it cannot answer
    scripted_model.model.when("retry", Reply(text="answered"))
    events = await collect(warm, ask("retry me"))
    assert text_of(events) == "answered"
    assert [p.reused for p in used.procs] == [True, False]


async def test_a_cancelled_request_returns_its_process_clean_and_idle(
    warm: ClaudeBackend, scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = Used(warm, monkeypatch)
    scripted_model.model.when("slow", Reply(tokens=400, delay=0.05))
    send, receive = trio.open_memory_channel[Event](math.inf)
    first = trio.Event()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                await warm.run(ask("slow please"), send, trio.Event())

            async def watch() -> None:
                async for event in receive:
                    if isinstance(event, TextDelta):
                        first.set()

            nursery.start_soon(run)
            nursery.start_soon(watch)
            await first.wait()
            nursery.cancel_scope.cancel()
    proc = used.procs[0]
    with trio.fail_after(1):
        await warm.pool.wait_for(lambda: proc in idle_processes(warm.pool))
    await collect(warm, ask("next question"))
    assert "slow please" not in str(completions(scripted_model)[-1].body)


async def test_aclose_ends_every_process(claude_env: dict[str, str]) -> None:
    with trio.fail_after(LIMIT):
        async with open_claude_backend(settings(pool_size=2), cli_env=claude_env) as backend:
            await wait_warm(backend.pool)
            assert len(claude_children()) == 2
    assert claude_children() == []


async def test_status_counts_processes(warm: ClaudeBackend) -> None:
    status = warm.status()
    assert status["warm"] == 1 and status["busy"] == 0 and status["spawned"] == 1
    assert {"starting", "recycled", "failed"} <= set(status)


async def test_without_warm_processes_each_request_runs_cold_and_leaves_nothing(
    claude_env: dict[str, str],
) -> None:
    with trio.fail_after(LIMIT):
        async with open_claude_backend(settings(pool_size=0), cli_env=claude_env) as backend:
            events = await collect(backend, ask("hello"))
            assert events[-1] == Finished("end_turn")
            await backend.pool.wait_for(lambda: backend.status()["busy"] == 0)
            assert backend.status()["warm"] == 0
            assert claude_children() == []


def test_the_memory_budget_caps_the_number_of_processes() -> None:
    assert ProcessPool(Settings(pool_max=8, pool_memory_mb=800)).capacity == 2
    assert ProcessPool(Settings(pool_max=3, pool_memory_mb=100_000)).capacity == 3
