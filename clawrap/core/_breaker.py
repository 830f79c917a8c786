"""A per-model circuit breaker and the retry schedule for upstream overloads (sans-IO).

:class:`CircuitBreaker` counts overloads of one model. After ``threshold`` in a
row it opens: calls are refused at once for ``cooldown`` seconds. Then it is
half-open: exactly one call (the probe) goes through; its success closes the
breaker, its overload opens it again for another cooldown. A probe that ends
without a verdict (cancelled, failed for another reason) gives the next caller
the probe; one that never reports at all is taken as lost after
``probe_limit`` seconds. So the breaker is never stuck half-open.

Every method takes the time (``now``, any monotonic clock: the callers pass
``trio.current_time()``), so the logic runs on trio's mock clock in tests.

:func:`backoff` is the wait before retry ``attempt`` (0-based): "full jitter",
uniform between 0 and ``min(cap, base * 2**attempt)``, so clients retrying
together spread out instead of arriving in waves.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Closed, open or half-open; see the module docstring."""

    def __init__(
        self, *, threshold: int = 5, cooldown: float = 30.0, probe_limit: float = 120.0
    ) -> None:
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self.probe_limit = probe_limit
        self.failures = 0  # overloads in a row
        self.opened_at: float | None = None
        self.probe_since: float | None = None  # a probe is out since then
        self.opens = 0  # times it opened, for status pages

    def state(self, now: float) -> BreakerState:
        if self.opened_at is None:
            return "closed"
        if now - self.opened_at < self.cooldown:
            return "open"
        return "half_open"

    def retry_after(self, now: float) -> float:
        """Seconds until a call may go through again (0 when one may now)."""
        if self.state(now) != "open":
            return 0.0
        assert self.opened_at is not None
        return self.opened_at + self.cooldown - now

    def allow(self, now: float) -> bool:
        """Whether a call may go to the model now. In the half-open state the caller that
        gets True is the probe and must report back with one of the methods below."""
        state = self.state(now)
        if state == "closed":
            return True
        if state == "open":
            return False
        if self.probe_since is not None and now - self.probe_since < self.probe_limit:
            return False  # one probe at a time
        self.probe_since = now
        return True

    def success(self, now: float) -> None:
        """The call was answered."""
        self.failures = 0
        self.opened_at = None
        self.probe_since = None

    def overloaded(self, now: float) -> None:
        """The call met an upstream overload or rate limit."""
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.threshold:
            # A half-open probe failed, or too many in a row: (re)open for a cooldown.
            if self.opened_at is None:
                self.opens += 1
            self.opened_at = now
            self.probe_since = None

    def abandoned(self, now: float) -> None:
        """The call ended without saying anything about overload (cancelled, or another
        error): a probe it was is given up, so the next caller probes."""
        self.probe_since = None

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "state": self.state(now),
            "failures_in_a_row": self.failures,
            "opens": self.opens,
            "retry_after": round(self.retry_after(now), 3),
        }


def backoff(
    attempt: int,
    *,
    base: float = 0.5,
    cap: float = 8.0,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """The wait before retry ``attempt`` (0-based), with full jitter."""
    return uniform(0.0, min(cap, base * 2 ** min(attempt, 30)))


__all__ = ["BreakerState", "CircuitBreaker", "backoff"]
