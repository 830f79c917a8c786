"""An in-memory moving-window store for the ``limits`` package, on a clock of our choosing.

``limits``' own ``MemoryStorage`` reads ``time.time()`` and runs a timer thread to
expire entries. This one keeps, per key, the times of the hits still inside the
longest window asked for, prunes them as it goes, and reads time from the clock it
is given (the server passes trio's, so tests can move time on a fake clock). Only
the moving-window strategy is supported, which is the one clawrap uses.

:func:`shared_storage` opens ``limits``' Redis storage instead (``CLAWRAP_LIMITS_URL``),
so several servers count each key's requests in one window. Its calls are short
blocking round trips on the event loop's thread; they are bounded by
:data:`REDIS_TIMEOUT` so an unreachable Redis costs a request a refusal, not a hang.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from limits.storage import MovingWindowSupport, Storage, storage_from_string

# Seconds one Redis call (connecting included) may take before it counts as a failure.
REDIS_TIMEOUT = 0.5


class LimitsStoreError(Exception):
    """The shared limits store cannot be used (no client library, a bad URL)."""


def shared_storage(url: str) -> Storage:
    """``limits``' moving-window storage at ``url`` (``redis://``, ``rediss://``,
    ``redis+unix://``), failures wrapped as ``limits.errors.StorageError``."""
    try:
        storage = storage_from_string(
            url,
            wrap_exceptions=True,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
        )
    except Exception as exc:  # limits raises ConfigurationError, redis ValueError
        raise LimitsStoreError(
            f"CLAWRAP_LIMITS_URL cannot be used: {exc} "
            "(the Redis client installs with: pip install 'clawrap[redis]')"
        ) from None
    if not (isinstance(storage, Storage) and isinstance(storage, MovingWindowSupport)):
        raise LimitsStoreError(f"CLAWRAP_LIMITS_URL names a store without moving windows: {url}")
    return storage


class ClockedMemoryStorage(Storage, MovingWindowSupport):
    STORAGE_SCHEME = ["clawrap-memory"]

    def __init__(self, clock: Callable[[], float], **options: Any) -> None:
        self.clock = clock
        self._hits: dict[str, list[float]] = {}  # key -> hit times, oldest first
        super().__init__(None, wrap_exceptions=False, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def _live(self, key: str, expiry: float, now: float) -> list[float]:
        hits = self._hits.get(key)
        if not hits:
            return []
        start = bisect.bisect_right(hits, now - expiry)
        if start:
            del hits[:start]
        if not hits:
            del self._hits[key]
        return hits

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        now = self.clock()
        hits = self._live(key, expiry, now)
        if len(hits) + amount > limit:
            return False
        self._hits.setdefault(key, []).extend([now] * amount)
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = self.clock()
        hits = self._live(key, expiry, now)
        if not hits:
            return now, 0
        # (start of the window, hits in it): the oldest hit leaves at start + expiry.
        return hits[0], len(hits)

    # The counter interface, unused by the moving window; kept honest for Storage's contract.
    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        raise NotImplementedError("only the moving window strategy is supported")

    def get(self, key: str) -> int:
        return len(self._hits.get(key, ()))

    def get_expiry(self, key: str) -> float:
        return self.clock()

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        count = len(self._hits)
        self._hits.clear()
        return count

    def clear(self, key: str) -> None:
        self._hits.pop(key, None)


__all__ = ["REDIS_TIMEOUT", "ClockedMemoryStorage", "LimitsStoreError", "shared_storage"]
