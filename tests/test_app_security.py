"""The security rules as a client meets them through the app."""

from __future__ import annotations

import pytest
from asgi_fakes import FakeDialect, call
from scripted_backend import ScriptedBackend

from clawrap.core._config import Settings
from clawrap.core._events import Finished, TextDelta
from clawrap.http._app import App, create_app

KEY = "sk-local-0123456789abcdef"
WEB_APP = "http://localhost:3000"


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend([TextDelta("hi"), Finished("end_turn")])


@pytest.fixture
def app(backend: ScriptedBackend) -> App:
    fake = FakeDialect()
    settings = Settings(api_key=KEY, cors_origins=(WEB_APP,))
    return create_app(settings, backend, dialects={"openai": fake, "anthropic": fake})


async def test_a_request_without_the_key_is_401(app: App, backend: ScriptedBackend) -> None:
    response = await call(app, "POST", "/v1/chat/completions", json_body={})
    assert response.status == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert backend.runs == 0


async def test_a_wrong_key_is_401(app: App) -> None:
    headers = {"authorization": "Bearer wrong"}
    response = await call(app, "GET", "/v1/models", headers=headers)
    assert response.status == 401


async def test_the_key_as_bearer_is_accepted(app: App) -> None:
    headers = {"authorization": f"Bearer {KEY}"}
    assert (await call(app, "GET", "/v1/models", headers=headers)).status == 200


async def test_the_key_as_x_api_key_is_accepted(app: App) -> None:
    response = await call(app, "POST", "/v1/messages", json_body={}, headers={"x-api-key": KEY})
    assert response.status == 200


async def test_a_401_under_messages_is_in_anthropic_shape(app: App) -> None:
    body = (await call(app, "POST", "/v1/messages", json_body={})).json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"


async def test_health_needs_no_key(app: App) -> None:
    assert (await call(app, "GET", "/health")).status == 200


async def test_the_landing_page_without_the_key_shows_only_the_notice(app: App) -> None:
    response = await call(app, "GET", "/")
    assert response.status == 401
    assert response.headers["content-type"].startswith("text/html")
    assert "API key required" in response.text


async def test_a_foreign_host_is_refused_before_anything_else(app: App) -> None:
    response = await call(app, "GET", "/health", headers={"host": "rebind.evil.example"})
    assert response.status == 403
    assert response.json()["error"]["code"] == "host_not_allowed"


async def test_a_foreign_origin_is_refused(app: App, backend: ScriptedBackend) -> None:
    headers = {"origin": "https://evil.example", "authorization": f"Bearer {KEY}"}
    response = await call(app, "POST", "/v1/chat/completions", json_body={}, headers=headers)
    assert response.status == 403
    assert "access-control-allow-origin" not in response.headers
    assert backend.runs == 0


async def test_a_configured_origin_gets_cors_headers(app: App) -> None:
    headers = {"origin": WEB_APP, "authorization": f"Bearer {KEY}"}
    response = await call(app, "GET", "/v1/models", headers=headers)
    assert response.status == 200
    assert response.headers["access-control-allow-origin"] == WEB_APP
    assert response.headers["vary"] == "origin"


async def test_requests_without_origin_get_no_cors_headers(app: App) -> None:
    response = await call(app, "GET", "/health")
    assert "access-control-allow-origin" not in response.headers


async def test_a_preflight_from_a_configured_origin_is_answered_without_a_key(app: App) -> None:
    headers = {
        "origin": WEB_APP,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    response = await call(app, "OPTIONS", "/v1/chat/completions", headers=headers)
    assert response.status == 204
    assert response.headers["access-control-allow-origin"] == WEB_APP
    assert "authorization" in response.headers["access-control-allow-headers"]
    assert "POST" in response.headers["access-control-allow-methods"]


async def test_a_preflight_from_a_foreign_origin_is_refused(app: App) -> None:
    headers = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    response = await call(app, "OPTIONS", "/v1/chat/completions", headers=headers)
    assert response.status == 403
