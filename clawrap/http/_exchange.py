"""One completion request over HTTP: run the backend, stream or collect, end properly.

The shape of one exchange (``docs/ARCHITECTURE.md``, "The path of one request")::

    request nursery ──┬─ disconnect watcher: receive() -> http.disconnect cancels everything
                      ├─ shutdown watcher: after a grace, ends the request with an error
                      └─ deadline (request_timeout; agent_timeout in agent mode)
                          └─ queue deadline (queue_timeout): one bound on all waits for
                             the session's lock, a run slot (limiter) and, in the backend,
                             room for a CLI process (CompletionRequest.queue_deadline)
                              └─ backend nursery ──┬─ backend.run(request, channel, halt)
                                                   └─ consumer: events -> output pipeline
                                                      -> encoder/collector -> send

hypercorn never cancels the app when a client leaves and silently drops sends
after it, so the disconnect watcher is the only way to learn of it. The backend
runs in its own task and its channel is unbounded, so a client that stops
reading never holds a run slot or a CLI process: the slot is released when the
backend returns, not when the last byte is written.

Writing the response, and how a failure shows before and after a stream's
headers are out, is :mod:`clawrap.http._exchange_response`.

A request naming a session runs inside its session's lock, with the stored
conversation, and its reply is stored before the response ends
(:mod:`clawrap.http._exchange_sessions`).

The run's account (:class:`~clawrap.accounting._accountant.Run`) is given every
usage the backend reports and is finished once, before the response's last bytes
go out: the usage ledger already holds a run whose response a client has read.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any, Protocol

import trio

from clawrap.accounting._accountant import Run
from clawrap.core._backend import HALT_GRACE, Backend
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import (
    AgentProgress,
    Event,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from clawrap.core._request import CompletionRequest
from clawrap.http._asgi import Message, Receive, Send
from clawrap.http._exchange_response import ResponseWriter
from clawrap.http._exchange_sessions import Sessions, SessionTurn, sessions_unavailable
from clawrap.http._request_log import RequestRecord
from clawrap.http._upstream_retry import UpstreamRetries
from clawrap.protocol._conversation_shape import check_conversation
from clawrap.protocol._dialect import Dialect
from clawrap.protocol._output_pipeline import OutputPipeline

logger = logging.getLogger("clawrap.exchange")

# After the output limiter ends the reply, how long the backend may take to stop on its own
# before it is cancelled: its own grace for the turn's usage (HALT_GRACE), then a margin, so
# a backend that keeps its promise is never cut off while it still waits for the usage.
HALT_LIMIT = HALT_GRACE + 1.0
# An SSE comment this often keeps proxies and clients from timing out a quiet stream.
KEEPALIVE_INTERVAL = 15.0
# Bound on writing the final error: a client that stopped reading must not hold the request.
FINAL_WRITE_LIMIT = 5.0
# On shutdown without a drain first (an embedding server's lifespan), how long a running
# request may go on before it is ended with an error; clawrap's own server drains instead.
SHUTDOWN_GRACE = 5.0
# Suggested wait when every run slot stayed busy for the whole queue timeout.
QUEUE_RETRY_AFTER = 2.0


class ToolStatsSink(Protocol):
    """Where agent-mode tool progress is counted (``GET /v1/tools/stats``)."""

    def feed(self, event: AgentProgress) -> None: ...


_CONTENT = (TextDelta, ReasoningDelta, ToolCallStart, ToolCallDelta)


def client_gone() -> ClawrapError:
    """How a run whose client left is recorded (an error, not one of the upstream's)."""
    return ClawrapError("api_error", "The client went away.", code="client_disconnected")


def internal_error(request_id: str | None = None) -> ClawrapError:
    """What a client sees of a bug: a generic 500 pointing at the server log."""
    ref = f" (request id {request_id})" if request_id else ""
    return ClawrapError(
        "api_error",
        f"Internal error in clawrap{ref}; the server log has the details.",
        status=500,
        code="internal_error",
    )


def _as_clawrap_error(exc: BaseException) -> ClawrapError | None:
    """The ClawrapError in ``exc``, looking inside exception groups a backend's nursery made."""
    if isinstance(exc, ClawrapError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _as_clawrap_error(inner)
            if found is not None:
                return found
    return None


class Exchange:
    """The state of one exchange; :func:`run_exchange` is the way to use it."""

    def __init__(
        self,
        receive: Receive,
        send: Send,
        *,
        dialect: Dialect,
        request: CompletionRequest,
        options: Any,
        backend: Backend,
        settings: Settings,
        limiter: trio.CapacityLimiter,
        record: RequestRecord | None,
        shutdown: trio.Event | None,
        sessions: Sessions | None = None,
        account: Run | None = None,
        retries: UpstreamRetries | None = None,
        tool_stats: ToolStatsSink | None = None,
        shutdown_grace: float | None = None,
    ) -> None:
        self.retries = retries
        self.shutdown_grace = shutdown_grace
        self.tool_stats = tool_stats
        self.receive = receive
        self.account = account
        self._client_send = send
        self.send: Send = self._send
        self.dialect = dialect
        self.request = request
        self.options = options
        self.backend = backend
        self.settings = settings
        self.limiter = limiter
        self.record = record
        self.shutdown = shutdown
        self.pipeline = OutputPipeline(request)
        self.out = ResponseWriter(self.send, dialect)
        self.running = False  # a run slot is held and the backend started
        self.backend_error: ClawrapError | None = None
        self.shut_down = False
        # Created up front so the shutdown watcher can cancel it before it is entered.
        self.work_scope = trio.CancelScope()
        self.sessions = sessions
        self.session: SessionTurn | None = None

    async def _send(self, message: Message) -> None:
        if self.session is not None:
            message = self.session.with_header(message)
        if message.get("type") == "http.response.body" and not message.get("more_body", False):
            # The last body message: hypercorn ends the response inside this send(), and part
            # of that is queueing an http.disconnect for us, which the disconnect watcher
            # answers by cancelling the request. A cancel landing here would stop hypercorn
            # before it closes the connection (Connection: close, HTTP/1.0) or starts its
            # keep-alive timer, leaving the socket open forever. hypercorn shields its own
            # socket writes, so the shield adds no wait a client could cause.
            with trio.CancelScope(shield=True):
                await self._client_send(message)
            return
        await self._client_send(message)

    # -- structure -------------------------------------------------------------------------

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_disconnect, nursery.cancel_scope)
            if self.shutdown is not None:
                nursery.start_soon(self._watch_shutdown, self.shutdown)
            try:
                await self._serve()
            except Exception:
                # _serve handles every failure itself; this is the last guard against a bug
                # escaping as an exception group that would take the server's task with it.
                logger.exception("unexpected failure ending an exchange")
            nursery.cancel_scope.cancel()

    async def _watch_disconnect(self, scope: trio.CancelScope) -> None:
        while True:
            message = await self.receive()
            if message.get("type") == "http.disconnect":
                # hypercorn also reports the end of every finished response this way.
                if self.record is not None and not self.out.responded:
                    self.record.disconnected = True
                scope.cancel()
                return

    async def _watch_shutdown(self, shutdown: trio.Event) -> None:
        await shutdown.wait()
        grace = SHUTDOWN_GRACE if self.shutdown_grace is None else self.shutdown_grace
        if self.running and grace > 0:
            # The request nursery cancels this sleep when the request ends within the grace.
            await trio.sleep(grace)
        self.shut_down = True
        self.work_scope.cancel()

    async def _serve(self) -> None:
        error: ClawrapError | None = None
        limit, setting = self.settings.request_timeout, "CLAWRAP_REQUEST_TIMEOUT"
        if self.request.agent is not None:
            # An agent run works through many model turns and tools: its own, longer bound.
            limit, setting = self.settings.agent_timeout, "CLAWRAP_AGENT_TIMEOUT"
        with trio.move_on_after(limit) as deadline:
            with self.work_scope:
                error = await self._work()
        if deadline.cancelled_caught:
            error = ClawrapError(
                "timeout",
                f"The request ran past the server's limit of {limit:g} s ({setting}).",
                code="request_timeout",
            )
        elif self.work_scope.cancelled_caught and self.shut_down:
            error = ClawrapError(
                "overloaded",
                "The server is shutting down; retry the request.",
                code="server_shutting_down",
                retry_after=QUEUE_RETRY_AFTER,
            )
        if error is not None:
            if self.account is not None:
                await self.account.finish(error, upstream=error is self.backend_error)
            with trio.move_on_after(FINAL_WRITE_LIMIT):
                if self.record is not None:
                    self.record.error = error.kind
                await self.out.fail(error)

    async def _work(self) -> ClawrapError | None:
        """Everything under the deadline. Returns the failure to render, or None when done."""
        # One queue deadline for every wait the request makes before it runs.
        deadline = trio.current_time() + self.settings.queue_timeout
        self.request = replace(self.request, queue_deadline=deadline)
        if self.request.session_id is None:
            return await self._run()
        if self.sessions is None:
            return sessions_unavailable()
        self.session = SessionTurn(self.sessions)
        try:
            wait = deadline - trio.current_time()
            async with self.session.hold(self.request, wait=wait) as request:
                # The whole conversation is known only now: its shape's 400s, before a slot.
                check_conversation(request)
                self.request = request
                return await self._run()
        except ClawrapError as exc:
            return exc

    async def _run(self) -> ClawrapError | None:
        """Take a run slot, run the backend and write the response."""
        borrower = object()
        queued_at = trio.current_time()
        deadline = self.request.queue_deadline
        assert deadline is not None  # set by _work
        with trio.move_on_at(deadline) as queue:
            await self.limiter.acquire_on_behalf_of(borrower)
        if self.account is not None:
            self.account.queued(trio.current_time() - queued_at, refused=queue.cancelled_caught)
        if queue.cancelled_caught:
            # 429 rather than 503: the server is healthy, only busy for a moment. Both OpenAI
            # and Anthropic SDKs retry a 429 after its retry-after; a 503 reads as "down".
            return ClawrapError(
                "rate_limit",
                f"All {self.settings.max_concurrency} run slots stayed busy until the request "
                f"had queued {self.settings.queue_timeout:g} s (CLAWRAP_MAX_CONCURRENCY, "
                "CLAWRAP_QUEUE_TIMEOUT); retry shortly.",
                code="concurrency_limit",
                retry_after=QUEUE_RETRY_AFTER,
            )
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self.limiter.release_on_behalf_of(borrower)

        try:
            self.running = True
            events_in, events_out = trio.open_memory_channel[Event](math.inf)
            halt = trio.Event()
            # The backend's own scope: stopping it early (a stop sequence, max_tokens) must
            # not cancel the consumer, which still has the end of the response to write.
            backend_scope = trio.CancelScope()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._run_backend, events_in, halt, release, backend_scope)
                error = await self._consume(events_out, halt, backend_scope)
                # Normally the backend has returned already; after an error it must stop too.
                nursery.cancel_scope.cancel()
            return error
        except Exception:
            logger.exception("exchange failed (request id %s)", self._request_id())
            return internal_error(self._request_id())
        finally:
            release()

    async def _run_backend(
        self,
        events: trio.MemorySendChannel[Event],
        halt: trio.Event,
        release: Any,
        scope: trio.CancelScope,
    ) -> None:
        try:
            with scope:
                if self.retries is None:
                    await self.backend.run(self.request, events, halt)
                else:
                    await self.retries.run(
                        self.backend, self.request, events, halt, self.out.answered_by
                    )
        except Exception as exc:
            found = _as_clawrap_error(exc)
            if found is None:
                logger.exception("backend failed (request id %s)", self._request_id())
                found = internal_error(self._request_id())
            self.backend_error = found
        finally:
            # Close first: the consumer learns the run is over; then free the slot for others.
            events.close()
            release()

    # -- the consumer ----------------------------------------------------------------------

    async def _consume(
        self,
        events: trio.MemoryReceiveChannel[Event],
        halt: trio.Event,
        backend_scope: trio.CancelScope,
    ) -> ClawrapError | None:
        self.out.begin(self.request, self.options)
        try:
            while True:
                event = await self._next(events)
                if event is None:
                    break
                if isinstance(event, Usage) and self.account is not None:
                    # Taken here, not on its way out: a run that fails after reporting it
                    # (over its budget) still cost what it says.
                    self.account.add_usage(event)
                await self._emit(self.pipeline.feed(event))
                if self.pipeline.finished:
                    await self._stop_early(events, halt, backend_scope)
                    break
            if not self.pipeline.finished and self.backend_error is not None:
                return self.backend_error
            await self._emit(self.pipeline.close())
            if self.session is not None:
                await self.session.commit(self.request, headers_sent=self.out.headers_sent)
            if self.account is not None:
                await self.account.finish()
            await self.out.complete()
            return None
        except ClawrapError as exc:
            return exc
        except Exception:
            logger.exception("encoding failed (request id %s)", self._request_id())
            return internal_error(self._request_id())

    async def _stop_early(
        self,
        events: trio.MemoryReceiveChannel[Event],
        halt: trio.Event,
        backend_scope: trio.CancelScope,
    ) -> None:
        """The reply is complete (stop sequence, max tokens): stop the backend, keep its usage."""
        halt.set()
        with trio.move_on_after(HALT_LIMIT) as limit:
            async for event in events:
                if isinstance(event, Usage):
                    self.pipeline.usage = event
                    if self.account is not None:
                        self.account.add_usage(event)
        if limit.cancelled_caught:
            logger.warning(
                "backend still running %g s after halt; cancelled (request id %s)",
                HALT_LIMIT,
                self._request_id(),
            )
        backend_scope.cancel()

    async def _next(self, events: trio.MemoryReceiveChannel[Event]) -> Event | None:
        """The next event, None at the end; keep-alives while a stream is quiet."""
        idle = self.settings.idle_timeout
        if self.request.agent is not None:
            # A tool (a build, a test suite) may rightly run for minutes without output;
            # the run's own deadline bounds it.
            idle = max(idle, self.settings.agent_timeout)
        idle_deadline = trio.current_time() + idle
        while True:
            wake = idle_deadline
            if self.out.encoder is not None:
                wake = min(wake, trio.current_time() + KEEPALIVE_INTERVAL)
            with trio.move_on_at(wake):
                try:
                    return await events.receive()
                except trio.EndOfChannel:
                    return None
            if trio.current_time() >= idle_deadline:
                raise ClawrapError(
                    "timeout",
                    f"No output from Claude for {idle:g} s (CLAWRAP_IDLE_TIMEOUT).",
                    code="idle_timeout",
                )
            await self.out.keepalive()

    async def _emit(self, events: list[Event]) -> None:
        for event in events:
            if self.session is not None:
                self.session.feed(event)
            if self.tool_stats is not None and isinstance(event, AgentProgress):
                self.tool_stats.feed(event)
            if self.record is not None:
                if isinstance(event, _CONTENT):
                    self.record.mark_first_token()
                elif isinstance(event, Usage):
                    self.record.input_tokens = event.input_tokens
                    self.record.output_tokens = event.output_tokens
            await self.out.add(event)

    def _request_id(self) -> str | None:
        return self.record.request_id if self.record is not None else None


