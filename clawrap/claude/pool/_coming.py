"""CLI processes on their way to the pool's idle set, and the requests waiting for them.

Two kinds: warm starts under way (:meth:`ComingProcesses.starting`), and released
processes being reset (:meth:`ComingProcesses.resetting`). A request that finds no
idle process waits for one of these rather than starting its own: a warm start
began earlier than a cold one would, and a reset takes milliseconds against a cold
start's hundreds. Each is claimed by at most one waiting request. This module only
keeps the bookkeeping; the pool (:mod:`clawrap.claude.pool._pool`) decides.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import trio

from clawrap.claude._cli_process import CliProcess
from clawrap.claude._sdk_options import SpawnKey


@dataclass(slots=True)
class Starting:
    """A warm start under way."""

    key: SpawnKey
    model: str
    done: trio.Event
    claimed: bool = False


class ComingProcesses:
    """Warm starts under way and processes being reset, by spawn key and model.

    ``wait_for`` is the pool's: it waits until a predicate holds, checked whenever
    the pool changes (the end of a reset is such a change).
    """

    def __init__(
        self,
        wait_for: Callable[[Callable[[], bool]], Awaitable[None]],
        changed: Callable[[], None],
    ) -> None:
        self._wait_for = wait_for
        self._changed = changed
        self._starting: list[Starting] = []
        self._resetting: set[CliProcess] = set()
        self._awaited: set[CliProcess] = set()  # being reset, with a request waiting for it

    @contextmanager
    def starting(self, key: SpawnKey, model: str) -> Iterator[None]:
        """Count a warm start of ``key`` on ``model`` for the whole block."""
        slot = Starting(key, model, trio.Event())
        self._starting.append(slot)
        try:
            yield
        finally:
            self._starting.remove(slot)
            slot.done.set()

    def resetting(self, proc: CliProcess) -> None:
        """``proc`` was released and is being reset (or closed)."""
        self._resetting.add(proc)

    def reset_done(self, proc: CliProcess) -> None:
        """``proc`` is idle again, or gone; the caller tells the pool it changed."""
        self._resetting.discard(proc)

    @property
    def resetting_count(self) -> int:
        return len(self._resetting)

    def resetting_processes(self) -> tuple[CliProcess, ...]:
        return tuple(self._resetting)

    def starts(self) -> tuple[Starting, ...]:
        return tuple(self._starting)

    async def wait_for_one(self, key: SpawnKey, model: str | None) -> bool:
        """Wait for a process of ``key`` (on ``model``, unless None) that no other
        request waits for: a warm start first, else one being reset. False if there
        is none; True once it arrived (another request may still take it first)."""
        slot = next(
            (
                s
                for s in self._starting
                if s.key == key and not s.claimed and model in (None, s.model)
            ),
            None,
        )
        if slot is not None:
            slot.claimed = True
            try:
                await slot.done.wait()
            finally:
                slot.claimed = False
            return True
        proc = next(
            (
                p
                for p in self._resetting
                if p.key == key and p not in self._awaited and model in (None, p.model)
            ),
            None,
        )
        if proc is None:
            return False
        self._awaited.add(proc)
        self._changed()
        try:
            await self._wait_for(lambda: proc not in self._resetting)
        finally:
            self._awaited.discard(proc)
        return True


__all__ = ["ComingProcesses", "Starting"]
