"""An exchange's part in its session: lock, resolve, record the reply, commit.

A request naming a session (``session_id``) first takes that session's lock
(one request per session at a time; a bounded wait, then a 409), then merges
its turns with the stored ones (:meth:`~clawrap.sessions._store.SessionStore.resolve`)
and runs the whole conversation. The reply the client received (after stop
sequences, limits and fence stripping) is stored before the response ends, so
the client's next message finds it; ``X-Session-Id`` in the response headers
says where the conversation lives (another id when it branched).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event
from clawrap.core._request import CompletionRequest
from clawrap.http._asgi import Message
from clawrap.protocol._conversation import ReplyRecorder
from clawrap.sessions._store import Resolution, SessionLocks, SessionStore

logger = logging.getLogger("clawrap.exchange")

# Bound on storing a session's reply (a local SQLite write, normally a few ms).
COMMIT_LIMIT = 10.0


@dataclass(slots=True)
class Sessions:
    """The session store and the per-session locks that every exchange of one server shares."""

    store: SessionStore
    locks: SessionLocks = field(default_factory=SessionLocks)


def sessions_unavailable() -> ClawrapError:
    """A request named a session on a server without a session store."""
    return ClawrapError(
        "api_error",
        "Sessions are not available on this server.",
        status=501,
        code="sessions_unavailable",
    )


class SessionTurn:
    """One exchange's turn in its session, from taking the lock to storing the reply."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.resolution: Resolution | None = None
        self.session_id: str | None = None  # sent back as X-Session-Id
        self.recorder: ReplyRecorder | None = None

    @asynccontextmanager
    async def hold(
        self, request: CompletionRequest, *, wait: float
    ) -> AsyncIterator[CompletionRequest]:
        """Hold the session named by ``request`` for the block; yield the request with the
        whole conversation. Raises the lock's 409 or the store's errors."""
        session_id = request.session_id
        assert session_id is not None
        async with self.sessions.locks.hold(session_id, wait=wait):
            self.resolution = await self.sessions.store.resolve(session_id, request.turns)
            self.session_id = self.resolution.session_id
            self.recorder = ReplyRecorder()
            yield self.resolution.request(request)

    def feed(self, event: Event) -> None:
        """An event of the reply as the client receives it."""
        if self.recorder is not None:
            self.recorder.feed(event)

    def with_header(self, message: Message) -> Message:
        """``message`` with ``X-Session-Id`` added when it starts the response."""
        if message.get("type") == "http.response.start" and self.session_id is not None:
            header = (b"x-session-id", self.session_id.encode("ascii"))
            message = {**message, "headers": [*message.get("headers", []), header]}
        return message

    async def commit(self, request: CompletionRequest, *, headers_sent: bool) -> None:
        """Store the session's new turns and the reply as the client received it."""
        resolution, recorder = self.resolution, self.recorder
        if resolution is None or recorder is None:
            return
        # Shielded: a client that leaves as the reply ends must not leave the session behind.
        with trio.move_on_after(COMMIT_LIMIT) as scope:
            scope.shield = True
            try:
                stored = await self.sessions.store.commit(
                    resolution,
                    recorder.turn(),
                    model=request.model,
                    usage=recorder.usage,
                    system=request.system,
                )
            except ClawrapError:
                # The client still gets its answer; the store logged the details.
                logger.error("session %s: the reply was not stored", resolution.session_id)
                return
            if not headers_sent:
                self.session_id = stored
        if scope.cancelled_caught:
            logger.error("session %s: storing the reply timed out", resolution.session_id)


__all__ = ["COMMIT_LIMIT", "SessionTurn", "Sessions", "sessions_unavailable"]
