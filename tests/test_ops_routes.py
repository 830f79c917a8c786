"""Operator routes through the app: compatibility, the debug request, tool stats, MCP reload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from asgi_fakes import call
from scripted_backend import ScriptedBackend

from clawrap.agent._mcp_registry import McpRegistry
from clawrap.core._config import Settings
from clawrap.core._events import AgentProgress, Finished, TextDelta, Usage
from clawrap.http._app import App, create_app

CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "sonnet", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def app_with(backend: ScriptedBackend | None = None, **settings: Any) -> App:
    return create_app(Settings(**settings), backend or ScriptedBackend([Finished("end_turn")]))


async def test_compatibility_sorts_fields_and_runs_nothing() -> None:
    backend = ScriptedBackend([Finished("end_turn")])
    body = {**CHAT, "temperature": 0.2, "max_tokens": 5, "frobnicate": 1}
    response = await call(app_with(backend), "POST", "/v1/compatibility", json_body=body)
    assert response.status == 200
    report = response.json()
    assert report["served"] is True and report["refused"] is None
    assert report["honoured"] == ["max_tokens", "messages", "model"]
    assert report["ignored"] == ["frobnicate", "temperature"]
    assert backend.requests == []


async def test_compatibility_names_the_refused_field_and_reads_the_messages_api() -> None:
    refused = await call(
        app_with(), "POST", "/v1/compatibility", json_body={**CHAT, "logprobs": True}
    )
    assert refused.json()["refused"]["param"] == "logprobs"
    assert refused.json()["served"] is False
    anthropic = await call(
        app_with(),
        "POST",
        "/v1/compatibility",
        json_body={**MESSAGES, "top_k": 3},
        headers={"anthropic-version": "2023-06-01"},
    )
    assert anthropic.json()["api"] == "anthropic"
    assert anthropic.json()["ignored"] == ["top_k"]
    assert anthropic.json()["served"] is True


async def test_debug_request_only_with_debug_on() -> None:
    off = await call(app_with(), "POST", "/v1/debug/request", json_body=CHAT)
    assert off.status == 404
    on = await call(app_with(debug=True), "POST", "/v1/debug/request", json_body=CHAT)
    assert on.status == 200
    decoded = on.json()["request"]
    assert decoded["model"] == "sonnet"
    assert decoded["turns"][0]["parts"][0]["text"] == "hi"


async def test_tool_stats_count_agent_tool_uses_and_failures(tmp_path: Path) -> None:
    backend = ScriptedBackend(
        [
            AgentProgress("tool_use", "Read", "a.txt"),
            AgentProgress("tool_result", "Read", "failed", {"is_error": True}),
            AgentProgress("tool_use", "mcp__docs__search", "q"),
            TextDelta("done"),
            Usage(1, 1),
            Finished("end_turn"),
        ]
    )
    mcp = McpRegistry.parse({"mcpServers": {"docs": {"type": "http", "url": "https://d.example"}}})
    app = create_app(Settings(agent_roots=(str(tmp_path),)), backend, mcp=mcp)
    done = await call(app, "POST", "/v1/chat/completions", json_body={**CHAT, "enable_tools": True})
    assert done.status == 200
    stats = (await call(app, "GET", "/v1/tools/stats")).json()
    assert stats["tools"]["Read"] == {"uses": 1, "errors": 1}
    assert stats["tools"]["mcp__docs__search"] == {"uses": 1, "errors": 0}
    assert stats["mcp_servers"]["docs"]["tool_uses"] == 1


async def test_mcp_reload_rereads_the_file_and_keeps_the_old_servers_when_it_is_bad(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"one": {"command": "one-server"}}}))
    settings = Settings(mcp_config=str(path))
    mcp = McpRegistry.load(settings)
    app = create_app(settings, ScriptedBackend([Finished("end_turn")]), mcp=mcp)
    path.write_text(json.dumps({"mcpServers": {"two": {"command": "two-server"}}}))
    reloaded = await call(app, "POST", "/v1/mcp/reload")
    assert reloaded.status == 200 and reloaded.json()["servers"] == ["two"]
    assert mcp.names() == ("two",)
    path.write_text("{not json")
    bad = await call(app, "POST", "/v1/mcp/reload")
    assert bad.status == 500 and str(tmp_path) not in bad.json()["error"]["message"]
    assert mcp.names() == ("two",)


async def test_no_route_registers_an_mcp_server() -> None:
    app = app_with()
    for path in ("/v1/mcp/servers", "/v1/mcp/register", "/v1/mcp/servers/x"):
        response = await call(app, "POST", path, json_body={"name": "x", "command": "sh"})
        assert response.status in (404, 405)
