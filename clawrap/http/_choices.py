"""A chat completion with ``n`` > 1: n runs in parallel, one response with n choices.

Each choice is a run of its own (a run slot, the retry runner, its own output
pipeline for ``stop``, ``max_tokens`` and JSON checks). Their events meet in one
channel tagged with the choice's index; a single task encodes and writes them
(:mod:`clawrap.protocol.openai._choices`), so chunks of different choices
interleave as they arrive. The first failure of any choice ends the response:
an HTTP error before the stream's headers, an error event after. The request's
deadline, the client's disconnect and the queue timeout bound it as they bound
a single run (:mod:`clawrap.http._exchange`); ``n`` is capped at decode time
by ``max_n`` and the number of run slots.
"""

from __future__ import annotations

import logging
import math

import trio

from clawrap.accounting._accountant import Run
from clawrap.core._backend import Backend
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event, Usage
from clawrap.core._request import CompletionRequest
from clawrap.http._asgi import (
    Receive,
    Send,
    retry_after_header,
    send_chunk,
    send_json,
    start_sse,
)
from clawrap.http._exchange import (
    FINAL_WRITE_LIMIT,
    KEEPALIVE_INTERVAL,
    QUEUE_RETRY_AFTER,
    SHUTDOWN_GRACE,
    internal_error,
)
from clawrap.http._request_log import RequestRecord
from clawrap.http._upstream_retry import UpstreamRetries
from clawrap.protocol._output_pipeline import OutputPipeline
from clawrap.protocol.openai._choices import ChoicesCollector, ChoicesStreamEncoder, sum_usage
from clawrap.protocol.openai._decode import ChatWireOptions
from clawrap.protocol.openai._encode import error_body

logger = logging.getLogger("clawrap.choices")

# What a choice task reports: an event, its end (None) or its failure.
Item = tuple[int, Event | ClawrapError | None]


class _Tagged:
    """An event sink that tags a choice's events with its index."""

    def __init__(self, index: int, channel: trio.MemorySendChannel[Item]) -> None:
        self.index = index
        self.channel = channel

    async def send(self, value: Event, /) -> None:
        await self.channel.send((self.index, value))


class Choices:
    """The state of one n-choice exchange; :func:`run_choices` is the way to use it."""

    def __init__(
        self,
        send: Send,
        request: CompletionRequest,
        options: ChatWireOptions,
        backend: Backend,
        settings: Settings,
        limiter: trio.CapacityLimiter,
        retries: UpstreamRetries | None,
    ) -> None:
        self.send = send
        self.request = request
        self.options = options
        self.n = options.n
        self.backend = backend
        self.settings = settings
        self.limiter = limiter
        self.retries = retries
        self.stream = ChoicesStreamEncoder(options, self.n) if request.stream else None
        self.collector = None if request.stream else ChoicesCollector(options, self.n)
        self.headers_sent = False
        self.responded = False
        self.pipelines = [OutputPipeline(request) for _ in range(self.n)]
        self.halts = [trio.Event() for _ in range(self.n)]

    async def _choice(self, index: int, channel: trio.MemorySendChannel[Item]) -> None:
        borrower = object()
        with trio.move_on_after(self.settings.queue_timeout) as queue:
            await self.limiter.acquire_on_behalf_of(borrower)
        if queue.cancelled_caught:
            await channel.send((index, _busy(self.settings)))
            return
        try:
            sink = _Tagged(index, channel)
            if self.retries is None:
                await self.backend.run(self.request, sink, self.halts[index])
            else:
                await self.retries.run(self.backend, self.request, sink, self.halts[index])
            await channel.send((index, None))
        except ClawrapError as exc:
            await channel.send((index, exc))
        except Exception:
            logger.exception("a choice's run failed")
            await channel.send((index, internal_error()))
        finally:
            self.limiter.release_on_behalf_of(borrower)

    async def work(self) -> ClawrapError | None:
        send, receive = trio.open_memory_channel[Item](math.inf)
        ended = 0
        async with trio.open_nursery() as runs:
            for index in range(self.n):
                runs.start_soon(self._choice, index, send)
            while ended < self.n:
                item = await self._next(receive)
                index, what = item
                if isinstance(what, ClawrapError):
                    runs.cancel_scope.cancel()
                    return what
                pipeline = self.pipelines[index]
                if what is None:
                    ended += 1
                    await self._emit(index, pipeline.close())
                    continue
                if pipeline.finished and not isinstance(what, Usage):
                    continue
                await self._emit(index, pipeline.feed(what))
                if pipeline.finished:
                    self.halts[index].set()
        await self._complete()
        return None

    async def _next(self, receive: trio.MemoryReceiveChannel[Item]) -> Item:
        while True:
            with trio.move_on_after(KEEPALIVE_INTERVAL if self.stream is not None else math.inf):
                return await receive.receive()
            assert self.stream is not None
            await self._write(self.stream.keepalive())

    async def _emit(self, index: int, events: list[Event]) -> None:
        for event in events:
            if self.stream is not None:
                await self._write(self.stream.encode(index, event))
            else:
                assert self.collector is not None
                self.collector.add(index, event)

    async def _write(self, data: bytes, *, more: bool = True) -> None:
        assert self.stream is not None
        if not self.headers_sent:
            self.headers_sent = True
            await start_sse(self.send)
            data = self.stream.start() + data
        if data or not more:
            await send_chunk(self.send, data, more=more)

    async def _complete(self) -> None:
        if self.stream is not None:
            tail = self.stream.finish()
            self.responded = True
            await self._write(tail, more=False)
        else:
            assert self.collector is not None
            self.headers_sent = self.responded = True
            await send_json(self.send, 200, self.collector.body())

    async def fail(self, error: ClawrapError) -> None:
        if self.responded:
            return
        if self.headers_sent and self.stream is not None:
            self.responded = True
            await send_chunk(self.send, self.stream.error(error), more=False)
            return
        self.headers_sent = self.responded = True
        await send_json(
            self.send, error.status, error_body(error), retry_after_header(error.retry_after)
        )

    def usage(self) -> Usage | None:
        return sum_usage([p.usage for p in self.pipelines])


