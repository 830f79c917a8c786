"""The router: which paths exist, which methods they take, and the small routes' bodies."""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess

import pytest
from asgi_fakes import FakeDialect, call
from claude_agent_sdk._cli_version import __cli_version__
from scripted_backend import ScriptedBackend

from clawrap.core._config import Settings
from clawrap.core._events import Finished, TextDelta
from clawrap.http._app import App, canonical_path, create_app
from clawrap.http._request_log import JsonLogFormatter


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend([TextDelta("hi"), Finished("end_turn")])


@pytest.fixture
def app(backend: ScriptedBackend) -> App:
    fake = FakeDialect()
    return create_app(Settings(), backend, dialects={"openai": fake, "anthropic": fake})


async def test_an_unknown_path_is_404_unknown_url_in_openai_shape(app: App) -> None:
    response = await call(app, "GET", "/v2/whatever")
    assert response.status == 404
    error = response.json()["error"]
    assert error["code"] == "unknown_url"
    assert "/v2/whatever" in error["message"]


async def test_a_wrong_method_is_405_with_allow(app: App) -> None:
    response = await call(app, "GET", "/v1/chat/completions")
    assert response.status == 405
    assert response.headers["allow"] == "POST, OPTIONS"


async def test_errors_under_messages_are_in_anthropic_shape(app: App) -> None:
    response = await call(app, "GET", "/v1/messages")
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/chat/completions", "/v1/chat/completions"),
        ("/messages", "/v1/messages"),
        ("/models/", "/v1/models"),
        ("/v1/models/", "/v1/models"),
        ("/health", "/health"),
        ("/", "/"),
    ],
)
def test_paths_without_v1_reach_the_same_routes(path: str, expected: str) -> None:
    assert canonical_path(path) == expected


async def test_the_completion_route_answers_without_the_v1_prefix(app: App) -> None:
    response = await call(app, "POST", "/chat/completions", json_body={"text": "hi"})
    assert response.status == 200
    assert response.json()["text"] == "hi"


async def test_health_is_ok_without_touching_the_backend(
    app: App, backend: ScriptedBackend
) -> None:
    response = await call(app, "GET", "/health")
    assert (response.status, response.json()) == (200, {"status": "ok"})
    assert backend.runs == 0


async def test_version_names_the_package(app: App) -> None:
    body = (await call(app, "GET", "/version")).json()
    assert body["name"] == "clawrap" and body["version"]


