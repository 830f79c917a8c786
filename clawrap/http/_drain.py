"""Draining: stop taking work, let running requests finish, then let the server stop.

On the first SIGTERM (or SIGINT) the server drains before it stops listening:
``GET /health`` answers 503 ``{"status": "draining"}`` so a balancer stops sending,
new completion requests (Chat Completions, Messages, Responses, the deep health
check) are refused with a 503 and ``retry-after`` in their own protocol's error
shape, and requests already running go on. A Responses WebSocket is closed
(1001, going away) once its running response is over, and a new one is refused
at the handshake with the same 503. Once none is left,
or ``CLAWRAP_DRAIN_SECONDS`` have passed, or a second signal came, the server
shuts down: running streams end at once with an error event
(``server_shutting_down``) and their terminator, and the backend stops every CLI
process.

:class:`Drain` counts the requests in progress and holds the two moments.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from clawrap.core._errors import ClawrapError

# A refused client is told to retry after this long (another instance will take it).
DRAIN_RETRY_AFTER = 1.0
# The routes that start work; everything else (health, listings, stored data) is served.
WORK_ROUTES = frozenset(
    {
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/messages"),
        ("POST", "/v1/responses"),
        ("GET", "/healthz/deep"),
    }
)


def draining_error() -> ClawrapError:
    return ClawrapError(
        "overloaded",
        "The server is draining before it stops and takes no new requests; retry (another "
        "instance will answer).",
        status=503,
        code="server_draining",
        retry_after=DRAIN_RETRY_AFTER,
    )


class Drain:
    """Requests in progress, and whether the server is draining."""

    def __init__(self) -> None:
        self.draining = trio.Event()
        self.active = 0
        self._idle = trio.Event()
        self._idle.set()
        self._skip = trio.Event()

    @contextmanager
    def work(self) -> Iterator[None]:
        """Count one request (or WebSocket connection) as in progress while inside."""
        if self.active == 0:
            self._idle = trio.Event()
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            if self.active == 0:
                self._idle.set()

    def begin(self) -> None:
        self.draining.set()

    def skip(self) -> None:
        """End the drain now (a second signal): running requests are ended."""
        self._skip.set()

    async def wait(self, limit: float) -> bool:
        """Until nothing but this server's own waiting is in progress, ``limit`` seconds
        pass or :meth:`skip`. True when everything finished."""
        with trio.move_on_after(limit):
            async with trio.open_nursery() as nursery:

                async def skipped() -> None:
                    await self._skip.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(skipped)
                await self._idle.wait()
                nursery.cancel_scope.cancel()
        return self.active == 0


__all__ = ["DRAIN_RETRY_AFTER", "WORK_ROUTES", "Drain", "draining_error"]
