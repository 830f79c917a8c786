"""The one interface between the HTTP side and whatever produces completions.

A backend runs a :class:`~clawrap._request.CompletionRequest` and pushes
:mod:`clawrap._events` into a trio channel. It closes nothing it was not given:
the caller owns the channel and closes it. On cancellation (client gone,
deadline, stop sequence reached) a backend must stop its upstream work promptly
and leave no process behind; cleanup that must finish runs under a shield.
Failures are raised as :class:`~clawrap._errors.ClawrapError` only.
"""

from __future__ import annotations

from typing import Any, Protocol

import trio

from ._events import Event
from ._request import CompletionRequest


class Backend(Protocol):
    async def run(self, request: CompletionRequest, events: trio.MemorySendChannel[Event]) -> None:
        """Run ``request``, sending its events. Raises ClawrapError on failure."""
        ...

    async def aclose(self) -> None:
        """Stop everything this backend started (processes included)."""
        ...

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot for status routes (process counts and the like)."""
        ...


__all__ = ["Backend"]
