"""A backend that replays a script, for fast tests of the HTTP layer.

The script is a sequence of events and pauses: an event is sent as it is, a
number is a pause of that many seconds. After the script the backend may hang
forever (``hang=True``) or raise ``error``; ``error_first=True`` raises before
any event. It honours ``halt`` like a real backend (stops sending content, sends
the script's next :class:`~clawrap.core._events.Usage` if there is one, returns)
unless ``ignore_halt`` is set, and records what happened to it: runs started,
runs active at once, runs cancelled, runs that saw ``halt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from clawrap.core._backend import EventSink, HaltSignal
from clawrap.core._events import Event, Usage
from clawrap.core._request import CompletionRequest

Step = Event | float


class ScriptedBackend:
    def __init__(
        self,
        script: Sequence[Step] = (),
        *,
        hang: bool = False,
        error: BaseException | None = None,
        error_first: bool = False,
        ignore_halt: bool = False,
    ) -> None:
        self.script = tuple(script)
        self.hang = hang
        self.error = error
        self.error_first = error_first
        self.ignore_halt = ignore_halt
        self.requests: list[CompletionRequest] = []
        self.runs = 0
        self.active = 0
        self.max_active = 0
        self.completed = 0
        self.cancelled = 0
        self.halted = 0
        self.closed = False
        # Woken whenever a run starts or ends, so tests can wait for a state without sleeping.
        self._changed = trio.Event()

    async def wait_until(self, predicate: Any) -> None:
        """Wait until ``predicate(self)`` is true (checked whenever a run starts or ends)."""
        while not predicate(self):
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def run(
        self,
        request: CompletionRequest,
        events: EventSink,
        halt: HaltSignal,
    ) -> None:
        self.requests.append(request)
        self.runs += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self._notify()
        try:
            await self._play(events, halt)
            self.completed += 1
        except trio.Cancelled:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1
            self._notify()

    async def _play(self, events: EventSink, halt: HaltSignal) -> None:
        if self.error_first and self.error is not None:
            await trio.lowlevel.checkpoint()
            raise self.error
        for i, step in enumerate(self.script):
            if halt.is_set() and not self.ignore_halt:
                await self._on_halt(events, self.script[i:])
                return
            if isinstance(step, (int, float)):
                with trio.move_on_after(step):
                    if self.ignore_halt:
                        await trio.sleep_forever()
                    else:
                        await halt.wait()
            else:
                await events.send(step)
                await trio.lowlevel.checkpoint()
        if halt.is_set() and not self.ignore_halt:
            self.halted += 1
            return
        if self.hang:
            if self.ignore_halt:
                await trio.sleep_forever()
            await halt.wait()
            self.halted += 1
            return
        if self.error is not None:
            raise self.error

    async def _on_halt(self, events: EventSink, rest: Sequence[Step]) -> None:
        self.halted += 1
        usage = next((s for s in rest if isinstance(s, Usage)), None)
        if usage is not None:
            await events.send(usage)

    async def aclose(self) -> None:
        self.closed = True

    def status(self) -> dict[str, Any]:
        return {
            "backend": "scripted",
            "runs": self.runs,
            "active": self.active,
            "max_active": self.max_active,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "halted": self.halted,
        }


__all__ = ["ScriptedBackend", "Step"]
