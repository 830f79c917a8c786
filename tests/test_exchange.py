"""The exchange: one decoded request through the backend to the client, every way it can end."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import trio
import trio.testing
from asgi_fakes import AsgiCall, FakeDialect, Response, simple_request
from scripted_backend import ScriptedBackend

import clawrap.protocol._output_pipeline as output_pipeline
from clawrap.core._backend import HALT_GRACE
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event, Finished, TextDelta, Usage
from clawrap.core._request import CompletionRequest, ResponseFormat
from clawrap.http._exchange import HALT_LIMIT, KEEPALIVE_INTERVAL, SHUTDOWN_GRACE, run_exchange
from clawrap.http._request_log import RequestRecord

HELLO = [TextDelta("Hel"), TextDelta("lo"), Usage(3, 2), Finished("end_turn")]


def settings(**overrides: Any) -> Settings:
    return Settings(**overrides)


class Run:
    """One exchange in flight, with the client's side of it."""

    def __init__(self, request: CompletionRequest, backend: ScriptedBackend) -> None:
        self.request = request
        self.backend = backend
        self.asgi = AsgiCall([])
        self.done = trio.Event()
        self.record = RequestRecord("POST", "/fake", "req_test")

    @property
    def response(self) -> Response:
        assert self.asgi.response is not None
        return self.asgi.response


async def start(
    nursery: trio.Nursery,
    backend: ScriptedBackend,
    request: CompletionRequest,
    *,
    config: Settings | None = None,
    limiter: trio.CapacityLimiter | None = None,
    shutdown: trio.Event | None = None,
) -> Run:
    config = config or settings()
    run = Run(request, backend)

    async def go() -> None:
        await run_exchange(
            run.asgi.receive,
            run.asgi.send,
            dialect=FakeDialect(),
            request=request,
            options=None,
            backend=backend,
            settings=config,
            limiter=limiter or trio.CapacityLimiter(config.max_concurrency),
            record=run.record,
            shutdown=shutdown,
        )
        run.done.set()

    nursery.start_soon(go)
    return run


async def exchange(backend: ScriptedBackend, request: CompletionRequest, **kwargs: Any) -> Response:
    async with trio.open_nursery() as nursery:
        run = await start(nursery, backend, request, **kwargs)
    assert run.response.complete
    return run.response


# -- complete replies --------------------------------------------------------------------------


async def test_a_non_streamed_reply_is_one_json_body() -> None:
    response = await exchange(ScriptedBackend(HELLO), simple_request())
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"text": "Hello", "finish": ["end_turn"], "usage": [2]}


async def test_a_streamed_reply_is_sse_with_its_terminator() -> None:
    response = await exchange(ScriptedBackend(HELLO), simple_request(stream=True))
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.text == "start\ntext Hel\ntext lo\nusage 3 2\nfinish end_turn\nend\n"


async def test_the_record_gets_model_usage_and_first_token() -> None:
    async with trio.open_nursery() as nursery:
        run = await start(nursery, ScriptedBackend(HELLO), simple_request(stream=True))
    assert (run.record.model, run.record.input_tokens, run.record.output_tokens) == ("sonnet", 3, 2)
    assert run.record.first_token is not None


async def test_a_reply_without_finish_is_an_error_not_a_silent_end() -> None:
    response = await exchange(ScriptedBackend([TextDelta("x")]), simple_request(stream=True))
    assert response.text.startswith("start\ntext x\nerror api_error")
    assert response.text.endswith("end\n")


# -- errors ------------------------------------------------------------------------------------


async def test_an_error_before_output_becomes_an_http_status_with_retry_after() -> None:
    error = ClawrapError("rate_limit", "Usage limit reached.", retry_after=30)
    backend = ScriptedBackend(error=error, error_first=True)
    response = await exchange(backend, simple_request(stream=True))
    assert response.status == 429
    assert response.headers["retry-after"] == "30"
    assert response.json()["error"] == {
        "kind": "rate_limit",
        "message": "Usage limit reached.",
        "code": None,
    }


