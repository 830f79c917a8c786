"""The values the session store takes and hands out: ids, session records, resolutions.

:class:`Resolution` is a request matched against its stored conversation, between
:meth:`~clawrap.sessions._store.SessionStore.resolve` and
:meth:`~clawrap.sessions._store.SessionStore.commit`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from clawrap.core._request import CompletionRequest, Turn
from clawrap.core._session_ids import check_session_id
from clawrap.protocol._conversation import Merge


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One stored conversation (a session or a branch of one), without its turns."""

    id: str
    root: str  # the session a branch was made from (itself, for a session)
    parent: str | None  # the conversation a branch left, and after how many turns
    fork_turn: int | None
    created: float  # Unix times
    last_used: float
    model: str | None
    system: str | None
    turns: int
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    cost_usd: float
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Session:
    info: SessionInfo
    turns: tuple[Turn, ...]


@dataclass(frozen=True, slots=True)
class SessionStats:
    sessions: int
    branches: int
    turns: int
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    cost_usd: float
    ttl: float
    db_bytes: int


@dataclass(frozen=True, slots=True)
class Resolution:
    """A request matched against its session, before the run.

    ``session_id``: where the conversation will be stored (send it back as
    ``X-Session-Id``); it differs from ``requested`` when the request forked or
    continued another branch. ``source``: the stored conversation merged with
    (None for a new session).
    """

    requested: str
    session_id: str
    merge: Merge
    source: SessionInfo | None

    @property
    def branched(self) -> bool:
        return self.session_id != self.requested

    def request(self, request: CompletionRequest) -> CompletionRequest:
        """``request`` with the whole conversation, and the session's system prompt if it
        has none of its own."""
        system = request.system
        if system is None and self.source is not None:
            system = self.source.system
        return dataclasses.replace(
            request, turns=self.merge.conversation, system=system, session_id=self.session_id
        )


__all__ = ["Resolution", "Session", "SessionInfo", "SessionStats", "check_session_id"]
