"""One queue deadline: a request's waits for its session's lock, a run slot and room for a
CLI process share one ``queue_timeout``, on trio's virtual clock.

The three resources are real (the session locks, the exchange's limiter, the process
pool's count); each is held by a task for a set time, then freed. The backend waits for
room in the count the way the pool does, until the request's queue deadline
(tests/test_pool_cap.py shows the Claude backend's pool doing so with real processes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing
from asgi_fakes import AsgiCall, FakeDialect, simple_request

from clawrap.claude.pool._count import ProcessCount
from clawrap.core._config import Settings
from clawrap.core._events import Event, Finished, TextDelta
from clawrap.core._request import CompletionRequest, Turn
from clawrap.http._exchange import run_exchange
from clawrap.http._exchange_sessions import Sessions
from clawrap.sessions._store import SessionLocks

QUEUE = 10.0


@dataclasses.dataclass
class Resolution:
    """The part of a session store's resolution the exchange uses."""

    session_id: str

    def request(self, request: CompletionRequest) -> CompletionRequest:
        return dataclasses.replace(request, session_id=self.session_id)


class Store:
    """A session store that keeps nothing: the waits, not the storage, are under test."""

    async def resolve(self, session_id: str, turns: Sequence[Turn]) -> Resolution:
        return Resolution(session_id)

    async def commit(self, resolution: Resolution, *args: Any, **kwargs: Any) -> str:
        return resolution.session_id


class PoolBackend:
    """Answers once the pool's process count has room (no process runs)."""

    def __init__(self, count: ProcessCount) -> None:
        self.count = count
        self.deadlines: list[float | None] = []

    async def run(
        self, request: CompletionRequest, events: trio.MemorySendChannel[Event], halt: trio.Event
    ) -> None:
        self.deadlines.append(request.queue_deadline)
        assert request.queue_deadline is not None
        while not self.count.has_room():
            await self.count.wait_for_room(request.queue_deadline)
        await events.send(TextDelta("ok"))
        await events.send(Finished("end_turn"))

    async def aclose(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {}


async def queue_behind(
    lock_for: float, slot_for: float, room_for: float
) -> tuple[int, str | None, float, PoolBackend]:
    """A request on session "s" whose lock, only run slot and only room in the pool are
    held from time 0 for the given seconds: its status, error code and when it ended."""
    settings = Settings(queue_timeout=QUEUE, max_concurrency=1, pool_max=1, pool_size=0)
    locks, limiter = SessionLocks(), trio.CapacityLimiter(1)
    count = ProcessCount(1, settings, lambda: None)
    backend = PoolBackend(count)
    asgi = AsgiCall([])
    async with trio.open_nursery() as nursery:

        async def hold_lock(task_status: trio.TaskStatus[None]) -> None:
            async with locks.hold("s", wait=0):
                task_status.started()
                await trio.sleep(lock_for)

        async def hold_slot(task_status: trio.TaskStatus[None]) -> None:
            async with limiter:
                task_status.started()
                await trio.sleep(slot_for)

        async def hold_room(task_status: trio.TaskStatus[None]) -> None:
            process = object()  # stands for a live CLI process: it fills the count
            count.live.add(process)  # type: ignore[arg-type]
            task_status.started()
            await trio.sleep(room_for)
            count.live.discard(process)  # type: ignore[arg-type]
            count.notify()

        start = trio.current_time()
        for holder, seconds in (
            (hold_lock, lock_for),
            (hold_slot, slot_for),
            (hold_room, room_for),
        ):
            if seconds:
                await nursery.start(holder)
        await run_exchange(
            asgi.receive,
            asgi.send,
            dialect=FakeDialect(),
            request=dataclasses.replace(simple_request(), session_id="s"),
            options=None,
            backend=backend,
            settings=settings,
            limiter=limiter,
            sessions=Sessions(Store(), locks),  # type: ignore[arg-type]
        )
        ended = trio.current_time() - start
        nursery.cancel_scope.cancel()
    response = asgi.response
    assert response is not None
    code = response.json()["error"]["code"] if response.status != 200 else None
    return response.status, code, ended, backend


async def test_three_waits_of_most_of_the_queue_timeout_each_get_a_429_at_one_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Lock free at 8 s, the run slot at 16 s, room in the pool at 24 s: each wait alone is
    # 8 s of a 10 s queue timeout. Waited one by one, the request would run at 24 s.
    status, code, ended, backend = await queue_behind(8, 16, 24)
    assert (status, code, ended) == (429, "concurrency_limit", QUEUE)
    assert backend.deadlines == []  # it never took a slot


async def test_the_wait_for_room_in_the_pool_ends_at_the_same_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    status, code, ended, backend = await queue_behind(3, 6, 12)
    assert (status, code, ended) == (429, "pool_full", QUEUE)
    assert backend.deadlines == [QUEUE]  # the deadline set when it started queueing


async def test_the_wait_for_the_session_lock_ends_at_the_same_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    status, code, ended, _ = await queue_behind(12, 0, 0)
    assert (status, code, ended) == (409, "session_busy", QUEUE)


@pytest.mark.parametrize("waits", [(3, 6, 9), (0, 0, 9.5), (9.5, 0, 0)])
async def test_waits_that_add_up_to_less_than_the_timeout_run(
    autojump_clock: trio.testing.MockClock, waits: tuple[float, float, float]
) -> None:
    status, _, ended, _ = await queue_behind(*waits)
    assert status == 200
    assert ended == max(waits)
