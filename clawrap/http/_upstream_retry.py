"""The one owner of upstream retries: backoff within the deadline, then fallback models.

The CLI is told not to retry (``CLAUDE_CODE_MAX_RETRIES=0``): it would retry
every error, 401 included, without knowing the request's deadline, a fallback
or the other requests overloading the same model. Here, a run that fails with
an upstream overload (529, 503) or rate limit *before any of its output went to
the client* is run again after :func:`~clawrap.core._breaker.backoff`, up to
``upstream_retries`` times per model, as long as the wait ends before the
request's deadline. Then each of ``fallback_models`` in turn gets the same.

Each model has a :class:`~clawrap.core._breaker.CircuitBreaker`: a model whose
breaker is open is skipped at once (and with no fallback left the request is a
503 with ``retry-after``). Counters per model feed ``GET /v1/models/status``.

Output goes through a per-attempt channel so the runner knows whether any
event was passed on (after that a failure is the client's to see); the callback
``on_model`` learns which model answers before its first event is passed on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import trio

from clawrap.core._backend import Backend, EventSink, HaltSignal
from clawrap.core._breaker import CircuitBreaker, backoff
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event, Usage
from clawrap.core._request import CompletionRequest

log = logging.getLogger("clawrap.retry")

RETRYABLE_CODES = frozenset({"upstream_overloaded", "rate_limit_exceeded"})
# A retry is only worth starting when this much of the deadline would be left after its wait.
MIN_ATTEMPT_TIME = 2.0


@dataclass(slots=True)
class ModelCounters:
    """What happened to the runs of one model since the server started."""

    attempts: int = 0
    answered: int = 0
    overloads: int = 0
    retries: int = 0
    fallbacks_to: int = 0  # requests another model could not serve, answered by this one
    refused_open: int = 0  # attempts skipped because the breaker was open


def retryable(error: ClawrapError) -> bool:
    return error.code in RETRYABLE_CODES


class UpstreamRetries:
    """Retry, fallback and circuit breakers over a backend, shared by all requests."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.breakers: dict[str, CircuitBreaker] = {}
        self.counters: dict[str, ModelCounters] = {}

    def _breaker(self, model: str) -> CircuitBreaker:
        breaker = self.breakers.get(model)
        if breaker is None:
            breaker = self.breakers[model] = CircuitBreaker(
                threshold=self.settings.breaker_threshold, cooldown=self.settings.breaker_cooldown
            )
        return breaker

    def _count(self, model: str) -> ModelCounters:
        return self.counters.setdefault(model, ModelCounters())

    def models(self, request: CompletionRequest) -> list[str]:
        """The request's model, then the fallbacks (each once)."""
        chain = [request.model]
        for model in self.settings.fallback_models:
            if model not in chain:
                chain.append(model)
        return chain

    async def run(
        self,
        backend: Backend,
        request: CompletionRequest,
        events: EventSink,
        halt: HaltSignal,
        on_model: Callable[[str], None] | None = None,
    ) -> str:
        """Run ``request`` (retrying, falling back); returns the model that answered."""
        last: ClawrapError | None = None
        held: list[Event] = []  # the last failed attempt's usage, passed on if it is the end
        chain = self.models(request)
        for position, model in enumerate(chain):
            breaker = self._breaker(model)
            counters = self._count(model)
            attempt_request = request if model == request.model else _switched(request, model)
            for attempt in range(self.settings.upstream_retries + 1):
                if not breaker.allow(trio.current_time()):
                    counters.refused_open += 1
                    last = last or _open_error(model, breaker.retry_after(trio.current_time()))
                    break
                counters.attempts += 1
                if attempt > 0:
                    counters.retries += 1
                error, sent, held = await self._attempt(
                    backend, attempt_request, events, halt, model, on_model, breaker
                )
                if error is None:
                    await self._flush(held, events)
                    counters.answered += 1
                    if position > 0:
                        counters.fallbacks_to += 1
                    return model
                if sent or not retryable(error):
                    await self._flush(held, events)
                    raise error
                counters.overloads += 1
                last = error
                if attempt == self.settings.upstream_retries:
                    break
                wait = backoff(attempt)
                if (
                    trio.current_time() + wait + MIN_ATTEMPT_TIME
                    > trio.current_effective_deadline()
                ):
                    break
                log.info("model %s overloaded; retry %d in %.2f s", model, attempt + 1, wait)
                await trio.sleep(wait)
            if position + 1 < len(chain):
                log.warning("model %s unavailable; falling back to %s", model, chain[position + 1])
        assert last is not None
        await self._flush(held, events)
        raise last

    @staticmethod
    async def _flush(held: list[Event], events: EventSink) -> None:
        for event in held:
            await events.send(event)

    async def _attempt(
        self,
        backend: Backend,
        request: CompletionRequest,
        events: EventSink,
        halt: HaltSignal,
        model: str,
        on_model: Callable[[str], None] | None,
        breaker: CircuitBreaker,
    ) -> tuple[ClawrapError | None, bool, list[Event]]:
        """One run. Returns its error (None when it answered), whether output went out, and
        the events held back: a failed turn reports its usage before its error, and that
        usage is passed on only if the request ends with this attempt (the caller flushes)."""
        sent = 0
        held: list[Event] = []
        inner_send, inner_receive = trio.open_memory_channel[Event](math.inf)

        async def forward() -> None:
            nonlocal sent
            async for event in inner_receive:
                if sent == 0 and isinstance(event, Usage):
                    held.append(event)
                    continue
                if sent == 0 and on_model is not None:
                    on_model(model)
                sent += 1
                await events.send(event)

        error: ClawrapError | None = None
        verdict = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(forward)
                with inner_send:
                    try:
                        await backend.run(request, inner_send, halt)
                    except ClawrapError as exc:
                        error = exc
            if error is None:
                breaker.success(trio.current_time())
                verdict = True
            elif retryable(error):
                breaker.overloaded(trio.current_time())
                verdict = True
        finally:
            if not verdict:
                breaker.abandoned(trio.current_time())
        return error, sent > 0, held

    def status(self) -> dict[str, Any]:
        """Per model: breaker state and counters, for ``GET /v1/models/status``."""
        now = trio.current_time()
        names = sorted(set(self.breakers) | set(self.counters))
        return {
            name: {
                "breaker": self._breaker(name).snapshot(now),
                **_counters_json(self._count(name)),
            }
            for name in names
        }


def _counters_json(counters: ModelCounters) -> dict[str, int]:
    return {
        "attempts": counters.attempts,
        "answered": counters.answered,
        "overloads": counters.overloads,
        "retries": counters.retries,
        "fallbacks_to": counters.fallbacks_to,
        "refused_open": counters.refused_open,
    }


def _switched(request: CompletionRequest, model: str) -> CompletionRequest:
    return replace(request, model=model, requested_model=model)


def _open_error(model: str, retry_after: float) -> ClawrapError:
    return ClawrapError(
        "overloaded",
        f"The model {model} is overloaded upstream; clawrap pauses calls to it for a moment. "
        "Please retry shortly.",
        code="upstream_overloaded",
        retry_after=max(1.0, math.ceil(retry_after)),
    )


__all__ = ["RETRYABLE_CODES", "ModelCounters", "UpstreamRetries", "retryable"]
