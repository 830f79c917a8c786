"""Health that tells the truth: ``GET /v1/auth/status`` and ``GET /healthz/deep``.

``/v1/auth/status`` says which Claude credentials are configured
(:func:`~clawrap.core._auth.detect_auth`), what the CLI's own status command last
said about its login (:class:`~clawrap.core._login.LoginState`, kept by the
backend) and the last authentication failure upstream. No model call.

``/healthz/deep`` makes one real round trip through the backend: a one-line
question on a pooled process, bounded by :data:`DEEP_LIMIT`. One check runs at a
time and its answer is reused for :data:`DEEP_CACHE` seconds, so however often
it is polled it costs at most one upstream call per that many seconds. 200 when
the round trip answered, 503 otherwise (with the error in the body).

``/v1/models/status`` shows, per model used so far, its circuit breaker and the
counts of attempts, overloads, retries and fallbacks
(:mod:`clawrap.http._upstream_retry`).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import trio

from clawrap.core._auth import detect_auth
from clawrap.core._backend import Backend
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event, TextDelta, Usage
from clawrap.core._login import LoginState
from clawrap.core._request import CompletionRequest, TextPart, Turn
from clawrap.http._asgi import send_json
from clawrap.http._route_call import Call, Handler
from clawrap.http._upstream_retry import UpstreamRetries

logger = logging.getLogger("clawrap.health")

DEEP_LIMIT = 30.0  # bound on one round trip, queueing for a run slot included
DEEP_CACHE = 5.0  # an answer is reused this long
DEEP_PROMPT = "Health check: reply with the single word OK."


def login_state(backend: Backend) -> LoginState | None:
    """The backend's record of the CLI's login, when it keeps one."""
    state = getattr(backend, "login_state", None)
    return state if isinstance(state, LoginState) else None


class HealthRoutes:
    """The handlers of the auth status and deep health routes."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        limiter: trio.CapacityLimiter,
        retries: UpstreamRetries,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.limiter = limiter
        self.retries = retries
        self._lock = trio.Lock()
        self._last: tuple[float, int, dict[str, Any]] | None = None
        self.round_trips = 0

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("GET", "/v1/auth/status"): self.auth_status,
            ("GET", "/healthz/deep"): self.deep,
            ("GET", "/v1/models/status"): self.models_status,
        }

    async def models_status(self, call: Call) -> None:
        """Per model used so far: its circuit breaker and what its runs met upstream."""
        body = {
            "object": "models.status",
            "upstream_retries": self.settings.upstream_retries,
            "fallback_models": list(self.settings.fallback_models),
            "data": self.retries.status(),
        }
        await send_json(call.send, 200, body)

    async def auth_status(self, call: Call) -> None:
        # detect_auth may ask the OS keychain: keep it off the event loop.
        auth = await trio.to_thread.run_sync(detect_auth, self.settings)
        state = login_state(self.backend)
        body: dict[str, Any] = {
            "method": auth.method,
            "configured": auth.ok,
            "summary": auth.summary,
            "hint": auth.hint or None,
            "probe_interval": self.settings.auth_probe_interval,
        }
        body |= (state or LoginState()).body()
        await send_json(call.send, 200, body)

    async def deep(self, call: Call) -> None:
        status, body = await self.check()
        await send_json(call.send, status, body)

    async def check(self) -> tuple[int, dict[str, Any]]:
        """The latest round trip's result, running one when the cached one is stale."""
        async with self._lock:
            now = trio.current_time()
            if self._last is not None and now - self._last[0] < DEEP_CACHE:
                at, status, body = self._last
                return status, {**body, "cached": True, "age": round(now - at, 3)}
            status, body = await self._round_trip()
            self._last = (trio.current_time(), status, body)
            return status, {**body, "cached": False, "age": 0.0}

    async def _round_trip(self) -> tuple[int, dict[str, Any]]:
        self.round_trips += 1
        request = CompletionRequest(
            model=self.settings.default_model,
            requested_model=self.settings.default_model,
            turns=(Turn("user", (TextPart(DEEP_PROMPT),)),),
        )
        started = trio.current_time()
        text: list[str] = []
        usage: Usage | None = None
        error: ClawrapError | None = None
        borrower = object()
        with trio.move_on_after(DEEP_LIMIT) as bound:
            await self.limiter.acquire_on_behalf_of(borrower)
            try:
                send, receive = trio.open_memory_channel[Event](math.inf)
                try:
                    await self.backend.run(request, send, trio.Event())
                except ClawrapError as exc:
                    error = exc
                except Exception:
                    logger.exception("deep health check failed")
                    error = ClawrapError(
                        "api_error", "The round trip failed; the server log has the details."
                    )
                finally:
                    send.close()
                async for event in receive:
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                    elif isinstance(event, Usage):
                        usage = event
            finally:
                self.limiter.release_on_behalf_of(borrower)
        elapsed = round((trio.current_time() - started) * 1000)
        checked = int(time.time())
        if bound.cancelled_caught:
            error = ClawrapError(
                "timeout", f"No answer within {DEEP_LIMIT:g} s.", code="deep_health_timeout"
            )
        if error is not None:
            failure = {"kind": error.kind, "code": error.code, "message": error.message}
            return 503, {
                "status": "failing",
                "error": failure,
                "latency_ms": elapsed,
                "checked_at": checked,
            }
        return 200, {
            "status": "ok",
            "model": request.model,
            "latency_ms": elapsed,
            "answered": bool("".join(text).strip()),
            "output_tokens": usage.output_tokens if usage is not None else None,
            "checked_at": checked,
        }


__all__ = ["DEEP_CACHE", "DEEP_LIMIT", "HealthRoutes", "login_state"]
