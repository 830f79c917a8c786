"""Sessions while the server runs: one request per session at a time, and expiry.

Two requests on one session are served one after the other
(:class:`SessionLocks`): a client may send its next message the moment the
previous answer ends, before that answer is stored, and an IDE that sends twice
gets two answers in order. Waiting is bounded; past it, a 409.
:func:`run_expiry` deletes sessions idle longer than the TTL, now and then.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import trio

from clawrap.core._errors import ClawrapError

log = logging.getLogger("clawrap.sessions")


class SessionLocks:
    """One request at a time per session id; the others wait their turn, in order."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[trio.Lock, list[int]]] = {}

    def busy(self, session_id: str) -> bool:
        entry = self._locks.get(session_id)
        return entry is not None and entry[0].locked()

    @asynccontextmanager
    async def hold(self, session_id: str, *, wait: float) -> AsyncIterator[None]:
        """Hold ``session_id`` for the block. Raises a 409 (``session_busy``) after
        waiting ``wait`` seconds for the request ahead."""
        lock, users = self._locks.setdefault(session_id, (trio.Lock(), [0]))
        users[0] += 1
        try:
            try:
                lock.acquire_nowait()  # free and nobody queued: no wait, even with wait=0
            except trio.WouldBlock:
                with trio.move_on_after(wait):
                    await lock.acquire()
            if lock.statistics().owner is not trio.lowlevel.current_task():
                raise ClawrapError(
                    "conflict",
                    "Another request on this session is still running; retry when it ends.",
                    code="session_busy",
                    retry_after=1.0,
                )
            try:
                yield
            finally:
                lock.release()
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[session_id]


class Expiring(Protocol):
    """What :func:`run_expiry` needs of a store: its TTL and a way to drop what is past it."""

    @property
    def ttl(self) -> float: ...

    async def expire(self) -> int: ...


async def run_expiry(
    store: Expiring,
    *,
    interval: float | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Delete expired sessions now and then, forever (run it in the server's nursery).

    ``interval`` defaults to a tenth of the TTL, between 1 s and 60 s. Failures
    are logged and retried at the next round.
    """
    if interval is None:
        interval = min(max(store.ttl / 10, 1.0), 60.0)
    task_status.started()
    if store.ttl <= 0:
        await trio.sleep_forever()
    while True:
        try:
            removed = await store.expire()
        except ClawrapError:
            log.warning("expiring sessions failed; retrying in %.0f s", interval)
        else:
            if removed:
                log.info("expired %d idle session(s)", removed)
        await trio.sleep(interval)


__all__ = ["Expiring", "SessionLocks", "run_expiry"]
