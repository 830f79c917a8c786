"""The pool's capacity is a real cap: never more live CLI processes than ``pool_max``.

Real SDK and CLI against the scripted model. A sampling task reads the live
``claude`` children from /proc while more requests run than there may be
processes; every test is bounded and proves no CLI process is left.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
import trio

from clawrap.claude._backend import ClaudeBackend, open_claude_backend
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event, TextDelta
from clawrap.scripted._model import Reply
from tests.pool_helpers import pids, wait_warm
from tests.procs import claude_children
from tests.test_processes import ask

if TYPE_CHECKING:
    from tests.conftest import RunningScriptedModel

pytestmark = pytest.mark.e2e

LIMIT = 90
SAMPLE_EVERY = 0.005


async def reply_text(backend: ClaudeBackend, text: str) -> str:
    send, receive = trio.open_memory_channel[Event](math.inf)
    async with send:
        await backend.run(ask(text), send, trio.Event())
    return "".join([e.text async for e in receive if isinstance(e, TextDelta)])


async def test_more_concurrent_requests_than_pool_max_never_exceed_it_and_all_succeed(
    scripted_model: RunningScriptedModel, claude_env: dict[str, str]
) -> None:
    for i in range(6):
        scripted_model.model.when(f"question {i}", Reply(text=f"answer {i}", delay=0.02))
    settings = Settings(pool_size=1, pool_max=2, upstream_retries=0)
    replies: dict[int, str] = {}
    seen: list[int] = []
    with trio.fail_after(LIMIT):
        async with open_claude_backend(settings, cli_env=claude_env) as backend:
            await wait_warm(backend.pool)
            async with trio.open_nursery() as sampling:

                async def sample() -> None:
                    while True:
                        seen.append(len(claude_children()))
                        await trio.sleep(SAMPLE_EVERY)

                sampling.start_soon(sample)
                async with trio.open_nursery() as requests:
                    for i in range(6):

                        async def one(i: int = i) -> None:
                            replies[i] = await reply_text(backend, f"question {i}")

                        requests.start_soon(one)
                sampling.cancel_scope.cancel()
    assert replies == {i: f"answer {i}" for i in range(6)}
    assert max(seen) <= 2
    assert claude_children() == []


async def test_a_request_that_finds_no_room_in_time_gets_a_429(
    scripted_model: RunningScriptedModel, claude_env: dict[str, str]
) -> None:
    scripted_model.model.when("hold", Reply(tokens=400, delay=0.05))
    settings = Settings(pool_size=1, pool_max=1, queue_timeout=0.5, upstream_retries=0)
    started = trio.Event()
    with trio.fail_after(LIMIT):
        async with open_claude_backend(settings, cli_env=claude_env) as backend:
            await wait_warm(backend.pool)
            async with trio.open_nursery() as nursery:

                async def hold() -> None:
                    send, receive = trio.open_memory_channel[Event](math.inf)
                    nursery.start_soon(backend.run, ask("hold it"), send, trio.Event())
                    async for event in receive:
                        if isinstance(event, TextDelta):
                            started.set()

                nursery.start_soon(hold)
                await started.wait()
                with pytest.raises(ClawrapError) as raised:
                    await reply_text(backend, "no room")
                nursery.cancel_scope.cancel()
    assert raised.value.status == 429 and raised.value.code == "pool_full"
    assert claude_children() == []


async def test_a_request_waits_for_room_only_until_its_queue_deadline(
    scripted_model: RunningScriptedModel, claude_env: dict[str, str]
) -> None:
    """The server's queue deadline, set when the request started queueing, bounds the wait
    for room, not a fresh queue_timeout (here 60 s) from when the backend is asked."""
    scripted_model.model.when("hold", Reply(tokens=400, delay=0.05))
    settings = Settings(pool_size=1, pool_max=1, queue_timeout=60, upstream_retries=0)
    started = trio.Event()
    with trio.fail_after(LIMIT):
        async with open_claude_backend(settings, cli_env=claude_env) as backend:
            await wait_warm(backend.pool)
            async with trio.open_nursery() as nursery:

                async def hold() -> None:
                    send, receive = trio.open_memory_channel[Event](math.inf)
                    nursery.start_soon(backend.run, ask("hold it"), send, trio.Event())
                    async for event in receive:
                        if isinstance(event, TextDelta):
                            started.set()

                nursery.start_soon(hold)
                await started.wait()
                late = replace(ask("no room"), queue_deadline=trio.current_time() + 0.5)
                send, _ = trio.open_memory_channel[Event](math.inf)
                # Well short of queue_timeout: only the request's own deadline can end it.
                with trio.fail_after(20), pytest.raises(ClawrapError) as raised:
                    await backend.run(late, send, trio.Event())
                nursery.cancel_scope.cancel()
    assert raised.value.status == 429 and raised.value.code == "pool_full"
    assert claude_children() == []


async def test_a_dedicated_process_counts_against_the_capacity(claude_env: dict[str, str]) -> None:
    # Was a test of pool.reserve(); agent runs now get their process from the pool itself.
    settings = Settings(pool_size=1, pool_max=2, upstream_retries=0)
    with trio.fail_after(LIMIT):
        async with open_claude_backend(settings, cli_env=claude_env) as backend:
            await wait_warm(backend.pool)
            (warm,) = pids(backend.pool)
            spec = backend._options.default_spec()
            pool = backend.pool
            async with pool.dedicated_process(spec) as one, pool.dedicated_process(spec) as two:
                # The warm process was ended to make room for the second dedicated one.
                assert pids(pool) == {one.pid, two.pid} and warm not in pids(pool)
                assert sorted(claude_children()) == sorted([one.pid, two.pid])
            assert pool.dedicated.active == set()
            assert one.pid not in claude_children() and two.pid not in claude_children()
    assert claude_children() == []
