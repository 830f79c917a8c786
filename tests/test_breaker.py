"""The circuit breaker and the retry runner on trio's clock (no real time passes).

The breaker is sans-IO and takes the time; here it is trio's autojumping mock clock.
The runner is driven with a backend that fails as told, so every retry, fallback
and breaker transition is counted exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from clawrap.core._breaker import CircuitBreaker, backoff
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event, Finished, TextDelta, Usage
from clawrap.core._request import CompletionRequest, TextPart, Turn
from clawrap.http._upstream_retry import UpstreamRetries


def now() -> float:
    return trio.current_time()


async def test_opens_after_repeated_overloads_and_refuses_until_the_cooldown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(threshold=3, cooldown=30.0)
    for _ in range(2):
        assert breaker.allow(now())
        breaker.overloaded(now())
    assert breaker.state(now()) == "closed"
    breaker.overloaded(now())
    assert breaker.state(now()) == "open" and not breaker.allow(now())
    assert breaker.retry_after(now()) == pytest.approx(30.0)
    await trio.sleep(29.0)
    assert not breaker.allow(now())
    await trio.sleep(1.0)
    assert breaker.state(now()) == "half_open"


async def test_half_open_lets_one_probe_through_and_its_success_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(threshold=1, cooldown=10.0)
    breaker.overloaded(now())
    await trio.sleep(10.0)
    assert breaker.allow(now())  # the probe
    assert not breaker.allow(now())  # only one
    breaker.success(now())
    assert breaker.state(now()) == "closed" and breaker.allow(now())


async def test_a_failed_probe_opens_again_for_a_cooldown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(threshold=1, cooldown=10.0)
    breaker.overloaded(now())
    await trio.sleep(10.0)
    assert breaker.allow(now())
    breaker.overloaded(now())
    assert breaker.state(now()) == "open" and breaker.opens == 1
    await trio.sleep(10.0)
    assert breaker.allow(now())


async def test_never_stuck_half_open(autojump_clock: trio.testing.MockClock) -> None:
    breaker = CircuitBreaker(threshold=1, cooldown=10.0, probe_limit=60.0)
    breaker.overloaded(now())
    await trio.sleep(10.0)
    assert breaker.allow(now())
    breaker.abandoned(now())  # the probe was cancelled: the next caller probes
    assert breaker.allow(now())
    # This probe never reports at all: after probe_limit another one is let through.
    await trio.sleep(59.0)
    assert not breaker.allow(now())
    await trio.sleep(1.0)
    assert breaker.allow(now())


def test_backoff_is_full_jitter_capped() -> None:
    assert backoff(0, uniform=lambda a, b: b) == 0.5
    assert backoff(3, uniform=lambda a, b: b) == 4.0
    assert backoff(50, uniform=lambda a, b: b) == 8.0
    assert backoff(2, uniform=lambda a, b: a) == 0.0


# -- the runner


def overloaded() -> ClawrapError:
    return ClawrapError("overloaded", "overloaded", code="upstream_overloaded")


@dataclass
class FlakyBackend:
    """Fails with ``errors[model]`` (in turn, the last repeating) before any output."""

    errors: dict[str, list[ClawrapError | None]]
    calls: list[str] = field(default_factory=list)

    async def run(
        self, request: CompletionRequest, events: trio.MemorySendChannel[Event], halt: trio.Event
    ) -> None:
        self.calls.append(request.model)
        script = self.errors.get(request.model, [None])
        error = script[min(len([m for m in self.calls if m == request.model]) - 1, len(script) - 1)]
        if error is not None:
            # As the CLI backend does: a failed turn's usage goes out just before its error.
            await events.send(Usage(input_tokens=1, output_tokens=0))
            raise error
        await events.send(TextDelta(f"from {request.model}"))
        await events.send(Finished("stop"))

    async def aclose(self) -> None:
        pass

    def status(self) -> dict[str, object]:
        return {}


def request(model: str = "sonnet") -> CompletionRequest:
    return CompletionRequest(model, model, (Turn("user", (TextPart("hi"),)),))


async def run(
    retries: UpstreamRetries, backend: FlakyBackend, deadline: float = 600.0
) -> tuple[str, list[Event], list[str]]:
    send, receive = trio.open_memory_channel[Event](math.inf)
    seen: list[str] = []
    with trio.fail_after(deadline):
        model = await retries.run(backend, request(), send, trio.Event(), seen.append)
    send.close()
    return model, [e async for e in receive], seen


async def test_overloads_are_retried_and_counted_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    retries = UpstreamRetries(Settings(upstream_retries=3))
    backend = FlakyBackend({"sonnet": [overloaded(), overloaded(), overloaded(), None]})
    model, events, seen = await run(retries, backend)
    assert model == "sonnet" and seen == ["sonnet"]
    assert events == [TextDelta("from sonnet"), Finished("stop")]
    counters = retries.status()["sonnet"]
    assert counters["attempts"] == 4 and counters["retries"] == 3
    assert counters["overloads"] == 3 and counters["answered"] == 1
    assert backend.calls == ["sonnet"] * 4


async def test_a_model_always_overloaded_falls_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    retries = UpstreamRetries(Settings(upstream_retries=1, fallback_models=("haiku",)))
    backend = FlakyBackend({"sonnet": [overloaded()]})
    model, events, seen = await run(retries, backend)
    assert model == "haiku" and seen == ["haiku"]
    assert events[0] == TextDelta("from haiku")
    assert backend.calls == ["sonnet", "sonnet", "haiku"]
    assert retries.status()["haiku"]["fallbacks_to"] == 1


async def test_an_open_breaker_skips_the_model_until_its_probe(
    autojump_clock: trio.testing.MockClock,
) -> None:
    settings = Settings(
        upstream_retries=0, fallback_models=("haiku",), breaker_threshold=2, breaker_cooldown=30.0
    )
    retries = UpstreamRetries(settings)
    backend = FlakyBackend({"sonnet": [overloaded(), overloaded(), None]})
    for _ in range(2):
        assert (await run(retries, backend))[0] == "haiku"
    assert retries.status()["sonnet"]["breaker"]["state"] == "open"
    calls = len(backend.calls)
    assert (await run(retries, backend))[0] == "haiku"
    assert backend.calls[calls:] == ["haiku"]  # sonnet skipped without a call
    await trio.sleep(30.0)
    assert (await run(retries, backend))[0] == "sonnet"  # the probe succeeds
    assert retries.status()["sonnet"]["breaker"]["state"] == "closed"


async def test_other_errors_and_an_exhausted_chain_reach_the_client(
    autojump_clock: trio.testing.MockClock,
) -> None:
    retries = UpstreamRetries(Settings(upstream_retries=2))
    bad = ClawrapError("invalid_request", "bad", code="upstream_invalid_request")
    backend = FlakyBackend({"sonnet": [bad]})
    with pytest.raises(ClawrapError) as caught:
        await run(retries, backend)
    assert caught.value is bad and backend.calls == ["sonnet"]
    backend = FlakyBackend({"sonnet": [overloaded()]})
    send, receive = trio.open_memory_channel[Event](math.inf)
    with pytest.raises(ClawrapError) as caught:
        await UpstreamRetries(Settings(upstream_retries=2)).run(
            backend, request(), send, trio.Event()
        )
    assert caught.value.code == "upstream_overloaded" and backend.calls == ["sonnet"] * 3
    send.close()
    # Only the last attempt's usage is passed on, for the accounting of the failure.
    assert [e async for e in receive] == [Usage(input_tokens=1, output_tokens=0)]


async def test_no_retry_that_would_outlast_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = FlakyBackend({"sonnet": [overloaded()]})
    with pytest.raises(ClawrapError):
        # Less time left than a retry needs: one attempt only.
        await run(UpstreamRetries(Settings(upstream_retries=5)), backend, deadline=1.0)
    assert backend.calls == ["sonnet"]
