"""The one owner of Claude Code CLI processes: spawning, warming, reusing, parking, reaping.

The :class:`ProcessPool` hands processes (:class:`~clawrap._cli_process.CliProcess`)
to requests by :class:`SpawnKey`: a warm idle process with the same key when
there is one (its conversation was cleared with ``/clear`` after its last use,
and ``set_model`` switches its model), else a freshly spawned one. Released
processes are reset in the background and kept for reuse, or disconnected. A
background task keeps ``pool_size`` processes warm for the default key and for
keys seen recently, expires idle ones and replaces dead ones; requests never
wait for it.

Parking (implicit continuation): a process whose turn ended normally can be
*parked* instead, its conversation intact, under the fingerprint of that
conversation (:func:`~clawrap._conversation.conversation_key`). A later request
whose history extends exactly that conversation takes it with
:meth:`ProcessPool.take_parked` and sends only its new message: the process is
warm and the upstream prompt cache still matches. At most ``pool_parked``
processes are parked; they count against ``pool_max`` and the memory budget,
the oldest is reset into the idle set when one more is parked, and parked ones
are the first to go when room is needed (reset and handed over when their key
fits, else closed). They expire like idle ones.

Nothing else in clawrap touches a CLI process.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import trio

from ._cli_process import CliProcess, spawn_process
from ._config import Settings
from ._errors import ClawrapError
from ._sdk_errors import map_exceptions
from ._sdk_options import SpawnKey, SpawnSpec

log = logging.getLogger("clawrap.processes")

PROCESS_MB = 230  # resident memory of one CLI process
SET_MODEL_TIMEOUT = 10.0  # may validate the model with a tiny upstream call
RETRY_BACKOFF = 5.0  # after a failed warm spawn
MAX_RECENT_KEYS = 8
EXTRA_IDLE_EXPIRY = 60.0  # idle processes beyond a key's target go sooner

State = Literal["idle", "midturn", "broken"]


@dataclass(slots=True)
class _Starting:
    key: SpawnKey
    done: trio.Event
    claimed: bool = False


@dataclass(slots=True)
class _KeyInfo:
    spec: SpawnSpec
    hits: int
    last_seen: float


class ProcessPool:
    """Processes by spawn key. See the module docstring for the policy.

    Without :meth:`start` nothing is warmed ahead of time and resets run in the
    releasing task; with it, a background task does both.
    """

    def __init__(self, settings: Settings, default_spec: SpawnSpec | None = None) -> None:
        self.settings = settings
        self.capacity = max(1, min(settings.pool_max, settings.pool_memory_mb // PROCESS_MB))
        self._default = default_spec.without_resume() if default_spec else None
        self._idle: dict[SpawnKey, list[CliProcess]] = {}
        # Conversation key -> the process holding that conversation, oldest first.
        self._parked: OrderedDict[str, CliProcess] = OrderedDict()
        self.parked_limit = max(0, min(settings.pool_parked, self.capacity))
        self._busy: set[CliProcess] = set()
        self._recycling = 0
        self._starting: list[_Starting] = []
        self._cold_starting = 0
        self._recent: OrderedDict[SpawnKey, _KeyInfo] = OrderedDict()
        self._nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()
        self._wake = trio.Event()
        self._changed = trio.Event()
        self._backoff_until = 0.0
        self._closed = False
        self.spawned = self.recycled = self.failed = self.continued = 0

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
        with trio.CancelScope(shield=True):
            idle = [p for ps in self._idle.values() for p in ps] + list(self._parked.values())
            busy = list(self._busy)
            self._idle.clear()
            self._parked.clear()
            self._busy.clear()
            async with trio.open_nursery() as nursery:
                for proc in idle:
                    nursery.start_soon(proc.close)
                for proc in busy:
                    nursery.start_soon(partial(proc.close, force=True))
        self._notify()

    # -- accounting

    def _idle_count(self, key: SpawnKey | None = None) -> int:
        if key is not None:
            return len(self._idle.get(key, ()))
        return sum(len(ps) for ps in self._idle.values())

    def _total(self) -> int:
        return (
            self._idle_count()
            + len(self._parked)
            + len(self._busy)
            + self._recycling
            + len(self._starting)
            + self._cold_starting
        )

    def status(self) -> dict[str, Any]:
        return {
            "warm": self._idle_count(),
            "parked": len(self._parked),
            "busy": len(self._busy) + self._recycling,
            "starting": len(self._starting) + self._cold_starting,
            "spawned": self.spawned,
            "recycled": self.recycled,
            "continued": self.continued,
            "failed": self.failed,
            "max": self.capacity,
        }

    def idle_processes(self) -> list[CliProcess]:
        return [p for ps in self._idle.values() for p in ps]

    def pids(self) -> set[int]:
        """Pids of the processes the pool holds (idle, parked and busy)."""
        procs = [p for ps in self._idle.values() for p in ps] + list(self._busy)
        procs += self._parked.values()
        return {p.pid for p in procs if p.pid is not None}

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _wake_maintainer(self) -> None:
        self._wake.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; it is checked whenever the pool changes."""
        while not predicate():
            await self._changed.wait()

    async def wait_warm(self, count: int | None = None) -> None:
        """Wait until ``count`` (default ``pool_size``) default-key processes are warm."""
        want = self.settings.pool_size if count is None else count
        key = self._default.key if self._default else None
        await self.wait_for(lambda: key is not None and self._idle_count(key) >= want)

    def _target(self, key: SpawnKey) -> int:
        """How many idle processes to keep for ``key``."""
        size = self.settings.pool_size
        if size <= 0:
            return 0
        if self._default is not None and key == self._default.key:
            return size
        info = self._recent.get(key)
        if info is None:
            return 0
        # A key seen once keeps the process it used; seen again, it gets a full set.
        return size if info.hits >= 2 else 1

    def _note(self, spec: SpawnSpec) -> None:
        if self._default is not None and spec.key == self._default.key:
            return
        info = self._recent.pop(spec.key, None)
        now = trio.current_time()
        if info is None:
            info = _KeyInfo(spec.without_resume(), 0, now)
        info.hits += 1
        info.last_seen = now
        self._recent[spec.key] = info
        while len(self._recent) > MAX_RECENT_KEYS:
            self._recent.popitem(last=False)

    # -- acquire and release

    async def acquire(self, spec: SpawnSpec, *, fresh: bool = False) -> CliProcess:
        """A process for ``spec``, busy until :meth:`release`. Raises ClawrapError.

        ``fresh`` skips warm processes (used to retry after a reused one failed).
        """
        if self._closed:
            raise ClawrapError("overloaded", "The server is shutting down.")
        self._note(spec)
        if spec.resume is None and not fresh:
            proc = await self._take_warm(spec) or await self._reclaim(spec)
            if proc is not None:
                return proc
        await self._make_room()
        self._cold_starting += 1
        try:
            proc = await spawn_process(spec, start_timeout=self.settings.cli_start_timeout)
        except BaseException:
            self.failed += 1
            raise
        finally:
            self._cold_starting -= 1
            self._notify()
        self.spawned += 1
        self._busy.add(proc)
        self._wake_maintainer()
        return proc

    async def _take_warm(self, spec: SpawnSpec) -> CliProcess | None:
        for _ in range(2):
            while self._idle.get(spec.key):
                ps = self._idle[spec.key]
                same = [p for p in ps if p.model == spec.model]
                proc = same[-1] if same else ps[-1]
                ps.remove(proc)
                if not proc.alive:
                    self.failed += 1
                    await proc.close()
                    continue
                self._busy.add(proc)
                self._notify()
                self._wake_maintainer()
                if await self._hand_out(proc, spec) is None:
                    continue
                return proc
            slot = next((s for s in self._starting if s.key == spec.key and not s.claimed), None)
            if slot is None:
                return None
            # A warm spawn for this key is under way: it started earlier than a cold one would.
            slot.claimed = True
            try:
                await slot.done.wait()
            finally:
                slot.claimed = False
        return None

    async def _reclaim(self, spec: SpawnSpec) -> CliProcess | None:
        """With no room for a cold start, the oldest parked process of ``spec``'s key, reset."""
        if self._total() < self.capacity:
            return None
        found = next((k for k, p in self._parked.items() if p.key == spec.key), None)
        if found is None:
            return None
        proc = self._parked.pop(found)
        self._busy.add(proc)
        self._notify()
        try:
            cleared = await proc.reset() and proc.alive
        except BaseException:
            self._busy.discard(proc)
            await proc.close()
            raise
        if not cleared:
            self._busy.discard(proc)
            await proc.close()
            self._notify()
            return None
        return await self._hand_out(proc, spec)

    async def _hand_out(self, proc: CliProcess, spec: SpawnSpec) -> CliProcess | None:
        """``proc`` (already counted busy) on ``spec``'s model, or None (closed) if it cannot."""
        proc.reused = True
        try:
            with map_exceptions("run"), trio.fail_after(SET_MODEL_TIMEOUT):
                await proc.set_model(spec.model)
        except BaseException as exc:
            self._busy.discard(proc)
            await proc.close()
            self._notify()
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
        if self._closed or self.parked_limit == 0 or not proc.alive or proc.in_turn:
            await self.release(proc, "idle")
            return
        self._busy.discard(proc)
        proc.idle_since = trio.current_time()
        # The same conversation twice (a client that sent one request twice): keep the newer.
        evicted = [p for p in [self._parked.pop(conversation, None)] if p is not None]
        self._parked[conversation] = proc
        while len(self._parked) > self.parked_limit:
            evicted.append(self._parked.popitem(last=False)[1])
        self._notify()
        for old in evicted:
            # Reset into the idle set (or closed), in the background when there is one.
            self._busy.add(old)
            await self.release(old, "idle")

    async def take_parked(self, spec: SpawnSpec, conversation: str) -> CliProcess | None:
        """The parked process holding ``conversation`` if its spawn key is ``spec``'s, now busy
        and on ``spec``'s model; None when there is none (or it died)."""
        proc = self._parked.get(conversation)
        if proc is None or proc.key != spec.key or self._closed:
            return None
        del self._parked[conversation]
        self._note(spec)
        if not proc.alive:
            self.failed += 1
            await proc.close()
            self._notify()
            return None
        self._busy.add(proc)
        self._notify()
        self._wake_maintainer()
        taken = await self._hand_out(proc, spec)
        if taken is not None:
            self.continued += 1
        return taken

    async def _make_room(self) -> None:
        while self._total() >= self.capacity:
            victim = self._parked.popitem(last=False)[1] if self._parked else self._oldest_idle()
            if victim is not None:
                await victim.close()
                self._notify()
            else:
                await self._changed.wait()

    def _oldest_idle(self) -> CliProcess | None:
        procs = [p for ps in self._idle.values() for p in ps]
        if not procs:
            return None
        victim = min(procs, key=lambda p: p.idle_since)
        self._idle[victim.key].remove(victim)
        return victim

    async def release(self, proc: CliProcess, state: State) -> None:
        """Give ``proc`` back. ``state``: "idle" after a complete turn, "midturn"
        when the turn was abandoned, "broken" when the process misbehaved.

        Call under a shield. With a background nursery this returns at once.
        """
        self._busy.discard(proc)
        self._recycling += 1
        if self._nursery is not None and not self._closed:
            try:
                self._nursery.start_soon(self._recycle, proc, state)
                return
            except RuntimeError:  # the nursery is closing
                pass
        with trio.CancelScope(shield=True):
            await self._recycle(proc, state)

    def _wants(self, key: SpawnKey) -> bool:
        # Extras beyond the key's target are kept (up to capacity) and trimmed by
        # expiry later: closing one now would only make the warmer spawn another.
        return not self._closed and self._target(key) > 0 and self._total() <= self.capacity

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
                self._idle.setdefault(proc.key, []).append(proc)
                self.recycled += 1
            else:
                await proc.close()  # shielded, never raises
            self._recycling -= 1
            self._notify()
            self._wake_maintainer()

    # -- the background task

    async def _maintain(self) -> None:
        interval = max(0.5, min(5.0, self.settings.pool_idle_expiry / 2))
        while True:
            with trio.move_on_after(interval):
                await self._wake.wait()
            self._wake = trio.Event()
            await self._expire()
            spec = self._deficit()
            if spec is not None and trio.current_time() >= self._backoff_until:
                await self._warm_one(spec)
                self._wake_maintainer()  # look again right away

    async def _expire(self) -> None:
        now = trio.current_time()
        expiry = self.settings.pool_idle_expiry
        for key in [k for k, i in self._recent.items() if now - i.last_seen > expiry]:
            del self._recent[key]
        for conversation, proc in list(self._parked.items()):
            if now - proc.idle_since > expiry or not proc.alive:
                del self._parked[conversation]
                if not proc.alive:
                    self.failed += 1
                await proc.close()
                self._notify()
        for key, ps in list(self._idle.items()):
            target = self._target(key)
            # Newest first: requests take the newest, so extras are the oldest.
            ranked = sorted(ps, key=lambda p: p.idle_since, reverse=True)
            for rank, proc in enumerate(ranked):
                idle = now - proc.idle_since
                limit = expiry if rank < target else min(expiry, EXTRA_IDLE_EXPIRY)
                if idle > limit or not proc.alive:
                    ps.remove(proc)
                    if not proc.alive:
                        self.failed += 1
                    await proc.close()
                    self._notify()

    def _deficit(self) -> SpawnSpec | None:
        """The spec of the most wanted key that lacks warm processes, if any."""
        if self._closed or self._total() >= self.capacity:
            return None
        wanted = [self._default] if self._default else []
        wanted += [i.spec for i in reversed(self._recent.values())]
        for spec in wanted:
            starting = sum(1 for s in self._starting if s.key == spec.key)
            if self._idle_count(spec.key) + starting < self._target(spec.key):
                return spec
        return None

    async def _warm_one(self, spec: SpawnSpec) -> None:
        slot = _Starting(spec.key, trio.Event())
        self._starting.append(slot)
        self._notify()
        try:
            proc = await spawn_process(spec, start_timeout=self.settings.cli_start_timeout)
        except ClawrapError:
            self.failed += 1
            self._backoff_until = trio.current_time() + RETRY_BACKOFF
            log.warning("warming a CLI process failed; retrying in %.0f s", RETRY_BACKOFF)
            return
        finally:
            self._starting.remove(slot)
            slot.done.set()
            self._notify()
        self.spawned += 1
        if self._closed:
            await proc.close()
            return
        self._idle.setdefault(spec.key, []).append(proc)
        self._notify()


__all__ = ["CliProcess", "ProcessPool", "State", "spawn_process"]
