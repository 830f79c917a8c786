"""The one owner of Claude Code CLI processes: spawning, warming, reusing, parking, reaping.

The :class:`ProcessPool` hands processes (:class:`~clawrap.claude._cli_process.CliProcess`)
to requests by :class:`SpawnKey`: a warm idle process with the same key (its
conversation rewound after its last use; ``set_model`` switches its model), else
one of that key being reset or started (:mod:`~clawrap.claude.pool._coming`), else
an idle one whose key differs in the system prompt alone, given the request's
(:mod:`~clawrap.claude.pool._prompt_switch`), else a fresh one. Released processes
are reset in the background and kept, or ended. A background task keeps processes
warm as :class:`~clawrap.claude.pool._warm_policy.WarmPolicy` asks, expires idle ones
and replaces dead ones; requests never wait for it.

The capacity (``pool_max`` within ``pool_memory_mb``) is an invariant kept by
:class:`~clawrap.claude.pool._count.ProcessCount`: every spawn and close goes
through it, agent runs' processes included: each gets one of its own
(:meth:`ProcessPool.dedicated_process`, :mod:`~clawrap.claude.pool._dedicated`),
never pooled and stopped with every process it started. A request that finds no room
evicts a parked or idle process and waits for it to exit, or waits for a
process to come back, until the request's queue deadline (then a 429): the
server gives each request one ``queue_timeout`` for all its waits.

Parking (implicit continuation): a process whose turn ended normally can be
*parked*, its conversation intact, under that conversation's fingerprint
(:func:`~clawrap.protocol._conversation.conversation_key`); a request that extends it
takes it with :meth:`ProcessPool.take_parked` and sends only its new message. At
most ``pool_parked`` are parked; the oldest is reset into the idle set when one
more is parked, or (once requests had to reclaim parked ones) when the warm
set runs short with no room to spawn; parked ones go first when room is needed.

Nothing else in clawrap touches a CLI process.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import trio

from clawrap.claude._cli_process import CliProcess
from clawrap.claude._sdk_errors import map_exceptions
from clawrap.claude._sdk_options import SpawnKey, SpawnSpec
from clawrap.claude.pool._coming import ComingProcesses
from clawrap.claude.pool._count import ProcessCount
from clawrap.claude.pool._dedicated import DedicatedProcesses
from clawrap.claude.pool._held import IdleSet, ParkedSet
from clawrap.claude.pool._prompt_switch import switch, take_switchable
from clawrap.claude.pool._warm_policy import PEAK_WINDOW, WarmPolicy, capacity
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._models import ALIASES

log = logging.getLogger("clawrap.processes")

SET_MODEL_TIMEOUT = 10.0  # may validate the model with a tiny upstream call
RETRY_BACKOFF = 5.0  # after a failed warm spawn of the default configuration; doubles
MAX_RETRY_BACKOFF = 300.0

State = Literal["idle", "midturn", "broken"]


def switch_is_free(model: str) -> bool:
    """Whether a live CLI process switches to ``model`` without asking upstream first.

    The CLI resolves an alias locally; a full model id it checks with a call upstream
    (~0.7 s against a local model, once per process and model).
    """
    return model in ALIASES


def _serves(spec: SpawnSpec, key: SpawnKey, model: str) -> bool:
    """Whether a process of ``key`` on ``model`` can serve ``spec`` without a costly switch."""
    return key == spec.key and (model == spec.model or switch_is_free(spec.model))


class ProcessPool:
    """Processes by spawn key. See the module docstring for the policy.

    Without :meth:`start` nothing is warmed ahead of time and resets run in the
    releasing task; with it, a background task does both.
    """

    def __init__(self, settings: Settings, default_spec: SpawnSpec | None = None) -> None:
        self.settings = settings
        self.capacity = capacity(settings)
        self._default = default_spec.without_resume() if default_spec else None
        self.policy = WarmPolicy(settings, self._default)
        self.count = ProcessCount(self.capacity, settings, self._victim)
        self.dedicated = DedicatedProcesses(self.count)
        self._idle = IdleSet()
        self._parked = ParkedSet(max(0, min(settings.pool_parked, self.capacity)))
        self._busy: set[CliProcess] = set()
        self._coming = ComingProcesses(self.wait_for, self.count.notify)
        self._nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()
        self._wake = trio.Event()
        self._backoff_until = 0.0
        self._backoff = RETRY_BACKOFF
        # Until then, parked processes are reset into the warm set in the background when
        # it runs short: requests had to reclaim them, the pool cannot hold both.
        self._pressure_until = 0.0
        self._closed = False
        self.recycled = self.continued = 0
        self.parked_open = self.abandoned = 0  # parked with tool calls open; freed unanswered
        # Idle processes given another system prompt instead of a spawn; only on the bundled
        # CLI, whose builds are known to apply it (older ones ignore it yet answer success).
        self.switched = 0
        self._switches = settings.cli_path is None

    # -- lifecycle

    async def start(self, nursery: trio.Nursery) -> None:
        """Run warming, resets and expiry in ``nursery`` until :meth:`aclose`."""
        await nursery.start(self._background)

    async def _background(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery, self._scope = nursery, nursery.cancel_scope
                if self._closed:
                    nursery.cancel_scope.cancel()
                task_status.started()
                nursery.start_soon(self._maintain)
        finally:
            self._nursery = None
            self._stopped.set()

    async def aclose(self) -> None:
        """End every process; nothing is left running. Idempotent."""
        self._closed = True
        if self._scope is not None:
            self._scope.cancel()
            with trio.CancelScope(shield=True):
                await self._stopped.wait()
        await self.dedicated.aclose()
        with trio.CancelScope(shield=True):
            idle = self._idle.clear() + self._parked.clear()
            busy = list(self._busy)
            self._busy.clear()
            async with trio.open_nursery() as nursery:
                for proc in idle:
                    nursery.start_soon(self._close, proc)
                for proc in busy:
                    nursery.start_soon(self._close, proc, True)
        self.count.notify()

    # -- accounting

    def status(self) -> dict[str, Any]:
        resetting = self._coming.resetting_count
        held = self._idle.count() + len(self._parked) + len(self._busy) + resetting
        return {
            "warm": self._idle.count(),
            "parked": len(self._parked),
            "busy": len(self._busy) + resetting,
            "starting": self.count.spawning,
            "closing": len(self.count.live) - held,
            "spawned": self.count.spawned,
            "recycled": self.recycled,
            "continued": self.continued,
            "parked_open": self.parked_open,
            "abandoned": self.abandoned,
            "switched": self.switched,
            "failed": self.count.failed,
            "max": self.capacity,
        }

    def _changed(self) -> None:
        """Wake whoever waits for a change, and the background task."""
        self.count.notify()
        self._wake.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; it is checked whenever the pool changes."""
        while not predicate():
            await self.count.changed.wait()

    async def _close(self, proc: CliProcess, force: bool = False) -> None:
        try:
            await self.count.close(proc, force)
        finally:
            self._wake.set()

    def _mark_busy(self, proc: CliProcess) -> None:
        self._busy.add(proc)
        busy = sum(1 for p in self._busy if p.key == proc.key)
        self.policy.note_busy(proc.key, busy, trio.current_time())
        self._changed()

    # -- acquire and release

    async def acquire(
        self, spec: SpawnSpec, *, fresh: bool = False, deadline: float | None = None
    ) -> CliProcess:
        """A process for ``spec``, busy until :meth:`release`. Raises ClawrapError.

        ``fresh`` skips warm processes (used to retry after a reused one failed).
        ``deadline`` (trio clock) ends the wait for room with a 429; by default
        ``queue_timeout`` from now.
        """
        self._check_open()
        self.policy.note(spec, trio.current_time())
        warm = spec.resume is None and not fresh
        # Waiting for room is bounded; a spawn or reset under way is bounded by its own timeout.
        deadline = self.count.deadline(deadline)
        while True:
            if warm:
                proc = (
                    await self._take_warm(spec)
                    or await self._take_switched(spec)
                    or await self._reclaim(spec)
                )
                if proc is not None:
                    return proc
            self._check_open()
            if self.count.has_room():
                try:
                    proc = await self.count.spawn(spec)
                except ClawrapError:
                    # Warming a configuration that just failed to start would fail the same way.
                    self.policy.forget(spec.key)
                    raise
                self._mark_busy(proc)
                return proc
            await self.count.wait_for_room(deadline)

    def dedicated_process(
        self, spec: SpawnSpec, *, deadline: float | None = None
    ) -> AbstractAsyncContextManager[CliProcess]:
        """A process for one run alone (an agent run's), never pooled: it counts against the
        capacity until it has exited, and the block's end stops it with every process it
        started. Waits for room like :meth:`acquire`, until ``deadline``."""
        self._check_open()
        return self.dedicated.run(spec, deadline=deadline)

    def _check_open(self) -> None:
        if self._closed:
            raise ClawrapError("overloaded", "The server is shutting down.")

    def _victim(self) -> CliProcess | None:
        """The process to end for room: the oldest parked, else the oldest idle."""
        return self._parked.pop_oldest() or self._idle.pop_oldest()

    async def _take_warm(self, spec: SpawnSpec) -> CliProcess | None:
        # Switching a live process to a full model id costs the CLI a check call upstream
        # and ~0.7 s (measured against a local model), more than a cold start (~0.3 s):
        # with room to start one, only a process already on the model will do.
        any_model = switch_is_free(spec.model) or not self.count.has_room()
        model = None if any_model else spec.model
        for _ in range(3):
            while (proc := self._idle.take(spec.key, spec.model, any_model=any_model)) is not None:
                if not proc.alive:
                    self.count.failed += 1
                    await self._close(proc)
                    continue
                self._mark_busy(proc)
                if await self._hand_out(proc, spec) is None:
                    continue
                return proc
            if not await self._coming.wait_for_one(spec.key, model):
                return None
        return None

    async def _take_switched(self, spec: SpawnSpec) -> CliProcess | None:
        """An idle process of another system prompt (``_prompt_switch``), given ``spec``'s."""
        if not self._switches:
            return None
        any_model = switch_is_free(spec.model) or not self.count.has_room()
        now = trio.current_time()
        surplus = lambda key: self._idle.count(key) > self.policy.target(key, now)  # noqa: E731
        while proc := take_switchable(self._idle, spec, any_model=any_model, surplus=surplus):
            self._busy.add(proc)  # counted busy under its new key once switched
            switched = False
            try:
                switched = proc.alive and await switch(proc, spec.key)
            finally:
                if not switched:
                    self._busy.discard(proc)
                    if not proc.alive:
                        self.count.failed += 1
                    await self._close(proc)
            if switched:
                self.switched += 1
                self._mark_busy(proc)
                if await self._hand_out(proc, spec) is not None:
                    return proc
        return None

    async def _reclaim(self, spec: SpawnSpec) -> CliProcess | None:
        """With no room for a cold start, the oldest parked process of ``spec``'s key, reset."""
        if self.count.has_room():
            return None
        proc = self._parked.pop_oldest(spec.key)
        if proc is None:
            return None
        self._pressure_until = trio.current_time() + PEAK_WINDOW
        self._mark_busy(proc)
        cleared = False
        try:
            cleared = await proc.reset() and proc.alive
        finally:
            if not cleared:
                self._busy.discard(proc)
                await self._close(proc)
        return await self._hand_out(proc, spec) if cleared else None

    async def _hand_out(self, proc: CliProcess, spec: SpawnSpec) -> CliProcess | None:
        """``proc`` (already counted busy) on ``spec``'s model, or None (closed) if it cannot."""
        proc.reused = True
        try:
            with map_exceptions("run"), trio.fail_after(SET_MODEL_TIMEOUT):
                await proc.set_model(spec.model)
        except BaseException as exc:
            self._busy.discard(proc)
            await self._close(proc)
            if isinstance(exc, ClawrapError):
                return None
            raise
        return proc

    # -- parking

    async def park(self, proc: CliProcess, conversation: str) -> None:
        """Keep ``proc``, whose turn ended normally, holding the conversation whose key is
        ``conversation``, for the request that continues it. Call under a shield.

        With parking off, or the pool closing, this is a release.
        """
        if self._closed or self._parked.limit == 0 or not proc.alive or proc.in_turn:
            await self.release(proc, "idle")
            return
        self._busy.discard(proc)
        proc.idle_since = trio.current_time()
        evicted = self._parked.put(conversation, proc)
        self._changed()
        for old in evicted:
            await self._unpark(old)

    async def park_open(self, proc: CliProcess, conversation: str) -> None:
        """Keep ``proc`` mid-turn, its client tool calls open (``proc.open_calls``), holding
        the conversation whose key is ``conversation`` (it ends on the model's tool calls),
        for the request that brings the results. Call under a shield.

        Freed (interrupted and reset) when nobody brings them within ``tool_wait``, or
        when room is needed, like any parked process. With parking off, or the pool
        closing, this is a release.
        """
        if self._closed or self._parked.limit == 0 or not proc.alive or not proc.open_calls:
            await self.release(proc, "midturn")
            return
        self._busy.discard(proc)
        proc.idle_since = trio.current_time()
        evicted = self._parked.put(conversation, proc)
        self.parked_open += 1
        self._changed()
        if self._nursery is not None:
            with contextlib.suppress(RuntimeError):  # the nursery is closing
                self._nursery.start_soon(self._free_after, proc, proc.idle_since)
        for old in evicted:
            await self._unpark(old)

    async def _free_after(self, proc: CliProcess, parked_at: float) -> None:
        """Free ``proc`` ``tool_wait`` after it was parked with calls open, if it still is."""
        await trio.sleep_until(parked_at + self.settings.tool_wait)
        if proc.idle_since == parked_at and proc.open_calls and self._parked.remove(proc):
            log.info("CLI process %s: the client never sent its tool results; freed", proc.pid)
            self.abandoned += 1
            with trio.CancelScope(shield=True):
                await self._unpark(proc)

    async def _unpark(self, proc: CliProcess) -> None:
        """Reset a process taken out of the parked set into the idle set (or close it)."""
        self._busy.add(proc)
        await self.release(proc, "idle")

    async def take_parked(self, spec: SpawnSpec, conversation: str) -> CliProcess | None:
        """The parked process holding ``conversation`` if its spawn key is ``spec``'s, now busy
        and on ``spec``'s model; None when there is none (or it died)."""
        proc = None if self._closed else self._parked.take(conversation, spec.key)
        if proc is None:
            return None
        self.policy.note(spec, trio.current_time())
        if not proc.alive:
            self.count.failed += 1
            await self._close(proc)
            return None
        self._mark_busy(proc)
        taken = await self._hand_out(proc, spec)
        if taken is not None:
            self.continued += 1
        return taken

    async def release(self, proc: CliProcess, state: State) -> None:
        """Give ``proc`` back. ``state``: "idle" after a complete turn, "midturn"
        when the turn was abandoned, "broken" when the process misbehaved.

        Call under a shield. With a background nursery this returns at once.
        """
        self._busy.discard(proc)
        self._coming.resetting(proc)
        if self._nursery is not None and not self._closed:
            try:
                self._nursery.start_soon(self._recycle, proc, state)
                return
            except RuntimeError:  # the nursery is closing
                pass
        with trio.CancelScope(shield=True):
            await self._recycle(proc, state)

    def _wants(self, key: SpawnKey) -> bool:
        # Extras beyond the key's target are kept and trimmed by expiry later: closing
        # one now would only make the warmer spawn another.
        return not self._closed and self.policy.target(key, trio.current_time()) > 0

    async def _recycle(self, proc: CliProcess, state: State) -> None:
        keep = False
        try:
            if state != "broken" and proc.alive and self._wants(proc.key):
                keep = await proc.reset() and proc.alive and self._wants(proc.key)
                if not keep:
                    log.info("CLI process %s could not be reset; replacing it", proc.pid)
        finally:
            if keep:
                proc.idle_since = trio.current_time()
                self._idle.add(proc)
                self.recycled += 1
            else:
                await self._close(proc)
            self._coming.reset_done(proc)  # counted busy until it has exited
            self._changed()

    # -- the background task

    async def _maintain(self) -> None:
        interval = max(0.5, min(5.0, self.settings.pool_idle_expiry / 2))
        self._wake.set()  # warm up at once, not one interval after start
        while True:
            with trio.move_on_after(interval):
                await self._wake.wait()
            self._wake = trio.Event()
            await self._expire()
            spec = self._deficit()
            if spec is None:
                continue
            if self.count.has_room():
                if trio.current_time() >= self._backoff_until:
                    await self._warm_one(spec)
                    self._wake.set()  # look again right away
            elif trio.current_time() < self._pressure_until:
                # No room to spawn, and requests had to wait for resets of parked processes.
                proc = self._parked.pop_oldest(spec.key)
                if proc is not None:
                    await self._unpark(proc)

    async def _expire(self) -> None:
        now = trio.current_time()
        expiry = self.settings.pool_idle_expiry
        self.policy.forget_stale(now)
        gone = self._parked.expired(now, expiry, self.settings.tool_wait)
        for key in self._idle.spawn_keys():
            gone += [
                p for p in self.policy.expired(key, self._idle.of(key), now) if self._idle.remove(p)
            ]
        for proc in gone:
            if not proc.alive:
                self.count.failed += 1
            await self._close(proc)

    def _deficit(self) -> SpawnSpec | None:
        """The spec of the most wanted key that has fewer processes than its target, if any.

        Busy ones count: they come back reset within milliseconds of their request's end.
        So does a process on another model only if switching it to this one is free.
        """
        if self._closed:
            return None
        now = trio.current_time()
        for spec in self.policy.wanted():
            # Parked with tool calls open: back in the loop with the client's next request.
            waiting = [p for p in self._parked.all() if p.open_calls]
            held = (
                *self._idle.of(spec.key),
                *self._coming.resetting_processes(),
                *self._busy,
                *waiting,
            )
            have = sum(1 for p in held if _serves(spec, p.key, p.model))
            have += sum(1 for s in self._coming.starts() if _serves(spec, s.key, s.model))
            if have < self.policy.target(spec.key, now):
                return spec
        return None

    async def _warm_one(self, spec: SpawnSpec) -> None:
        try:
            with self._coming.starting(spec.key, spec.model):
                proc = await self.count.spawn(spec)
        except ClawrapError:
            if self.policy.forget(spec.key):
                log.warning("warming a CLI process failed; no longer keeping its kind warm")
                return
            # The default configuration is always wanted: retry, less often each time.
            self._backoff_until = trio.current_time() + self._backoff
            log.warning("warming a CLI process failed; retrying in %.0f s", self._backoff)
            self._backoff = min(self._backoff * 2, MAX_RETRY_BACKOFF)
            return
        self._backoff = RETRY_BACKOFF
        if self._closed:
            await self._close(proc)
            return
        self._idle.add(proc)
        self.count.notify()


__all__ = ["CliProcess", "ProcessPool", "State"]
