"""Retry, fallback and the circuit breaker end to end: the real CLI against the scripted model.

The CLI itself never retries (clawrap owns retries), so each upstream request the
scripted model records is one attempt clawrap made and counted.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
import trio
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap, in_thread
from prometheus_client.parser import text_string_to_metric_families

from clawrap.scripted._model import Reply

pytestmark = [pytest.mark.e2e, SDK_READER_LEFT_OPEN]

OVERLOADED = Reply(status=529, error_type="overloaded_error", message="Overloaded")


def ask(server: Clawrap, text: str) -> Any:
    with server.openai() as client:
        return client.chat.completions.with_raw_response.create(
            model="sonnet", messages=[{"role": "user", "content": text}]
        )


def metric_samples(server: Clawrap) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``GET /metrics`` as {(sample name, sorted labels): value}."""
    response = httpx.get(server.url + "/metrics", timeout=TEST_LIMIT)
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def models_status(server: Clawrap) -> dict[str, Any]:
    response = httpx.get(server.url + "/v1/models/status", timeout=TEST_LIMIT)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.clawrap(upstream_retries=3)
async def test_three_overloads_then_an_answer_reach_the_client_once(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("RETRY-ME", OVERLOADED, OVERLOADED, OVERLOADED, Reply(text="made it"))
    with trio.fail_after(TEST_LIMIT):
        raw = await in_thread(lambda: ask(clawrap_server, "RETRY-ME"))
        status = await in_thread(lambda: models_status(clawrap_server))
    reply = raw.parse()
    assert reply.choices[0].message.content == "made it"
    assert reply.model == "sonnet" and raw.headers["x-clawrap-model"] == "sonnet"
    # Four upstream calls: three overloads, one answer; nothing retried twice over.
    assert len(clawrap_server.requests("RETRY-ME")) == 4
    sonnet = status["data"]["sonnet"]
    assert sonnet["retries"] == 3 and sonnet["overloads"] == 3 and sonnet["answered"] == 1


@pytest.mark.clawrap(upstream_retries=1, fallback_models=("haiku",), breaker_threshold=4)
async def test_a_model_always_overloaded_is_answered_by_the_fallback_and_its_breaker_opens(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("FALL-BACK", OVERLOADED, model="sonnet")
    clawrap_server.model.when("FALL-BACK", Reply(text="haiku here"), model="haiku")
    with trio.fail_after(TEST_LIMIT):
        for _ in range(2):
            raw = await in_thread(lambda: ask(clawrap_server, "FALL-BACK"))
            assert raw.parse().choices[0].message.content == "haiku here"
            assert raw.parse().model == "haiku" and raw.headers["x-clawrap-model"] == "haiku"
        status = await in_thread(lambda: models_status(clawrap_server))
        assert status["data"]["sonnet"]["breaker"]["state"] == "open"
        sent = len(clawrap_server.requests("FALL-BACK"))
        # Open: the next request goes to the fallback without calling the overloaded model.
        raw = await in_thread(lambda: ask(clawrap_server, "FALL-BACK"))
    assert raw.headers["x-clawrap-model"] == "haiku"
    later = clawrap_server.requests("FALL-BACK")[sent:]
    assert [("haiku" in r.body["model"]) for r in later] == [True]
    # The same story in /metrics, for dashboards and alerts.
    metrics = await in_thread(lambda: metric_samples(clawrap_server))
    sonnet, haiku = (("model", "sonnet"),), (("model", "haiku"),)
    assert metrics["clawrap_breaker_state", (("model", "sonnet"), ("state", "open"))] == 1.0
    assert metrics["clawrap_breaker_state", (("model", "sonnet"), ("state", "closed"))] == 0.0
    assert metrics["clawrap_breaker_opens_total", sonnet] == 1.0
    assert metrics["clawrap_model_refused_open_total", sonnet] >= 1.0
    assert metrics["clawrap_model_fallbacks_to_total", haiku] == 3.0
    assert metrics["clawrap_model_answered_total", haiku] == 3.0


@pytest.mark.clawrap(upstream_retries=0, breaker_threshold=1, breaker_cooldown=0.0)
async def test_the_breaker_half_opens_and_a_good_probe_closes_it(clawrap_server: Clawrap) -> None:
    # No cooldown: the breaker is half-open as soon as it opens; the next call is the probe.
    clawrap_server.model.when("PROBE-ME", OVERLOADED, Reply(text="back"))
    with trio.fail_after(TEST_LIMIT):
        with pytest.raises(openai.APIStatusError) as caught:
            await in_thread(lambda: ask(clawrap_server, "PROBE-ME"))
        assert caught.value.status_code == 503
        status = await in_thread(lambda: models_status(clawrap_server))
        assert status["data"]["sonnet"]["breaker"]["state"] == "half_open"
        assert status["data"]["sonnet"]["breaker"]["opens"] == 1
        raw = await in_thread(lambda: ask(clawrap_server, "PROBE-ME"))
        assert raw.parse().choices[0].message.content == "back"
        status = await in_thread(lambda: models_status(clawrap_server))
    assert status["data"]["sonnet"]["breaker"]["state"] == "closed"
