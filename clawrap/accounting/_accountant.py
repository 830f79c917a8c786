"""The accountant: identifies keys, admits runs within their limits, records what they used.

The HTTP shell calls :meth:`Accountant.identify` with the keys a request presents,
:meth:`Accountant.admit` before a completion runs (a refusal is a
:class:`~clawrap.core._errors.ClawrapError` naming the limit, 403 or 429 with
``retry_after``), feeds the :class:`Run` the usage the backend reports, and calls
:meth:`Run.finish` once when the run is over, however it ended: the run is then
in the ledger and the metrics, and its concurrency slot is free.

A key with a USD ceiling gets :attr:`Run.budget_usd`, what it may still spend
today and this month, to bound an agent run in flight (the SDK's ``max_budget_usd``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from clawrap.accounting._keys import Identity, KeyRing
from clawrap.accounting._ledger import Ledger
from clawrap.accounting._limits import (
    Limiter,
    Refusal,
    Spent,
    check_access,
    check_spend,
    remaining_budget,
)
from clawrap.accounting._metrics import Metrics
from clawrap.core._errors import ClawrapError, ErrorKind
from clawrap.core._events import Usage

MAX_MODEL_NAME = 100


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Run:
    """One admitted run of a key: collects its usage, records it once at the end."""

    def __init__(
        self, accountant: Accountant, identity: Identity, model: str, budget: float | None
    ) -> None:
        self.accountant = accountant
        self.identity = identity
        self.model = model[:MAX_MODEL_NAME]
        self.budget_usd = budget
        self.usage: Usage | None = None
        self.finished = False

    def add_usage(self, usage: Usage) -> None:
        self.usage = usage

    def queued(self, seconds: float, *, refused: bool = False) -> None:
        """The run waited ``seconds`` for a server run slot (and got none: ``refused``)."""
        self.accountant.metrics.queued(seconds)
        if refused:
            self.accountant.metrics.refused("max_concurrency")

    def finish(self, error: ClawrapError | None = None, *, upstream: bool = False) -> None:
        """Record the run and free its slot. Only the first call counts."""
        if self.finished:
            return
        self.finished = True
        self.accountant._finish(self, error, upstream)


class Accountant:
    """Keys, limits, ledger and metrics of one server.

    ``clock``: monotonic seconds for the per-minute windows (the server's is trio's).
    ``now``: the UTC wall clock that days and months are counted in.
    """

    def __init__(
        self,
        keys: KeyRing,
        ledger: Ledger,
        *,
        clock: Callable[[], float],
        now: Callable[[], dt.datetime] = utc_now,
        limiter: Limiter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.keys = keys
        self.ledger = ledger
        self.now = now
        self.limiter = limiter or Limiter(clock)
        self.metrics = metrics or Metrics()

    def identify(self, candidates: Iterable[str]) -> Identity | None:
        return self.keys.identify(candidates)

    def spent(self, identity: Identity) -> Spent:
        tokens, usd_today, usd_month = self.ledger.spent(identity.name, self._day())
        return Spent(tokens, usd_today, usd_month)

    def admit(self, identity: Identity, models: tuple[str, ...], *, agent: bool) -> Run:
        """A run of ``models[0]`` (its other names after it) for ``identity``, or a
        ClawrapError naming the limit that refuses it."""
        limits = identity.limits
        refusal = check_access(identity, models, agent) or self.limiter.hit_rate(identity)
        spent: Spent | None = None
        if refusal is None and (
            limits.tokens_per_day or limits.usd_per_day or limits.usd_per_month
        ):
            spent = self.spent(identity)
            refusal = check_spend(identity, spent, self.now())
        if refusal is None:
            refusal = self.limiter.start_run(identity)
        if refusal is not None:
            self.metrics.refused(refusal.limit)
            raise _error(refusal)
        budget = remaining_budget(identity, spent) if spent is not None else None
        return Run(self, identity, models[0], budget)

    def _day(self) -> str:
        return self.now().strftime("%Y-%m-%d")

    def _finish(self, run: Run, error: ClawrapError | None, upstream: bool) -> None:
        self.limiter.end_run(run.identity)
        self.ledger.record(run.identity.name, run.model, self._day(), run.usage, error is not None)
        self.metrics.run_finished(run.model, run.usage, error, upstream=upstream)


def _error(refusal: Refusal) -> ClawrapError:
    kind: ErrorKind = "rate_limit"
    if refusal.status == 403:
        kind = "permission"
    elif refusal.status == 503:
        kind = "overloaded"
    return ClawrapError(
        kind,
        f"{refusal.message} (limit: {refusal.limit})",
        status=refusal.status,
        code=refusal.limit,
        retry_after=refusal.retry_after,
    )


__all__ = ["Accountant", "Run", "utc_now"]
