"""Completion requests through the app: bodies, limits, the client leaving, errors in shape."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from asgi_fakes import AsgiCall, FakeDialect, call, http_scope, start_call
from scripted_backend import ScriptedBackend

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Finished, TextDelta, Usage
from clawrap.http._app import App, create_app

HELLO = [TextDelta("Hello"), Usage(3, 1), Finished("end_turn")]


def fake_app(backend: ScriptedBackend, **settings: object) -> App:
    fake = FakeDialect()
    return create_app(Settings(**settings), backend, dialects={"openai": fake, "anthropic": fake})  # type: ignore[arg-type]


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(HELLO)


@pytest.fixture
def app(backend: ScriptedBackend) -> App:
    return fake_app(backend, max_body_bytes=1000)


# -- bodies ---------------------------------------------------------------------------------------


async def test_malformed_json_is_400(app: App) -> None:
    response = await call(app, "POST", "/v1/chat/completions", body=b'{"text": ')
    assert response.status == 400
    assert "not valid JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"null", b"3"])
async def test_json_that_is_not_an_object_is_400(app: App, body: bytes) -> None:
    response = await call(app, "POST", "/v1/chat/completions", body=body)
    assert response.status == 400
    assert "JSON object" in response.json()["error"]["message"]


async def test_invalid_utf8_is_400(app: App) -> None:
    response = await call(app, "POST", "/v1/messages", body=b'{"text": "\xff"}')
    assert response.status == 400


async def test_nan_is_not_json(app: App) -> None:
    response = await call(app, "POST", "/v1/chat/completions", body=b'{"text": NaN}')
    assert response.status == 400


async def test_a_declared_length_over_the_limit_is_413_before_reading(app: App) -> None:
    asgi = AsgiCall([])  # no body is ever sent: the answer must not wait for one
    headers = {"content-length": "5000"}
    with trio.fail_after(5):
        await app(http_scope("POST", "/v1/chat/completions", headers), asgi.receive, asgi.send)
    assert asgi.response is not None and asgi.response.status == 413


async def test_a_chunked_body_over_the_limit_is_413(app: App, backend: ScriptedBackend) -> None:
    body = b'{"text": "' + b"x" * 2000 + b'"}'
    response = await call(app, "POST", "/v1/chat/completions", body=body, chunks=10)
    assert response.status == 413
    assert backend.runs == 0


async def test_a_body_longer_than_its_content_length_is_still_limited(app: App) -> None:
    body = b'{"text": "' + b"x" * 2000 + b'"}'
    response = await call(
        app, "POST", "/v1/chat/completions", body=body, headers={"content-length": "10"}
    )
    assert response.status == 413


async def test_a_chunked_body_within_the_limit_is_read_whole(app: App) -> None:
    response = await call(app, "POST", "/v1/chat/completions", body=b'{"text": "hi"}', chunks=4)
    assert response.status == 200


async def test_a_decoder_error_is_rendered_by_the_dialect(app: App) -> None:
    response = await call(app, "POST", "/v1/chat/completions", json_body={"text": 5})
    assert response.status == 400
    assert response.json()["error"]["kind"] == "invalid_request"


# -- completions -----------------------------------------------------------------------------------


async def test_a_streamed_completion_goes_through_the_exchange(app: App) -> None:
    response = await call(app, "POST", "/v1/messages", json_body={"stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "x-request-id" in response.headers
    assert response.text.endswith("finish end_turn\nend\n")


async def test_an_error_before_output_gets_status_body_and_retry_after() -> None:
    error = ClawrapError("rate_limit", "Claude usage limit reached.", retry_after=12.5)
    app = fake_app(ScriptedBackend(error=error, error_first=True))
    response = await call(app, "POST", "/v1/chat/completions", json_body={"stream": True})
    assert response.status == 429
    assert response.headers["retry-after"] == "13"
    assert response.json()["error"]["message"] == "Claude usage limit reached."


async def test_an_error_after_output_ends_the_stream_with_an_error_event() -> None:
    error = ClawrapError("api_error", "Upstream failed.")
    app = fake_app(ScriptedBackend([TextDelta("part")], error=error))
    response = await call(app, "POST", "/v1/chat/completions", json_body={"stream": True})
    assert response.status == 200
    assert response.text == "start\ntext part\nerror api_error Upstream failed.\nend\n"


async def test_a_disconnect_mid_stream_cancels_the_backend_and_leaves_no_task() -> None:
    backend = ScriptedBackend([TextDelta("first")], hang=True, ignore_halt=True)
    app = fake_app(backend)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            asgi = await start_call(
                nursery, app, "POST", "/v1/chat/completions", json_body={"stream": True}
            )
            await asgi.wait_for_body(b"first")
            asgi.disconnect()
            await asgi.finished.wait()
        # The nursery closed: every task the request started has ended.
    assert backend.cancelled == 1 and backend.active == 0


async def test_the_concurrency_cap_holds_across_requests() -> None:
    backend = ScriptedBackend([0.01, *HELLO])
    app = fake_app(backend, max_concurrency=2)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            calls = [
                await start_call(nursery, app, "POST", "/v1/chat/completions", json_body={})
                for _ in range(5)
            ]
    assert backend.max_active == 2
    assert all(c.response is not None and c.response.status == 200 for c in calls)


async def test_a_deadline_gives_504(autojump_clock: trio.testing.MockClock) -> None:
    app = fake_app(ScriptedBackend([], hang=True), request_timeout=3)
    response = await call(app, "POST", "/v1/chat/completions", json_body={})
    assert response.status == 504


async def test_shutdown_ends_a_running_stream_properly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = fake_app(ScriptedBackend([TextDelta("a")], hang=True, ignore_halt=True))
    async with trio.open_nursery() as nursery:
        asgi = await start_call(
            nursery, app, "POST", "/v1/chat/completions", json_body={"stream": True}
        )
        await asgi.wait_for_body(b"text a")
        app.begin_shutdown()
        await asgi.finished.wait()
    assert asgi.response is not None and asgi.response.complete
    assert "error overloaded" in asgi.response.text


async def test_lifespan_startup_and_shutdown_are_acknowledged(app: App) -> None:
    asgi = AsgiCall([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    with trio.fail_after(5):
        await app({"type": "lifespan"}, asgi.receive, asgi.send)
    assert [m["type"] for m in asgi.sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert app.shutdown.is_set()
