"""How many CLI processes the pool keeps warm, and for which spawn keys.

:class:`WarmPolicy` is the pool's bookkeeping of demand, with no processes in
it: the keys requests used recently (the default key always counts), and how
many processes of each key were busy at once lately. A key's target, the
processes it keeps whether busy or idle, is ``pool_size`` (a key seen only once
keeps the one process it used), raised to the number of its processes that were
busy at once within ``PEAK_WINDOW``: a client running four requests side by side
finds four warm processes instead of waiting for spawns, and no more are started
while it runs (a process is reset within milliseconds of its request's end). The
pool caps what this asks for at its capacity (``pool_max`` and the memory budget).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from clawrap.claude._cli_process import CliProcess
from clawrap.claude._sdk_options import SpawnKey, SpawnSpec
from clawrap.core._config import Settings

# Resident memory a CLI process is counted for: ~230 MB new, levelling off at 360-390 MB
# after thousands of requests (measured over 10,000 on one process).
PROCESS_MB = 400
MAX_RECENT_KEYS = 8
PEAK_WINDOW = 60.0  # how long a burst of concurrent use keeps its processes wanted
EXTRA_IDLE_EXPIRY = 60.0  # idle processes beyond a key's target go sooner


def capacity(settings: Settings) -> int:
    """The most CLI processes that may exist at once: ``pool_max`` within the memory budget."""
    return max(1, min(settings.pool_max, settings.pool_memory_mb // PROCESS_MB))


@dataclass(slots=True)
class _KeyInfo:
    spec: SpawnSpec | None  # None for the default key (its spec is the policy's own)
    hits: int
    last_seen: float
    model: str | None = None  # of the latest request: warm processes start on it
    peak: int = 0  # most processes of this key busy at once since peak_at
    peak_at: float = 0.0


class WarmPolicy:
    """Recent demand by spawn key, and the warm targets that follow from it."""

    def __init__(self, settings: Settings, default: SpawnSpec | None) -> None:
        self.size = max(0, settings.pool_size)
        self.expiry = settings.pool_idle_expiry
        self.default = default
        self._recent: OrderedDict[SpawnKey, _KeyInfo] = OrderedDict()
        self._default_info = _KeyInfo(None, 0, 0.0)

    def _info(self, key: SpawnKey) -> _KeyInfo | None:
        if self.default is not None and key == self.default.key:
            return self._default_info
        return self._recent.get(key)

    def note(self, spec: SpawnSpec, now: float) -> None:
        """A request used ``spec``."""
        if self.default is not None and spec.key == self.default.key:
            self._default_info.last_seen = now
            self._default_info.model = spec.model
            return
        info = self._recent.pop(spec.key, None)
        if info is None:
            info = _KeyInfo(spec.without_resume(), 0, now)
        info.hits += 1
        info.last_seen = now
        info.model = spec.model
        self._recent[spec.key] = info
        while len(self._recent) > MAX_RECENT_KEYS:
            self._recent.popitem(last=False)

    def forget(self, key: SpawnKey) -> bool:
        """Stop keeping ``key`` warm (a process of it could not start). False for the
        default key, which is always wanted."""
        return self._recent.pop(key, None) is not None

    def note_busy(self, key: SpawnKey, busy: int, now: float) -> None:
        """``busy`` processes of ``key`` are in use right now."""
        info = self._info(key)
        if info is None:
            return
        if busy >= info.peak or now - info.peak_at > PEAK_WINDOW:
            info.peak, info.peak_at = busy, now

    def target(self, key: SpawnKey, now: float) -> int:
        """How many processes to keep for ``key``, busy or idle."""
        if self.size == 0:
            return 0
        info = self._info(key)
        if info is None:
            return 0
        # A key seen once keeps the process it used; seen again, it gets a full set.
        full = info is self._default_info or info.hits >= 2
        base = self.size if full else 1
        peak = info.peak if now - info.peak_at <= PEAK_WINDOW else 0
        return max(base, peak)

    def expired(self, key: SpawnKey, idle: list[CliProcess], now: float) -> list[CliProcess]:
        """Which of ``key``'s idle processes to end: dead ones, and those idle too long
        (``pool_idle_expiry``; ``EXTRA_IDLE_EXPIRY`` for those beyond the target)."""
        target = self.target(key, now)
        # Newest first: requests take the newest, so extras are the oldest.
        ranked = sorted(idle, key=lambda p: p.idle_since, reverse=True)
        extra = min(self.expiry, EXTRA_IDLE_EXPIRY)
        return [
            proc
            for rank, proc in enumerate(ranked)
            if not proc.alive or now - proc.idle_since > (self.expiry if rank < target else extra)
        ]

    def forget_stale(self, now: float) -> None:
        """Drop keys unused for ``pool_idle_expiry``."""
        for key in [k for k, i in self._recent.items() if now - i.last_seen > self.expiry]:
            del self._recent[key]

    def wanted(self) -> list[SpawnSpec]:
        """Specs worth keeping warm, most wanted first: the default, then the most recent.

        Each on the model its key's latest request asked for: a process started on it
        needs no ``set_model``, which for a full model id costs the CLI an upstream call
        and ~0.7 s (measured against a local model) on the request's path.
        """
        pairs = [(self.default, self._default_info)] if self.default is not None else []
        pairs += [(i.spec, i) for i in reversed(self._recent.values()) if i.spec is not None]
        return [
            spec if info.model in (None, spec.model) else replace(spec, model=info.model)
            for spec, info in pairs
        ]


__all__ = ["PEAK_WINDOW", "PROCESS_MB", "WarmPolicy", "capacity"]
