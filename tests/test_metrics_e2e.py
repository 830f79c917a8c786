"""``GET /metrics`` after a mixed load equals what was sent; the Grafana dashboard's metrics exist.

Real clients, the real SDK and CLI against the scripted model; the exposition is read back
with ``prometheus_client.parser``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import trio
from e2e import TEST_LIMIT, Clawrap, in_thread, serving_claude, start_upstream
from prometheus_client.parser import text_string_to_metric_families

from clawrap.accounting._keys import add_key
from clawrap.core._config import Settings
from clawrap.scripted._model import Reply

pytestmark = pytest.mark.e2e

DASHBOARD = Path(__file__).parent.parent / "contrib" / "grafana" / "clawrap.json"
METRICS_KEY = "metrics-only-key"
PRICED = '[[mock:{"text": "priced reply", "input_tokens": 1000, "output_tokens": 100}]]'


@pytest.fixture
async def server(
    nursery: trio.Nursery, tmp_path: Path
) -> AsyncIterator[tuple[Clawrap, dict[str, str]]]:
    path = tmp_path / "keys.toml"
    keys = {"user": add_key(path, "user"), "slow": add_key(path, "slow", requests_per_minute=1)}
    settings = Settings(
        port=0,
        pool_size=1,
        upstream_retries=0,
        data_dir=tmp_path / "data",
        keys_file=str(path),
        metrics_key=METRICS_KEY,
    )
    with trio.fail_after(TEST_LIMIT):
        upstream = await start_upstream(nursery)
    async with serving_claude(nursery, tmp_path, upstream, settings) as running:
        yield running, keys


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: Clawrap, key: str) -> tuple[str, Samples]:
    response = httpx.get(
        server.url + "/metrics", headers={"authorization": f"Bearer {key}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return response.text, samples


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


async def test_metrics_after_a_mixed_load_equal_what_was_sent(
    server: tuple[Clawrap, dict[str, str]],
) -> None:
    clawrap, keys = server
    clawrap.model.when("UPSTREAM-FAIL", Reply(status=500, error_type="api_error", message="no"))
    sent = {"input": 0, "output": 0}

    def load() -> None:
        with clawrap.openai(api_key=keys["user"]) as client:
            for i in range(3):
                answer = client.chat.completions.create(
                    model="sonnet", messages=[{"role": "user", "content": f"{i} {PRICED}"}]
                )
                assert answer.usage is not None
                sent["input"] += answer.usage.prompt_tokens
                sent["output"] += answer.usage.completion_tokens
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(
                    model="gpt-9", messages=[{"role": "user", "content": "x"}]
                )
            with pytest.raises(openai.APIStatusError):
                client.chat.completions.create(
                    model="sonnet", messages=[{"role": "user", "content": "UPSTREAM-FAIL"}]
                )
        with clawrap.anthropic(api_key=keys["user"]) as client:
            for i in range(2):
                with client.messages.stream(
                    model="haiku",
                    max_tokens=50,
                    messages=[{"role": "user", "content": f"{i} {PRICED}"}],
                ) as stream:
                    final = stream.get_final_message()
                sent["input"] += final.usage.input_tokens
                sent["output"] += final.usage.output_tokens
        with clawrap.anthropic(api_key=keys["slow"]) as client:
            client.messages.create(
                model="haiku", max_tokens=5, messages=[{"role": "user", "content": "a"}]
            )
            with pytest.raises(anthropic.RateLimitError):
                client.messages.create(
                    model="haiku", max_tokens=5, messages=[{"role": "user", "content": "b"}]
                )

    with trio.fail_after(TEST_LIMIT):
        await in_thread(load)
        _, samples = await in_thread(lambda: scrape(clawrap, METRICS_KEY))
    chat, messages = "/v1/chat/completions", "/v1/messages"
    assert total(samples, "clawrap_requests_total", route=chat, status="200", model="sonnet") == 3
    assert total(samples, "clawrap_requests_total", route=chat, status="404") == 1
    assert total(samples, "clawrap_requests_total", route=chat, status="502") == 1
    assert (
        total(samples, "clawrap_requests_total", route=messages, status="200", model="haiku") == 3
    )
    assert total(samples, "clawrap_requests_total", route=messages, status="429") == 1
    assert total(samples, "clawrap_rate_limit_refusals_total", limit="requests_per_minute") == 1
    assert total(samples, "clawrap_upstream_errors_total") == 1
    assert total(samples, "clawrap_tokens_total", kind="input") >= sent["input"]
    # The slow key's one answered request is the only usage not summed above.
    assert total(samples, "clawrap_tokens_total", kind="output") > sent["output"]
    assert total(samples, "clawrap_cost_usd_total", model="sonnet") > 0
    assert total(samples, "clawrap_first_token_seconds_count", route=chat) == 3
    assert total(samples, "clawrap_request_duration_seconds_count", route=messages) == 4
    assert total(samples, "clawrap_queue_wait_seconds_count") == 7  # every admitted run
    assert total(samples, "clawrap_pool_spawns_total") >= 1
    assert {ls for (n, ls) in samples if n == "clawrap_pool_processes"} == {
        (("state", s),) for s in ("warm", "busy", "parked", "starting")
    }
    assert total(samples, "clawrap_queue_depth") == 0
    # The metrics key opens /metrics only; a wrong key opens nothing.
    wrong = await in_thread(
        lambda: httpx.get(clawrap.url + "/metrics", headers={"x-api-key": "no"})
    )
    assert wrong.status_code == 401
    other = await in_thread(
        lambda: httpx.get(clawrap.url + "/v1/models", headers={"x-api-key": METRICS_KEY})
    )
    assert other.status_code == 401
    # Any valid key reads the metrics too.
    await in_thread(lambda: scrape(clawrap, keys["user"]))


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def declared(text: str) -> set[str]:
    """The sample names each family in ``text`` declares (with or without samples)."""
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    names: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names |= set(re.findall(r"\bclawrap_[a-z_]+", target["expr"]))
    return names


async def test_every_metric_the_dashboard_queries_is_served(
    server: tuple[Clawrap, dict[str, str]],
) -> None:
    clawrap, keys = server
    with trio.fail_after(TEST_LIMIT):
        await in_thread(
            lambda: clawrap.openai(api_key=keys["user"]).chat.completions.create(
                model="sonnet", messages=[{"role": "user", "content": PRICED}]
            )
        )
        text, samples = await in_thread(lambda: scrape(clawrap, METRICS_KEY))
    # A labelled counter with no sample yet (no upstream error so far) is still declared.
    served = {name for name, _ in samples} | declared(text)
    wanted = dashboard_metrics()
    assert len(wanted) >= 10
    assert wanted <= served, wanted - served
