"""The pool's count of CLI processes, which never exceeds its capacity.

A process counts from the moment its spawn starts until it has exited (its
disconnect returned), whatever it is doing meanwhile: starting, warm, parked,
busy, being reset or being closed, pooled or dedicated to one run. Spawns and
closes go through :class:`ProcessCount`,
so no path can start a process the count does not see or forget one that is
still exiting. When the count is at capacity, a caller ends a process it no
longer needs (an eviction) or waits for one to exit, up to a deadline.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from clawrap.claude._cli_process import CliProcess, spawn_process
from clawrap.claude._sdk_options import SpawnSpec
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError

FULL_RETRY_AFTER = 1.0  # seconds, in the 429 when no process came free in time


class ProcessCount:
    """Live processes and spawns under way, against ``capacity``.

    ``victim()`` gives a process nobody needs (taken out of its owner's sets) to
    end for room, or None. ``changed`` is replaced by a fresh event each time
    anything changes, so a task can wait for the next change.
    """

    def __init__(
        self, capacity: int, settings: Settings, victim: Callable[[], CliProcess | None]
    ) -> None:
        self.capacity = capacity
        self.start_timeout = settings.cli_start_timeout
        self.queue_timeout = settings.queue_timeout
        self._victim = victim
        self.live: set[CliProcess] = set()  # spawned and not yet exited
        self.spawning = self.closing = 0
        self._room_waiters = 0
        self.changed = trio.Event()
        self.spawned = self.failed = 0

    def total(self) -> int:
        return len(self.live) + self.spawning

    def has_room(self) -> bool:
        return self.total() < self.capacity

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def spawn(self, spec: SpawnSpec) -> CliProcess:
        """Start a process. The caller checked :meth:`has_room`, with no checkpoint since."""
        self.spawning += 1
        try:
            proc = await spawn_process(spec, start_timeout=self.start_timeout)
            self.live.add(proc)
        except BaseException:
            self.failed += 1
            raise  # spawn_process has ended it: it no longer counts
        finally:
            self.spawning -= 1
            self.notify()
        self.spawned += 1
        return proc

    async def close(self, proc: CliProcess, force: bool = False) -> None:
        """End ``proc``; it stops counting once it has exited. Shielded, never raises."""
        self.closing += 1
        try:
            await proc.close(force=force)
        finally:
            self.closing -= 1
            self.live.discard(proc)
            self.notify()

    def deadline(self, given: float | None) -> float:
        """When a wait for room ends: ``given`` (the request's queue deadline), else
        ``queue_timeout`` from now."""
        return trio.current_time() + self.queue_timeout if given is None else given

    async def wait_for_room(self, deadline: float) -> None:
        """The count is at capacity: end a victim (if there is one) and wait for it to
        exit, or wait for any change. Raises a 429 at ``deadline``."""
        self._room_waiters += 1
        try:
            # Processes already exiting will make room: one eviction per waiter is enough.
            proc = self._victim() if self.closing < self._room_waiters else None
            if proc is not None:
                await self.close(proc)
                return
            with trio.move_on_at(deadline):
                await self.changed.wait()
                return
        finally:
            self._room_waiters -= 1
        raise ClawrapError(
            "rate_limit",
            f"All {self.capacity} CLI processes stayed busy until the request had queued "
            f"{self.queue_timeout:g} s (CLAWRAP_POOL_MAX, CLAWRAP_POOL_MEMORY_MB, "
            "CLAWRAP_QUEUE_TIMEOUT); retry shortly.",
            code="pool_full",
            retry_after=FULL_RETRY_AFTER,
        )


__all__ = ["ProcessCount"]