async def test_version_names_the_sdk_and_its_bundled_cli_without_running_anything(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("GET /version started a process")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    monkeypatch.setattr(subprocess, "run", no_process)
    body = (await call(app, "GET", "/version")).json()
    assert body["sdk_version"] == importlib.metadata.version("claude-agent-sdk")
    assert body["cli_version"] == __cli_version__


async def test_models_are_listed_in_openai_shape(app: App) -> None:
    body = (await call(app, "GET", "/v1/models")).json()
    assert body["object"] == "list"
    first = body["data"][0]
    assert {"id", "object", "created", "owned_by"} <= set(first)
    assert first["object"] == "model" and first["owned_by"] == "anthropic"
    ids = [m["id"] for m in body["data"]]
    assert {"sonnet", "opus", "haiku", "fable", "claude-sonnet-5-5", "claude-opus-5-5"} <= set(ids)


async def test_each_model_says_its_context_window_and_output_limit(app: App) -> None:
    body = (await call(app, "GET", "/v1/models")).json()
    entry = next(m for m in body["data"] if m["id"] == "claude-sonnet-4-5")
    assert (entry["context_window"], entry["max_output_tokens"]) == (200_000, 64_000)
    anthropic = await call(app, "GET", "/v1/models", headers={"anthropic-version": "2023-06-01"})
    entry = next(m for m in anthropic.json()["data"] if m["id"] == "claude-opus-5-5")
    assert (entry["max_input_tokens"], entry["max_tokens"]) == (1_000_000, 128_000)


async def test_anthropic_clients_get_anthropics_model_list(app: App) -> None:
    response = await call(app, "GET", "/v1/models", headers={"anthropic-version": "2023-06-01"})
    body = response.json()
    assert body["has_more"] is False
    assert body["first_id"] == body["data"][0]["id"]
    assert body["last_id"] == body["data"][-1]["id"]
    entry = next(m for m in body["data"] if m["id"] == "claude-sonnet-4-5")
    assert entry["type"] == "model" and entry["display_name"] == "Claude Sonnet 4.5"
    assert entry["created_at"].endswith("Z")


async def test_the_models_the_bundled_cli_knows_are_served(app: App) -> None:
    for model in ("claude-sonnet-5-5", "claude-opus-5-5", "fable", "claude-haiku-4-5-20251001"):
        assert (await call(app, "GET", f"/v1/models/{model}")).status == 200, model


async def test_mapped_ids_are_served_and_other_ids_stay_unknown(backend: ScriptedBackend) -> None:
    app = create_app(Settings(model_map=("gpt-4o=sonnet",)), backend, dialects={})
    assert (await call(app, "GET", "/v1/models/gpt-4o")).status == 200
    assert (await call(app, "GET", "/v1/models/gpt-4.1")).status == 404


async def test_claude_codes_reachability_probe_answers_200_without_a_key(
    backend: ScriptedBackend,
) -> None:
    app = create_app(Settings(api_key="secret"), backend, dialects={})
    head = await call(app, "HEAD", "/api/hello")
    assert (head.status, head.body) == (200, b"")
    assert (await call(app, "GET", "/api/hello")).status == 200


async def test_refreshing_the_model_list_without_a_live_list_gives_the_catalogue(
    app: App,
) -> None:
    response = await call(app, "POST", "/v1/models/refresh")
    assert response.status == 200
    assert "claude-sonnet-5-5" in [m["id"] for m in response.json()["data"]]


async def test_one_model_by_id(app: App) -> None:
    body = (await call(app, "GET", "/v1/models/claude-opus-4-1")).json()
    assert body["id"] == "claude-opus-4-1"


async def test_an_unknown_model_id_is_404_model_not_found(app: App) -> None:
    response = await call(app, "GET", "/v1/models/gpt-4o")
    assert response.status == 404
    assert response.json()["error"]["code"] == "model_not_found"


async def test_the_settings_model_list_replaces_the_catalogue(backend: ScriptedBackend) -> None:
    app = create_app(Settings(models=("only-this",)), backend, dialects={})
    body = (await call(app, "GET", "/v1/models")).json()
    assert [m["id"] for m in body["data"]] == ["only-this"]


async def test_pool_shows_the_backend_status(app: App) -> None:
    body = (await call(app, "GET", "/v1/pool")).json()
    assert body["backend"] == "scripted"


async def test_the_landing_page_is_html(app: App) -> None:
    response = await call(app, "GET", "/")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "clawrap" in response.text


async def test_the_request_id_is_echoed_sanitised(app: App) -> None:
    response = await call(app, "GET", "/health", headers={"x-request-id": "abc-123\r\nx: y"})
    assert response.headers["x-request-id"] == "abc-123x:y"


async def test_a_request_id_is_generated_when_absent(app: App) -> None:
    response = await call(app, "GET", "/health")
    assert response.headers["x-request-id"].startswith("req_")


async def test_a_missing_dialect_answers_501_instead_of_failing(backend: ScriptedBackend) -> None:
    app = create_app(Settings(), backend, dialects={})
    response = await call(app, "POST", "/v1/chat/completions", json_body={})
    assert response.status == 501


async def test_each_request_logs_one_line(app: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="clawrap.requests")
    await call(app, "POST", "/v1/chat/completions", json_body={"text": "hi"})
    [record] = [r for r in caplog.records if r.name == "clawrap.requests"]
    line = record.getMessage()
    assert line.startswith("POST /v1/chat/completions 200 ")
    assert "model=sonnet" in line and "request_id=req_" in line and "total_ms=" in line
    as_json = JsonLogFormatter().format(record)
    assert '"status": 200' in as_json and '"event": "request"' in as_json