async def test_an_error_after_output_becomes_an_error_event_and_terminator() -> None:
    error = ClawrapError("overloaded", "Upstream overloaded.")
    backend = ScriptedBackend([TextDelta("partial")], error=error)
    response = await exchange(backend, simple_request(stream=True))
    assert response.status == 200
    assert response.text == "start\ntext partial\nerror overloaded Upstream overloaded.\nend\n"


async def test_an_unexpected_exception_gives_a_generic_500_without_internal_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = ScriptedBackend(error=RuntimeError("secret /home/user/path"), error_first=True)
    response = await exchange(backend, simple_request())
    assert response.status == 500
    assert "secret" not in response.text
    assert "req_test" in response.json()["error"]["message"]
    assert "secret /home/user/path" in caplog.text  # the server log keeps the details


async def test_a_clawrap_error_inside_an_exception_group_keeps_its_status() -> None:
    group = ExceptionGroup("backend nursery", [ClawrapError("authentication", "Login lost.")])
    response = await exchange(ScriptedBackend(error=group, error_first=True), simple_request())
    assert response.status == 401


# -- time ----------------------------------------------------------------------------------------


async def test_the_request_deadline_gives_504(autojump_clock: trio.testing.MockClock) -> None:
    backend = ScriptedBackend([60.0, *HELLO])
    response = await exchange(
        backend, simple_request(), config=settings(request_timeout=30, idle_timeout=100)
    )
    assert response.status == 504
    assert response.json()["error"]["kind"] == "timeout"
    assert backend.cancelled == 1


async def test_the_deadline_mid_stream_ends_with_an_error_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = ScriptedBackend([TextDelta("a")], hang=True, ignore_halt=True)
    response = await exchange(
        backend, simple_request(stream=True), config=settings(request_timeout=10)
    )
    assert response.status == 200
    assert "error timeout" in response.text
    assert response.text.endswith("end\n")
    assert backend.cancelled == 1