def _busy(settings: Settings) -> ClawrapError:
    return ClawrapError(
        "rate_limit",
        f"All {settings.max_concurrency} run slots stayed busy for "
        f"{settings.queue_timeout:g} s (CLAWRAP_MAX_CONCURRENCY); retry shortly.",
        code="concurrency_limit",
        retry_after=QUEUE_RETRY_AFTER,
    )


async def run_choices(
    receive: Receive,
    send: Send,
    *,
    request: CompletionRequest,
    options: ChatWireOptions,
    backend: Backend,
    settings: Settings,
    limiter: trio.CapacityLimiter,
    record: RequestRecord | None = None,
    retries: UpstreamRetries | None = None,
    account: Run | None = None,
    shutdown: trio.Event | None = None,
    shutdown_grace: float = SHUTDOWN_GRACE,
) -> None:
    """Run ``options.n`` choices of ``request`` and write the one response.

    ``account``: the key's run, given the summed usage and the outcome at the end.
    ``shutdown``: once set, the choices may go on for ``shutdown_grace`` seconds (0 after
    a drain), then end with a ``server_shutting_down`` error, as a single exchange does."""
    if record is not None:
        record.model = request.requested_model
        record.stream = request.stream
    choices = Choices(send, request, options, backend, settings, limiter, retries)

    async def watch_disconnect(scope: trio.CancelScope) -> None:
        while (await receive()).get("type") != "http.disconnect":
            pass
        if record is not None and not choices.responded:
            record.disconnected = True
        scope.cancel()

    work = trio.CancelScope()
    shut_down = False

    async def watch_shutdown(event: trio.Event) -> None:
        nonlocal shut_down
        await event.wait()
        if shutdown_grace > 0:
            await trio.sleep(shutdown_grace)  # cancelled with the nursery when the work ends
        shut_down = True
        work.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_disconnect, nursery.cancel_scope)
        if shutdown is not None:
            nursery.start_soon(watch_shutdown, shutdown)
        error: ClawrapError | None = None
        limit = settings.request_timeout
        with trio.move_on_after(limit) as deadline, work:
            try:
                error = await choices.work()
            except Exception:
                logger.exception("n-choice exchange failed")
                error = internal_error(record.request_id if record is not None else None)
        if work.cancelled_caught and shut_down:
            error = ClawrapError(
                "overloaded",
                "The server is shutting down; retry the request.",
                code="server_shutting_down",
                retry_after=QUEUE_RETRY_AFTER,
            )
        elif deadline.cancelled_caught:
            error = ClawrapError(
                "timeout",
                f"The request ran past the server's limit of {limit:g} s "
                "(CLAWRAP_REQUEST_TIMEOUT).",
                code="request_timeout",
            )
        if error is not None:
            if record is not None:
                record.error = error.kind
            with trio.move_on_after(FINAL_WRITE_LIMIT):
                await choices.fail(error)
        usage = choices.usage()
        if record is not None and usage is not None:
            record.input_tokens = usage.input_tokens
            record.output_tokens = usage.output_tokens
        if account is not None:
            if usage is not None:
                account.add_usage(usage)
            await account.finish(error)
        nursery.cancel_scope.cancel()


__all__ = ["run_choices"]