async def run_exchange(
    receive: Receive,
    send: Send,
    *,
    dialect: Dialect,
    request: CompletionRequest,
    options: Any,
    backend: Backend,
    settings: Settings,
    limiter: trio.CapacityLimiter,
    record: RequestRecord | None = None,
    shutdown: trio.Event | None = None,
    sessions: Sessions | None = None,
    account: Run | None = None,
    retries: UpstreamRetries | None = None,
    tool_stats: ToolStatsSink | None = None,
    shutdown_grace: float | None = None,
) -> None:
    """Run one decoded completion request and write its response.

    ``shutdown_grace``: how long a running request may go on once ``shutdown`` is set
    (default :data:`SHUTDOWN_GRACE`; 0 when the server drained before shutting down).

    ``sessions``: the server's session store and locks; without them a request
    naming a session is answered with a 501. ``retries``: retry, fallback and the
    circuit breakers (:mod:`clawrap.http._upstream_retry`); without it, one run.

    Never raises except trio.Cancelled: every failure becomes a response (or, when
    the client is gone, nothing). When it returns, no task it started is running.
    """
    if record is not None:
        record.model = request.requested_model
        record.stream = request.stream
    exchange = Exchange(
        receive,
        send,
        dialect=dialect,
        request=request,
        options=options,
        backend=backend,
        settings=settings,
        limiter=limiter,
        record=record,
        shutdown=shutdown,
        sessions=sessions,
        account=account,
        retries=retries,
        tool_stats=tool_stats,
        shutdown_grace=shutdown_grace,
    )
    await exchange.run()


__all__ = [
    "FINAL_WRITE_LIMIT",
    "HALT_LIMIT",
    "KEEPALIVE_INTERVAL",
    "QUEUE_RETRY_AFTER",
    "SHUTDOWN_GRACE",
    "Exchange",
    "Sessions",
    "client_gone",
    "internal_error",
    "run_exchange",
]
