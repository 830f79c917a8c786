"""The one interface between the HTTP side and whatever produces completions.

A backend runs a :class:`~clawrap.core._request.CompletionRequest` and pushes
:mod:`clawrap.core._events` into an :class:`EventSink` (in the server, the send side of
a trio memory channel). The caller owns the channel and closes it; the backend never does.
The types here are structural, so that this layer needs no I/O library.

Stopping early comes in two strengths:

- ``halt`` is set when the consumer wants no more content (a stop sequence or
  ``max_tokens`` was reached, or a tool call ended the reply). The backend
  interrupts the upstream turn promptly, sends a :class:`~clawrap.core._events.Usage`
  if the SDK reports one within :data:`HALT_GRACE`, and returns (cleanup that must
  finish runs under a shield). Content it sends after ``halt`` is discarded by the
  caller, which cancels a backend still running :data:`HALT_GRACE` plus a margin
  after ``halt``: the grace is the backend's to use, the cancel only a backstop.
- Cancellation (client gone, deadline, idle limit): the backend stops at once and
  leaves no process behind; cleanup that must finish runs under a shield.

Failures are raised as :class:`~clawrap.core._errors.ClawrapError` only; anything else
is a bug, answered with a 500 ``internal_error`` and a logged traceback.

What a backend offers beyond running requests is declared here as small
protocols, checked with ``isinstance`` (they are ``runtime_checkable``): the
HTTP side never probes a backend for attributes.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from clawrap.core._events import Event
from clawrap.core._request import CompletionRequest

HALT_GRACE = 2.0  # after halt, how long a backend waits for the turn's usage


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


@runtime_checkable
class KeepsSessionState(Protocol):
    """A backend that keeps something per session (agent mode's working directories)."""

    def sessions_removed(self, session_ids: list[str]) -> None:
        """These sessions were deleted or expired: drop what is kept for them."""
        ...


@runtime_checkable
class OffersAgentTools(Protocol):
    """A backend with an agent mode: it says which tools a run may be given."""

    def agent_tools(self) -> dict[str, Any]:
        """The body of ``GET /v1/tools``."""
        ...


@runtime_checkable
class ListsModels(Protocol):
    """A backend that can ask its upstream which models exist (a live ``GET /v1/models``)."""

    async def model_list(self, *, refresh: bool = False) -> list[dict[str, Any]] | None:
        """The upstream's models as catalogue entries, or None when it cannot tell."""
        ...


@runtime_checkable
class RunsMcpServers(Protocol):
    """A backend that starts the operator's MCP servers and learns their status."""

    def mcp_servers(self) -> list[dict[str, Any]]:
        """Each configured server's public view with its last reported status, for
        ``GET /v1/mcp/servers``."""
        ...


__all__ = [
    "HALT_GRACE",
    "Backend",
    "EventSink",
    "HaltSignal",
    "KeepsSessionState",
    "ListsModels",
    "OffersAgentTools",
    "RunsMcpServers",
]
