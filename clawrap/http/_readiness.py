"""``GET /health`` for a load balancer: ready only while every store's database answers.

One ``SELECT 1`` to each distinct database the server's stores use (a SQLite file
each, or the one PostgreSQL several instances share), all of it bounded by
:data:`READY_LIMIT`: an unreachable or stuck database makes the answer a 503 in at
most that long, never a hang. The body names no server or file (the route is open
to anyone); the log has the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import trio

from clawrap.storage._database import Database, DatabaseError

logger = logging.getLogger("clawrap.health")

READY_LIMIT = 2.0  # seconds the store checks of one /health may take, in all


async def store_readiness(databases: Iterable[Database]) -> tuple[int, dict[str, Any]]:
    """200 ``{"status": "ok"}`` when each database answers in time, else 503."""
    distinct: list[Database] = []
    for db in databases:
        if all(db is not d for d in distinct):
            distinct.append(db)
    reason: str | None = None
    with trio.move_on_after(READY_LIMIT) as bound:
        for db in distinct:
            try:
                await db.ping()
            except DatabaseError as exc:
                logger.warning("not ready: the database %s", exc)
                reason = "store_unreachable"
                break
    if bound.cancelled_caught:
        logger.warning("not ready: no answer from the database within %g s", READY_LIMIT)
        reason = "store_timeout"
    if reason is not None:
        return 503, {"status": "unavailable", "reason": reason}
    return 200, {"status": "ok"}


Probe = Callable[[], list[Database]]

__all__ = ["READY_LIMIT", "Probe", "store_readiness"]
