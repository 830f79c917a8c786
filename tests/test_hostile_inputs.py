"""Hostile request bodies and headers through the app with the real dialects: each is a 400
in the route's own shape before any run, never a 5xx."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from asgi_fakes import call
from scripted_backend import ScriptedBackend

from clawrap.core._config import Settings
from clawrap.core._events import Finished, TextDelta, Usage
from clawrap.http._app import App, create_app

HELLO = [TextDelta("Hello"), Usage(3, 1), Finished("end_turn")]
JSON = {"content-type": "application/json"}


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(HELLO)


@pytest.fixture
def app(backend: ScriptedBackend, tmp_path: Path) -> App:
    return create_app(Settings(agent_roots=(str(tmp_path),)), backend)


def chat(system: str = "", user: str = "hi", role: str = "system") -> dict[str, object]:
    messages = [{"role": role, "content": system}] if system else []
    return {"model": "sonnet", "messages": [*messages, {"role": "user", "content": user}]}


def messages(system: object = None, user: str = "hi") -> dict[str, object]:
    body: dict[str, object] = {
        "model": "sonnet",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": user}],
    }
    if system is not None:
        body["system"] = system
    return body


# -- NUL in a system prompt -----------------------------------------------------------------


@pytest.mark.parametrize("role", ["system", "developer"])
async def test_a_nul_in_an_openai_system_prompt_is_400_naming_the_message(
    app: App, backend: ScriptedBackend, role: str
) -> None:
    body = chat(system="be\x00terse", role=role)
    response = await call(app, "POST", "/v1/chat/completions", json_body=body, headers=JSON)
    assert response.status == 400
    assert response.json()["error"]["param"] == "messages[0].content"
    assert "NUL" in response.json()["error"]["message"]
    assert backend.runs == 0


@pytest.mark.parametrize(
    ("system", "where"),
    [("be\x00terse", "system"), ([{"type": "text", "text": "a\x00"}], "system.0.text")],
)
async def test_a_nul_in_an_anthropic_system_prompt_is_400_naming_the_field(
    app: App, backend: ScriptedBackend, system: object, where: str
) -> None:
    response = await call(app, "POST", "/v1/messages", json_body=messages(system), headers=JSON)
    assert response.status == 400
    assert response.json()["type"] == "error"
    assert where in response.json()["error"]["message"]
    assert backend.runs == 0


# -- lone surrogates --------------------------------------------------------------------------

LONE = b'{"model":"sonnet","max_tokens":9,"messages":[{"role":"user","content":"a\\ud800b"}]}'


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens"]
)
async def test_a_lone_surrogate_escape_is_400_at_decode_on_every_surface(
    app: App, backend: ScriptedBackend, path: str
) -> None:
    response = await call(app, "POST", path, body=LONE, headers=JSON)
    assert response.status == 400
    assert "messages[0].content" in response.text
    assert "Traceback" not in response.text
    assert backend.runs == 0


async def test_a_surrogate_pair_escape_is_a_character_and_is_served(
    app: App, backend: ScriptedBackend
) -> None:
    body = LONE.replace(b"\\ud800", b"\\ud83d\\ude00")
    response = await call(app, "POST", "/v1/chat/completions", body=body, headers=JSON)
    assert response.status == 200
    assert backend.runs == 1


async def test_a_lone_surrogate_inside_tool_call_arguments_is_400(
    app: App, backend: ScriptedBackend
) -> None:
    call_msg = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "f", "arguments": '{"a": "\\ud800"}'},
            }
        ],
    }
    body = {
        "model": "sonnet",
        "messages": [
            {"role": "user", "content": "hi"},
            call_msg,
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
    }
    response = await call(app, "POST", "/v1/chat/completions", json_body=body, headers=JSON)
    assert response.status == 400
    assert response.json()["error"]["param"] == "messages[1].tool_calls[0].function.arguments"
    assert backend.runs == 0


DEEP = "[" * 50_000 + "]" * 50_000


async def test_tool_call_arguments_nested_too_deeply_are_400_not_a_crash(
    app: App, backend: ScriptedBackend
) -> None:
    call_msg = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": DEEP}}
        ],
    }
    body = {
        "model": "sonnet",
        "messages": [
            {"role": "user", "content": "hi"},
            call_msg,
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
    }
    response = await call(app, "POST", "/v1/chat/completions", json_body=body, headers=JSON)
    assert response.status == 400
    assert response.json()["error"]["param"] == "messages[1].tool_calls[0].function.arguments"
    assert backend.runs == 0


async def test_an_agent_header_list_nested_too_deeply_is_400_naming_the_header(
    app: App, backend: ScriptedBackend
) -> None:
    headers = {**JSON, "x-claude-allowed-tools": "[" * 4000 + "]" * 4000}
    response = await call(app, "POST", "/v1/chat/completions", json_body=chat(), headers=headers)
    assert response.status == 400
    assert "X-Claude-Allowed-Tools" in response.json()["error"]["message"]
    assert backend.runs == 0


# -- the agent's working directory --------------------------------------------------------------


def _unreadable_proc_root() -> bool:
    try:
        os.path.realpath("/proc/1/root/etc")
    except OSError:
        return True
    return False


@pytest.mark.skipif(
    not _unreadable_proc_root(), reason="this user may read /proc/1/root: nothing fails"
)
async def test_a_cwd_through_a_link_the_server_may_not_read_is_400(
    app: App, backend: ScriptedBackend
) -> None:
    headers = {**JSON, "x-claude-cwd": "/proc/1/root/etc"}
    response = await call(app, "POST", "/v1/chat/completions", json_body=chat(), headers=headers)
    assert response.status == 400
    assert "not a usable path" in response.json()["error"]["message"]
    assert backend.runs == 0


async def test_a_cwd_whose_resolution_fails_is_400(
    app: App, backend: ScriptedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: str) -> str:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os.path, "realpath", refuse)
    headers = {**JSON, "x-claude-cwd": "/somewhere/else"}
    response = await call(app, "POST", "/v1/chat/completions", json_body=chat(), headers=headers)
    assert response.status == 400
    assert backend.runs == 0


# -- schemas no answer can match ----------------------------------------------------------------


async def test_a_self_referencing_json_schema_is_400_before_any_run(
    app: App, backend: ScriptedBackend
) -> None:
    body = {
        **chat(),
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"$ref": "#"}},
        },
    }
    response = await call(app, "POST", "/v1/chat/completions", json_body=body, headers=JSON)
    assert response.status == 400
    assert response.json()["error"]["param"] == "response_format"
    assert "cycle" in response.json()["error"]["message"]
    assert backend.runs == 0


async def test_a_schema_nested_past_the_setting_is_400(backend: ScriptedBackend) -> None:
    app = create_app(Settings(json_schema_max_depth=8), backend)
    schema: dict[str, object] = {"type": "string"}
    for _ in range(12):
        schema = {"type": "array", "items": schema}
    body = {
        **chat(),
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    response = await call(app, "POST", "/v1/chat/completions", json_body=body, headers=JSON)
    assert response.status == 400
    assert "deeper than 8" in response.json()["error"]["message"]
    assert backend.runs == 0
