"""Browser pages on other sites cannot drive the server, even with requests that carry no Origin."""

from __future__ import annotations

import pytest
from asgi_fakes import call
from scripted_backend import ScriptedBackend

from clawrap.core._config import Settings
from clawrap.core._events import Finished, TextDelta, Usage
from clawrap.http._app import App, create_app

HELLO = [TextDelta("Hello"), Usage(3, 1), Finished("end_turn")]
BODY = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
ROUTES = ["/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens"]


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(HELLO)


@pytest.fixture
def app(backend: ScriptedBackend) -> App:
    return create_app(Settings(cors_origins=("https://app.example",)), backend)


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_a_request_a_browser_marks_as_from_another_site_is_403(
    app: App, backend: ScriptedBackend, site: str
) -> None:
    headers = {"content-type": "text/plain", "sec-fetch-site": site}
    response = await call(app, "POST", "/v1/chat/completions", json_body=BODY, headers=headers)
    assert response.status == 403
    assert response.json()["error"]["code"] == "cross_site_request"
    assert backend.runs == 0


async def test_a_cross_site_request_from_an_allowed_origin_is_served(
    app: App, backend: ScriptedBackend
) -> None:
    headers = {"sec-fetch-site": "cross-site", "origin": "https://app.example"}
    response = await call(app, "POST", "/v1/chat/completions", json_body=BODY, headers=headers)
    assert response.status == 200


@pytest.mark.parametrize("site", ["same-origin", "none"])
async def test_requests_from_the_servers_own_pages_or_typed_urls_are_served(
    app: App, site: str
) -> None:
    response = await call(app, "GET", "/v1/models", headers={"sec-fetch-site": site})
    assert response.status == 200


async def test_a_request_whose_referer_is_a_foreign_page_is_403(
    app: App, backend: ScriptedBackend
) -> None:
    headers = {"referer": "https://evil.example/page?x=1"}
    response = await call(app, "POST", "/v1/chat/completions", json_body=BODY, headers=headers)
    assert response.status == 403
    assert "evil.example" in response.json()["error"]["message"]
    assert backend.runs == 0


@pytest.mark.parametrize(
    "referer", ["http://127.0.0.1:8000/", "https://app.example/chat", "android-app://x"]
)
async def test_a_referer_from_this_server_or_an_allowed_origin_is_served(
    app: App, referer: str
) -> None:
    response = await call(
        app, "POST", "/v1/chat/completions", json_body=BODY, headers={"referer": referer}
    )
    assert response.status == 200


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_a_json_route_refuses_a_body_not_declared_as_json(
    app: App, backend: ScriptedBackend, path: str, content_type: str
) -> None:
    headers = {"content-type": content_type}
    response = await call(app, "POST", path, json_body=BODY, headers=headers)
    assert response.status == 415
    assert backend.runs == 0


async def test_json_with_a_charset_is_json(app: App) -> None:
    headers = {"content-type": "Application/JSON; charset=utf-8"}
    response = await call(app, "POST", "/v1/chat/completions", json_body=BODY, headers=headers)
    assert response.status == 200
