"""The accountant: identifies keys, admits runs within their limits, records what they used.

The HTTP shell calls :meth:`Accountant.identify` with the keys a request presents,
:meth:`Accountant.admit` before a completion runs (a refusal is a
:class:`~clawrap.core._errors.ClawrapError` naming the limit, 403 or 429 with
``retry_after``), feeds the :class:`Run` the usage the backend reports, and awaits
:meth:`Run.finish` once when the run is over, however it ended: the run is then
in the ledger and the metrics, and its concurrency slot is free. The ledger's
reads and writes run off the event loop; the write at the end is shielded from
cancellation and bounded by :data:`LEDGER_WRITE_LIMIT`, so a run is recorded even
when its request is being torn down, and a stuck database holds no request long.

A key with a USD ceiling gets :attr:`Run.budget_usd`, what it may still spend
today and this month, to bound an agent run in flight (the SDK's ``max_budget_usd``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable

import trio

from clawrap.accounting._keys import Identity, KeyRing
from clawrap.accounting._ledger import Ledger, LedgerError
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
LEDGER_WRITE_LIMIT = 10.0  # seconds a finished run's ledger write may take

log = logging.getLogger("clawrap.accounting")


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

    async def finish(self, error: ClawrapError | None = None, *, upstream: bool = False) -> None:
        """Free the run's slot and record it. Only the first call counts."""
        if self.finished:
            return
        self.finished = True
        await self.accountant._finish(self, error, upstream)


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

    async def spent(self, identity: Identity) -> Spent:
        try:
            tokens, usd_today, usd_month = await self.ledger.spent(identity.name, self._day())
        except LedgerError as exc:
            log.error("%s", exc)
            raise ClawrapError(
                "api_error",
                "The usage ledger cannot be read, so a spend limit cannot be checked; "
                "the server log has the details.",
                status=503,
                code="ledger_unavailable",
            ) from None
        return Spent(tokens, usd_today, usd_month)

    async def admit(self, identity: Identity, models: tuple[str, ...], *, agent: bool) -> Run:
        """A run of ``models[0]`` (its other names after it) for ``identity``, or a
        ClawrapError naming the limit that refuses it."""
        limits = identity.limits
        refusal = check_access(identity, models, agent) or self.limiter.hit_rate(identity)
        spent: Spent | None = None
        if refusal is None and (
            limits.tokens_per_day or limits.usd_per_day or limits.usd_per_month
        ):
            spent = await self.spent(identity)
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

    async def _finish(self, run: Run, error: ClawrapError | None, upstream: bool) -> None:
        self.limiter.end_run(run.identity)
        self.metrics.run_finished(run.model, run.usage, error, upstream=upstream)
        day = self._day()
        with trio.move_on_after(LEDGER_WRITE_LIMIT) as bound:
            bound.shield = True
            try:
                await self.ledger.record(
                    run.identity.name, run.model, day, run.usage, error is not None
                )
            except LedgerError as exc:
                log.error("a run of key %s was not recorded: %s", run.identity.name, exc)
        if bound.cancelled_caught:
            log.error("a run of key %s was not recorded in time", run.identity.name)


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


__all__ = ["LEDGER_WRITE_LIMIT", "Accountant", "Run", "utc_now"]
