"""The one interface between the HTTP side and whatever produces completions.

A backend runs a :class:`~clawrap.core._request.CompletionRequest` and pushes
:mod:`clawrap.core._events` into an :class:`EventSink` (in the server, the send side of
a trio memory channel). The caller owns the channel and closes it; the backend never does.
The types here are structural, so that this layer needs no I/O library.

Stopping early comes in two strengths:

- ``halt`` is set when the consumer wants no more content (a stop sequence or
  ``max_tokens`` was reached, or a tool call ended the reply). The backend
  interrupts the upstream turn promptly, sends a :class:`~clawrap.core._events.Usage`
  if the SDK reports one within a short grace, and returns. Content it sends
  after ``halt`` is discarded by the caller.
- Cancellation (client gone, deadline, idle limit): the backend stops at once and
  leaves no process behind; cleanup that must finish runs under a shield.

Failures are raised as :class:`~clawrap.core._errors.ClawrapError` only.
"""

from __future__ import annotations

from typing import Any, Protocol

from clawrap.core._events import Event
from clawrap.core._request import CompletionRequest


class EventSink(Protocol):
    """Where a backend sends its events (``trio.MemorySendChannel[Event]`` fits)."""

    async def send(self, value: Event, /) -> None: ...


class HaltSignal(Protocol):
    """Set when the consumer wants no more content (``trio.Event`` fits)."""

    def is_set(self) -> bool: ...

    async def wait(self) -> None: ...


class Backend(Protocol):
    async def run(
        self,
        request: CompletionRequest,
        events: EventSink,
        halt: HaltSignal,
    ) -> None:
        """Run ``request``, sending its events. Raises ClawrapError on failure."""
        ...

    async def aclose(self) -> None:
        """Stop everything this backend started (processes included)."""
        ...

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot for status routes (process counts and the like)."""
        ...


__all__ = ["Backend", "EventSink", "HaltSignal"]
