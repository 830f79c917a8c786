"""hypercorn's trio worker with a bound on open connections.

hypercorn accepts every connection and calls the app only once a request's
headers are in, so the app cannot bound what slow or idle clients hold open
(each costs a file descriptor). :func:`serve_bounded` is
``hypercorn.trio.serve`` for plain TCP listeners (all clawrap binds) with one
difference: at most ``max_connections`` are served at once; one more is
answered ``503`` with ``Connection: close`` at once and closed, so a client
sees why instead of a reset.

It is built from hypercorn's own pieces (the lifespan handler, the worker
context and the per-connection ``TCPServer``), in the order its
``worker_serve`` uses them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain\r\nretry-after: 1\r\nconnection: close\r\n"
    b"content-length: 53\r\n\r\n"
    b"Too many open connections (CLAWRAP_MAX_CONNECTIONS).\n"
)
REFUSAL_WRITE_LIMIT = 1.0


class _Counted:
    """A connection's stream that gives its slot back when it is closed.

    hypercorn's per-connection task, and its end of a connection the client closed,
    linger until the connection's keep-alive timer ends (up to the header timeout): the
    slot is given back as soon as either side has closed.
    """

    def __init__(self, stream: Any, slots: trio.Semaphore) -> None:
        self._stream = stream
        self._slots = slots
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            data: bytes = await self._stream.receive_some(max_bytes)
        except BaseException:
            self.release()
            raise
        if not data:
            # The client has gone; hypercorn closes its end only when the connection's
            # keep-alive timer ends (up to the header timeout).
            self.release()
        return data

    async def aclose(self) -> None:
        self.release()
        await self._stream.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


async def serve_bounded(
    app: Any,
    config: Any,
    max_connections: int,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` like ``hypercorn.trio.serve`` until ``shutdown_trigger`` returns."""
    from hypercorn.trio.lifespan import Lifespan
    from hypercorn.trio.statsd import StatsdLogger
    from hypercorn.trio.tcp_server import TCPServer
    from hypercorn.trio.worker_context import WorkerContext
    from hypercorn.typing import ConnectionState
    from hypercorn.utils import ShutdownError, raise_shutdown, repr_socket_addr, wrap_app

    config.set_statsd_logger_class(StatsdLogger)
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    state: dict[str, Any] = {}
    lifespan = Lifespan(wrapped, config, state)
    context = WorkerContext(None)
    slots = trio.Semaphore(max_connections)

    async def connection(stream: Any) -> None:  # a trio.SocketStream
        try:
            slots.acquire_nowait()
        except trio.WouldBlock:
            with (
                trio.move_on_after(REFUSAL_WRITE_LIMIT),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await stream.send_all(REFUSAL)
            await stream.aclose()
            return
        counted = _Counted(stream, slots)
        try:
            counted_stream: Any = counted  # hypercorn types it as an SSLStream
            await TCPServer(wrapped, config, context, ConnectionState(state.copy()), counted_stream)
        finally:
            counted.release()

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            sockets = config.create_sockets()
            listeners = []
            binds = []
            for sock in sockets.insecure_sockets:
                sock.listen(config.backlog)
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
                binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")
            task_status.started(binds)
            try:
                async with trio.open_nursery(strict_exception_groups=True) as nursery:
                    nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(raise_shutdown, context.terminate.wait)
                    nursery.start_soon(
                        partial(
                            trio.serve_listeners,
                            connection,
                            listeners,
                            handler_nursery=server_nursery,
                        )
                    )
                    await trio.sleep_forever()
            except BaseExceptionGroup as error:
                _, others = error.split((ShutdownError, KeyboardInterrupt))
                if others is not None:
                    raise others from None
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


__all__ = ["serve_bounded"]