async def test_the_idle_limit_bounds_the_gap_between_events(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = ScriptedBackend([TextDelta("a"), 50.0, TextDelta("b"), Finished("end_turn")])
    response = await exchange(
        backend, simple_request(), config=settings(idle_timeout=20, request_timeout=600)
    )
    assert response.status == 504
    assert response.json()["error"]["code"] == "idle_timeout"
    assert backend.cancelled == 1


async def test_a_quiet_stream_gets_keepalives_and_headers_go_out_with_the_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = ScriptedBackend([KEEPALIVE_INTERVAL * 2.5, *HELLO])
    response = await exchange(backend, simple_request(stream=True))
    assert response.status == 200
    assert response.text.startswith("start\n: keepalive\n: keepalive\ntext Hel\n")


# -- the client leaves -------------------------------------------------------------------------


async def test_a_client_disconnect_mid_stream_cancels_the_backend() -> None:
    backend = ScriptedBackend([TextDelta("first")], hang=True, ignore_halt=True)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            run = await start(nursery, backend, simple_request(stream=True))
            await run.asgi.wait_for_body(b"first")
            run.asgi.disconnect()
            await run.done.wait()
    assert backend.cancelled == 1
    assert backend.active == 0
    assert run.record.disconnected


async def test_a_client_that_stops_reading_does_not_hold_the_run_slot() -> None:
    limiter = trio.CapacityLimiter(1)
    backend = ScriptedBackend(HELLO)
    stuck = trio.Event()
    asgi = AsgiCall([])

    async def blocked_send(message: dict[str, Any]) -> None:
        stuck.set()
        await trio.sleep_forever()  # the client's socket buffer is full and stays full

    async with trio.open_nursery() as nursery:

        async def go() -> None:
            await run_exchange(
                asgi.receive,
                blocked_send,
                dialect=FakeDialect(),
                request=simple_request(stream=True),
                options=None,
                backend=backend,
                settings=settings(),
                limiter=limiter,
            )

        nursery.start_soon(go)
        with trio.fail_after(5):
            await stuck.wait()
            await backend.wait_until(lambda b: b.completed == 1)
            await trio.testing.wait_all_tasks_blocked()
        assert limiter.borrowed_tokens == 0
        asgi.disconnect()


# -- the concurrency cap -----------------------------------------------------------------------


async def test_the_run_after_the_cap_waits_for_a_free_slot() -> None:
    backend = ScriptedBackend([0.01, *HELLO])
    limiter = trio.CapacityLimiter(2)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            runs = [
                await start(nursery, backend, simple_request(), limiter=limiter) for _ in range(3)
            ]
    assert backend.max_active == 2
    assert backend.runs == 3
    assert all(r.response.status == 200 for r in runs)


async def test_a_queued_request_whose_client_left_never_starts_a_run() -> None:
    backend = ScriptedBackend([], hang=True)
    limiter = trio.CapacityLimiter(1)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            first = await start(nursery, backend, simple_request(), limiter=limiter)
            await backend.wait_until(lambda b: b.active == 1)
            queued = await start(nursery, backend, simple_request(), limiter=limiter)
            await trio.testing.wait_all_tasks_blocked()
            queued.asgi.disconnect()
            await queued.done.wait()
            assert backend.runs == 1
            first.asgi.disconnect()
    assert backend.runs == 1
    assert limiter.borrowed_tokens == 0


async def test_a_queue_wait_past_the_limit_gives_429_with_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = ScriptedBackend([], hang=True)
    limiter = trio.CapacityLimiter(1)
    config = settings(queue_timeout=5, max_concurrency=1)
    async with trio.open_nursery() as nursery:
        first = await start(nursery, backend, simple_request(), limiter=limiter, config=config)
        await backend.wait_until(lambda b: b.active == 1)
        queued = await start(nursery, backend, simple_request(), limiter=limiter, config=config)
        await queued.done.wait()
        first.asgi.disconnect()
    assert queued.response.status == 429
    assert "retry-after" in queued.response.headers
    assert queued.response.json()["error"]["kind"] == "rate_limit"
    assert backend.runs == 1


# -- stopping early --------------------------------------------------------------------------


class StopAfter:
    """A stand-in output limiter: ends the reply after ``n`` text deltas."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.finished = False

    def feed(self, event: Event) -> list[Event]:
        if isinstance(event, TextDelta) and not self.finished:
            self.n -= 1
            if self.n == 0:
                self.finished = True
                return [event, Finished("stop_sequence", "STOP")]
        return [] if self.finished else [event]

    def close(self) -> list[Event]:
        return []


@pytest.fixture
def stop_after_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output_pipeline, "_make_limiter", lambda request: StopAfter(2))


async def test_when_the_limiter_finishes_halt_reaches_the_backend_and_usage_is_kept(
    stop_after_two: None,
) -> None:
    script = [
        TextDelta("a"),
        TextDelta("b"),
        1.0,
        TextDelta("c"),
        Usage(5, 9),
        Finished("end_turn"),
    ]
    backend = ScriptedBackend(script)
    with trio.fail_after(5):
        response = await exchange(backend, simple_request(stream=True))
    assert response.text == "start\ntext a\ntext b\nusage 5 9\nfinish stop_sequence\nend\n"
    assert backend.halted == 1
    assert backend.cancelled == 0


async def test_a_backend_that_ignores_halt_is_cancelled_after_the_grace(
    stop_after_two: None, autojump_clock: trio.testing.MockClock
) -> None:
    backend = ScriptedBackend([TextDelta("a"), TextDelta("b")], hang=True, ignore_halt=True)
    start_time = trio.current_time()
    response = await exchange(backend, simple_request())
    assert response.json() == {"text": "ab", "finish": ["stop_sequence"], "usage": []}
    assert backend.cancelled == 1
    assert trio.current_time() - start_time == pytest.approx(HALT_LIMIT, abs=0.1)


class UsesItsWholeGrace(ScriptedBackend):
    """Sends its usage only at the very end of its halt grace, as a slow CLI may."""

    async def _on_halt(self, events: Any, rest: Any) -> None:
        self.halted += 1
        await trio.sleep(HALT_GRACE)
        await events.send(Usage(5, 9))


async def test_a_backend_is_never_cut_off_within_its_own_halt_grace(
    stop_after_two: None, autojump_clock: trio.testing.MockClock
) -> None:
    assert HALT_LIMIT > HALT_GRACE
    backend = UsesItsWholeGrace([TextDelta("a"), TextDelta("b"), 1.0, TextDelta("c")])
    response = await exchange(backend, simple_request())
    assert response.json()["usage"] == [9]
    assert (backend.halted, backend.cancelled) == (1, 0)


# -- shutdown --------------------------------------------------------------------------------


async def test_shutdown_ends_a_running_stream_with_an_error_after_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    shutdown = trio.Event()
    backend = ScriptedBackend([TextDelta("a")], hang=True, ignore_halt=True)
    async with trio.open_nursery() as nursery:
        run = await start(nursery, backend, simple_request(stream=True), shutdown=shutdown)
        await run.asgi.wait_for_body(b"text a")
        shutdown.set()
        began = trio.current_time()
        await run.done.wait()
        assert trio.current_time() - began == pytest.approx(SHUTDOWN_GRACE, abs=0.1)
    assert "error overloaded" in run.response.text
    assert run.response.text.endswith("end\n")
    assert backend.cancelled == 1


async def test_shutdown_refuses_a_queued_request_at_once() -> None:
    shutdown = trio.Event()
    backend = ScriptedBackend([], hang=True)
    limiter = trio.CapacityLimiter(1)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            first = await start(nursery, backend, simple_request(), limiter=limiter)
            await backend.wait_until(lambda b: b.active == 1)
            queued = await start(
                nursery, backend, simple_request(), limiter=limiter, shutdown=shutdown
            )
            await trio.testing.wait_all_tasks_blocked()
            shutdown.set()
            await queued.done.wait()
            first.asgi.disconnect()
    assert queued.response.status == 503
    assert backend.runs == 1


async def test_a_stop_sequence_ends_the_reply_and_halts_the_backend() -> None:
    script = [TextDelta("one ST"), TextDelta("OP two"), 1.0, TextDelta("three"), Usage(4, 6)]
    backend = ScriptedBackend([*script, Finished("end_turn")])
    with trio.fail_after(5):
        response = await exchange(backend, simple_request(stream=True, stop=["STOP"]))
    assert response.text == "start\ntext one \nusage 4 6\nfinish stop_sequence\nend\n"
    assert backend.halted == 1


async def test_a_normal_finish_does_not_halt_the_backend() -> None:
    backend = ScriptedBackend(HELLO)
    await exchange(backend, simple_request(stop=["never"]))
    assert (backend.halted, backend.completed) == (0, 1)


async def test_json_mode_strips_a_markdown_fence_around_the_answer() -> None:
    request = dataclasses.replace(simple_request(), response_format=ResponseFormat("json_object"))
    script = [TextDelta('```json\n{"a"'), TextDelta(": 1}\n```"), Finished("end_turn")]
    response = await exchange(ScriptedBackend(script), request)
    assert response.json()["text"] == '{"a": 1}'


async def test_the_disconnect_that_follows_a_complete_response_is_not_a_client_leaving() -> None:
    asgi = AsgiCall([])
    record = RequestRecord("POST", "/fake", "req_test")

    async def send(message: dict[str, Any]) -> None:
        await asgi.send(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            asgi.disconnect()  # what hypercorn does once the response is complete
            await trio.testing.wait_all_tasks_blocked()

    await run_exchange(
        asgi.receive,
        send,
        dialect=FakeDialect(),
        request=simple_request(),
        options=None,
        backend=ScriptedBackend(HELLO),
        settings=settings(),
        limiter=trio.CapacityLimiter(1),
        record=record,
    )
    assert not record.disconnected
