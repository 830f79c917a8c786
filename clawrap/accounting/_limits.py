"""Whether a key may start a run now: the limit decisions, without I/O.

Four kinds of limit, checked in this order, each refusal naming its limit:

- ``models`` and ``agent`` (403): what the key may ask for at all.
- ``requests_per_minute`` (429): a moving window of 60 s over the key's requests,
  kept by the ``limits`` package in a store that reads the clock it is given
  (:class:`~clawrap.accounting._window_store.ClockedMemoryStorage`), or in Redis
  (``CLAWRAP_LIMITS_URL``, :func:`~clawrap.accounting._window_store.shared_storage`)
  so that several servers share each key's window. Every admitted request counts,
  whatever happens next. When the shared store cannot be reached, a key with a
  per-minute limit is refused with a 503 (``limits_store``) rather than let through
  unmetered, and the store is not asked again for :data:`STORE_RETRY_AFTER` seconds
  (each try blocks the event loop up to its timeout).
- ``tokens_per_day``, ``usd_per_day``, ``usd_per_month`` (429): what the key has used
  so far, from the usage ledger. Days and months are UTC. Tokens are input + output
  + cache writes (cache reads are not counted: they are cheap and come back every
  turn of a conversation). A run that starts below a ceiling is not stopped by it
  mid-reply; the next one is refused, with ``retry-after`` pointing at the next UTC
  day or month.
- ``concurrent_runs`` (429): runs of the key in progress.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import Storage
from limits.strategies import MovingWindowRateLimiter

from clawrap.accounting._keys import Identity
from clawrap.accounting._window_store import ClockedMemoryStorage

logger = logging.getLogger("clawrap.limits")

# A key at its concurrency limit is told to come back after about this long.
CONCURRENCY_RETRY_AFTER = 1.0
# A request refused because the shared limits store is unreachable: come back after this.
STORE_RETRY_AFTER = 5.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused by ``limit`` (the key's setting's name)."""

    limit: str
    message: str
    status: int = 429
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Spent:
    """What a key has used in the current UTC day and month."""

    tokens_today: int = 0
    usd_today: float = 0.0
    usd_month: float = 0.0


def seconds_to_next_day(now: dt.datetime) -> float:
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def seconds_to_next_month(now: dt.datetime) -> float:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return (following - now).total_seconds()


def check_access(identity: Identity, models: tuple[str, ...], agent: bool) -> Refusal | None:
    """403 when the key may not use this model (any of its names) or agent mode."""
    limits = identity.limits
    if limits.models is not None and not set(models) & set(limits.models):
        return Refusal(
            "models",
            f"The key {identity.name!r} may not use the model {models[0]!r}; "
            f"it may use: {', '.join(limits.models) or 'none'}.",
            status=403,
        )
    if agent and not limits.agent:
        return Refusal("agent", f"The key {identity.name!r} may not use agent mode.", status=403)
    return None


def check_spend(identity: Identity, spent: Spent, now: dt.datetime) -> Refusal | None:
    """429 when the key reached a ceiling of its day or month (``now`` in UTC)."""
    limits = identity.limits
    if limits.tokens_per_day is not None and spent.tokens_today >= limits.tokens_per_day:
        return Refusal(
            "tokens_per_day",
            f"The key {identity.name!r} used its {limits.tokens_per_day} tokens for today "
            "(UTC; input + output + cache writes).",
            retry_after=seconds_to_next_day(now),
        )
    if limits.usd_per_day is not None and spent.usd_today >= limits.usd_per_day:
        return Refusal(
            "usd_per_day",
            f"The key {identity.name!r} reached its spending limit of "
            f"${limits.usd_per_day:g} for today (UTC).",
            retry_after=seconds_to_next_day(now),
        )
    if limits.usd_per_month is not None and spent.usd_month >= limits.usd_per_month:
        return Refusal(
            "usd_per_month",
            f"The key {identity.name!r} reached its spending limit of "
            f"${limits.usd_per_month:g} for this month (UTC).",
            retry_after=seconds_to_next_month(now),
        )
    return None


def remaining_budget(identity: Identity, spent: Spent) -> float | None:
    """USD the key may still spend today and this month (the lower), None without ceilings."""
    limits = identity.limits
    left = [
        ceiling - used
        for ceiling, used in (
            (limits.usd_per_day, spent.usd_today),
            (limits.usd_per_month, spent.usd_month),
        )
        if ceiling is not None
    ]
    return max(0.0, min(left)) if left else None


def _store_refusal(retry_after: float) -> Refusal:
    return Refusal(
        "limits_store",
        "The server cannot reach its shared rate-limit store; retry shortly.",
        status=503,
        retry_after=retry_after,
    )


class Limiter:
    """The limits that live in memory: requests per minute and runs in progress.

    ``clock``: seconds, monotonic (the server passes trio's clock). ``storage``: a
    ``limits`` storage with moving-window support (default: in memory, on ``clock``).
    """

    def __init__(self, clock: Callable[[], float], storage: Storage | None = None) -> None:
        self.clock = clock
        self.window = MovingWindowRateLimiter(storage or ClockedMemoryStorage(clock))
        self.running: Counter[str] = Counter()
        self._items: dict[int, RateLimitItemPerMinute] = {}
        self._store_down_until = float("-inf")

    def hit_rate(self, identity: Identity) -> Refusal | None:
        """Count one request against the key's requests per minute; refuse past it."""
        per_minute = identity.limits.requests_per_minute
        if per_minute is None:
            return None
        item = self._items.setdefault(per_minute, RateLimitItemPerMinute(per_minute))
        if self.clock() < self._store_down_until:
            # A store that just failed is not asked again for a while: each try blocks.
            return _store_refusal(self._store_down_until - self.clock())
        try:
            if self.window.hit(item, identity.name):
                return None
            reset = self.window.get_window_stats(item, identity.name).reset_time
        except StorageError as exc:
            logger.warning("the shared limits store failed: %s", exc.storage_error)
            self._store_down_until = self.clock() + STORE_RETRY_AFTER
            return _store_refusal(STORE_RETRY_AFTER)
        return Refusal(
            "requests_per_minute",
            f"The key {identity.name!r} sent more than {per_minute} requests in a minute.",
            retry_after=max(0.0, reset - self.clock()),
        )

    def start_run(self, identity: Identity) -> Refusal | None:
        """Count a run in progress; refuse past the key's concurrent runs."""
        most = identity.limits.concurrent_runs
        if most is not None and self.running[identity.name] >= most:
            return Refusal(
                "concurrent_runs",
                f"The key {identity.name!r} already has {most} run(s) in progress.",
                retry_after=CONCURRENCY_RETRY_AFTER,
            )
        self.running[identity.name] += 1
        return None

    def end_run(self, identity: Identity) -> None:
        self.running[identity.name] -= 1
        if self.running[identity.name] <= 0:
            del self.running[identity.name]


__all__ = [
    "Limiter",
    "Refusal",
    "Spent",
    "check_access",
    "check_spend",
    "remaining_budget",
    "seconds_to_next_day",
    "seconds_to_next_month",
]
