"""Prometheus metrics (``prometheus-client``), in a registry of the server's own.

Counted as things happen: requests by route, status and model; time to first
token and whole duration by route; tokens by model and kind, cost by model; runs
refused by limit; upstream errors by kind; time spent queued for a run slot.
Read when scraped (:meth:`Metrics.watch`): the process pool (warm, busy, parked,
starting, and spawns so far) and the queue (requests waiting for a run slot); per
model (:meth:`Metrics.watch_models`): attempts, answers, overloads, retries,
fallbacks and the circuit breaker's state.

Labels only take bounded values: routes are the router's own paths (``other`` for
unknown ones) and models the ones the server serves, so a hostile client cannot
grow the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from clawrap.core._errors import ClawrapError
from clawrap.core._events import Usage

CONTENT_TYPE = CONTENT_TYPE_LATEST
POOL_STATES = ("warm", "busy", "parked", "starting")
LIMITS = (
    "requests_per_minute",
    "concurrent_runs",
    "tokens_per_day",
    "usd_per_day",
    "usd_per_month",
    "models",
    "agent",
    "max_concurrency",
)
# Seconds: from a warm first token (~20 ms) to a long agent run.
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class _Snapshot(Collector):
    """Gauges read at scrape time from ``read()``."""

    def __init__(self, read: Callable[[], Mapping[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        status = self.read()
        pool = GaugeMetricFamily(
            "clawrap_pool_processes", "CLI processes in the pool by state", labels=["state"]
        )
        for state in POOL_STATES:
            pool.add_metric([state], float(status.get(state, 0) or 0))
        yield pool
        yield CounterMetricFamily(
            "clawrap_pool_spawns", "CLI processes started", value=float(status.get("spawned", 0))
        )
        yield GaugeMetricFamily(
            "clawrap_queue_depth",
            "Requests waiting for a run slot",
            value=float(status.get("queued", 0)),
        )
        yield GaugeMetricFamily(
            "clawrap_runs_in_progress",
            "Runs holding a run slot",
            value=float(status.get("running", 0)),
        )


BREAKER_STATES = ("closed", "open", "half_open")
# Per-model counters of the retry layer, as ``GET /v1/models/status`` names them.
MODEL_COUNTERS = {
    "attempts": "Runs started on the model, retries included",
    "answered": "Runs the model answered",
    "overloads": "Runs that met an overload or rate limit upstream",
    "retries": "Runs started again after an overload",
    "fallbacks_to": "Requests another model could not serve, answered by this one",
    "refused_open": "Attempts skipped because the model's circuit breaker was open",
}


class _Models(Collector):
    """Per-model retry counters and circuit breakers, read at scrape time from ``read()``.

    ``read`` returns what ``GET /v1/models/status`` shows; ``label`` bounds the model names.
    """

    def __init__(
        self, read: Callable[[], Mapping[str, Mapping[str, Any]]], label: Callable[[str], str]
    ) -> None:
        self.read = read
        self.label = label

    def describe(self) -> Iterator[Metric]:
        """The families without reading ``read()``: registering must not call it (it may
        need the event loop)."""
        return self._families({})

    def collect(self) -> Iterator[Metric]:
        return self._families(self.read())

    def _families(self, models: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
        counters = {
            name: CounterMetricFamily(f"clawrap_model_{name}", text, labels=["model"])
            for name, text in MODEL_COUNTERS.items()
        }
        state = GaugeMetricFamily(
            "clawrap_breaker_state",
            "1 for the state each model's circuit breaker is in",
            labels=["model", "state"],
        )
        opens = CounterMetricFamily(
            "clawrap_breaker_opens", "Times a model's circuit breaker opened", labels=["model"]
        )
        summed: dict[str, dict[str, float]] = {}
        states: dict[str, str] = {}
        for model, status in models.items():
            label = self.label(model)
            row = summed.setdefault(label, {})
            for name in (*MODEL_COUNTERS, "opens"):
                value = status.get(name, status.get("breaker", {}).get(name, 0))
                row[name] = row.get(name, 0.0) + float(value or 0)
            breaker = status.get("breaker", {})
            if states.get(label) in (None, "closed") or breaker.get("state") == "open":
                states[label] = str(breaker.get("state", "closed"))
        for label, row in summed.items():
            for name, family in counters.items():
                family.add_metric([label], row[name])
            opens.add_metric([label], row["opens"])
            for each in BREAKER_STATES:
                state.add_metric([label, each], 1.0 if states[label] == each else 0.0)
        yield from counters.values()
        yield state
        yield opens


class Metrics:
    """The server's metrics; :meth:`render` is the body of ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "clawrap_requests", "HTTP requests", ["route", "status", "model"], registry=r
        )
        self.first_token = Histogram(
            "clawrap_first_token_seconds",
            "Time from request to first content",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "clawrap_request_duration_seconds",
            "Time from request to end of response",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "clawrap_tokens", "Tokens used, by model and kind", ["model", "kind"], registry=r
        )
        self.cost = Counter(
            "clawrap_cost_usd", "Cost in USD (the SDK's figure)", ["model"], registry=r
        )
        self.refusals = Counter(
            "clawrap_rate_limit_refusals",
            "Requests refused by a key's limit",
            ["limit"],
            registry=r,
        )
        for limit in LIMITS:
            # Present from the start, at zero, so a dashboard's rate() has a series.
            self.refusals.labels(limit)
        self.upstream_errors = Counter(
            "clawrap_upstream_errors",
            "Runs that failed upstream or in the CLI",
            ["kind"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "clawrap_queue_wait_seconds",
            "Time a run waited for a run slot",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def watch(self, read: Callable[[], Mapping[str, Any]]) -> None:
        """Report the pool and queue gauges from ``read()`` at each scrape."""
        self.registry.register(_Snapshot(read))

    def watch_models(
        self,
        read: Callable[[], Mapping[str, Mapping[str, Any]]],
        label: Callable[[str], str],
    ) -> None:
        """Report per-model retry counters and breaker states from ``read()`` at each scrape."""
        self.registry.register(_Models(read, label))

    def request_done(
        self,
        route: str,
        status: int,
        model: str | None,
        duration: float,
        first_token: float | None,
    ) -> None:
        self.requests.labels(route, str(status), model or "").inc()
        self.duration.labels(route).observe(duration)
        if first_token is not None:
            self.first_token.labels(route).observe(first_token)

    def refused(self, limit: str) -> None:
        self.refusals.labels(limit).inc()

    def queued(self, seconds: float) -> None:
        self.queue_wait.observe(seconds)

    def run_finished(
        self, model: str, usage: Usage | None, error: ClawrapError | None, *, upstream: bool
    ) -> None:
        if usage is not None:
            for kind, count in (
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
                ("cache_read", usage.cache_read_input_tokens),
                ("cache_write", usage.cache_creation_input_tokens),
            ):
                self.tokens.labels(model, kind).inc(count)
            self.cost.labels(model).inc(usage.cost_usd or 0.0)
        if error is not None and upstream:
            self.upstream_errors.labels(error.code or error.kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "POOL_STATES", "Metrics"]
