"""Agent mode through the app: who may ask, what a bad header gets, what reaches the backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asgi_fakes import call
from scripted_backend import ScriptedBackend

from clawrap.agent._mcp_registry import McpRegistry
from clawrap.core._config import Settings
from clawrap.core._events import Finished, TextDelta, Usage
from clawrap.core._request import AgentOptions
from clawrap.http._app import App, create_app

HELLO = [TextDelta("Hello"), Usage(3, 1), Finished("end_turn")]
CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "sonnet", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
MCP = McpRegistry.parse(
    {"mcpServers": {"docs": {"type": "http", "url": "https://user:secret@docs.example/mcp?k=1"}}}
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "project").mkdir(parents=True)
    return tmp_path / "root"


@pytest.fixture
def backend() -> ScriptedBackend:
    """Records every request it runs (``requests``)."""
    return ScriptedBackend(HELLO)


def app_with(backend: ScriptedBackend, **settings: Any) -> App:
    return create_app(Settings(**settings), backend, mcp=MCP)


async def chat(app: App, body: dict[str, Any] | None = None, **headers: str) -> Any:
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return await call(app, "POST", "/v1/chat/completions", json_body=body or CHAT, headers=named)


# -- who may ask


async def test_agent_mode_on_a_server_without_roots_is_403_before_anything_runs(
    backend: ScriptedBackend,
) -> None:
    response = await chat(app_with(backend), {**CHAT, "enable_tools": True})
    assert response.status == 403
    assert "CLAWRAP_AGENT_ROOTS" in response.json()["error"]["message"]
    assert backend.requests == []


async def test_agent_headers_on_a_server_without_roots_are_403_in_anthropic_shape(
    backend: ScriptedBackend,
) -> None:
    response = await call(
        app_with(backend),
        "POST",
        "/v1/messages",
        json_body=MESSAGES,
        headers={"x-claude-max-turns": "3"},
    )
    assert response.status == 403
    assert response.json()["type"] == "error"


async def test_bypass_permissions_is_refused_unless_the_operator_allows_it(
    backend: ScriptedBackend, root: Path
) -> None:
    refused = await chat(
        app_with(backend, agent_roots=(str(root),)), X_Claude_Permission_Mode="bypassPermissions"
    )
    assert refused.status == 403
    assert refused.json()["error"]["param"] == "X-Claude-Permission-Mode"
    allowed = await chat(
        app_with(backend, agent_roots=(str(root),), agent_allow_bypass=True),
        X_Claude_Permission_Mode="bypassPermissions",
    )
    assert allowed.status == 200
    assert [r.agent for r in backend.requests] == [
        AgentOptions(permission_mode="bypassPermissions")
    ]


# -- bad values


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Claude-Max-Turns", "many"),
        ("X-Claude-Allowed-Tools", "Read;rm"),
        ("X-Claude-Disallowed-Tools", "[1]"),
        ("X-Claude-Permission-Mode", "yolo"),
        ("X-Claude-Effort", "extreme"),
        ("X-Claude-Thinking", "maybe"),
        ("X-Claude-Max-Thinking-Tokens", "12"),
        ("X-Claude-Mcp-Servers", "unknown"),
    ],
)
async def test_a_bad_header_value_is_a_400_naming_the_header(
    backend: ScriptedBackend, root: Path, header: str, value: str
) -> None:
    app = app_with(backend, agent_roots=(str(root),))
    response = await call(
        app, "POST", "/v1/chat/completions", json_body=CHAT, headers={header: value}
    )
    assert response.status == 400
    assert response.json()["error"]["param"] == header
    assert backend.requests == []


async def test_a_cwd_outside_every_root_is_a_400(
    backend: ScriptedBackend, root: Path, tmp_path: Path
) -> None:
    (root / "escape").symlink_to(tmp_path)
    response = await chat(
        app_with(backend, agent_roots=(str(root),)), X_Claude_Cwd=str(root / "escape")
    )
    assert response.status == 400
    assert "not inside" in response.json()["error"]["message"]


# -- what reaches the backend


async def test_headers_and_the_claude_object_reach_the_request_and_leave_the_body(
    backend: ScriptedBackend, root: Path
) -> None:
    body = {**CHAT, "claude": {"max_turns": 5, "cwd": str(root / "project")}}
    response = await chat(
        app_with(backend, agent_roots=(str(root),)),
        body,
        X_Claude_Allowed_Tools="Read,Bash",
        X_Claude_Mcp_Servers="docs",
        X_Claude_Effort="high",
    )
    assert response.status == 200
    [request] = backend.requests
    assert request.agent == AgentOptions(
        cwd=str(root / "project"),
        max_turns=5,
        allowed_tools=("Read", "Bash"),
        mcp_servers=("docs",),
    )
    assert request.effort == "high"


async def test_effort_and_thinking_headers_apply_to_plain_requests(
    backend: ScriptedBackend,
) -> None:
    response = await chat(
        app_with(backend), X_Claude_Effort="low", X_Claude_Max_Thinking_Tokens="2048"
    )
    assert response.status == 200
    [request] = backend.requests
    assert (request.agent, request.effort, request.thinking_budget) == (None, "low", 2048)


async def test_the_anthropic_route_reads_the_same_settings(
    backend: ScriptedBackend, root: Path
) -> None:
    response = await call(
        app_with(backend, agent_roots=(str(root),)),
        "POST",
        "/v1/messages",
        json_body={**MESSAGES, "enable_tools": True},
        headers={"x-claude-disallowed-tools": "Bash"},
    )
    assert response.status == 200
    assert backend.requests[0].agent == AgentOptions(disallowed_tools=("Bash",))


# -- the listings


async def test_tools_before_any_agent_run_are_the_configured_defaults(
    backend: ScriptedBackend, root: Path
) -> None:
    response = await call(app_with(backend, agent_roots=(str(root),)), "GET", "/v1/tools")
    body = response.json()
    assert (body["agent_mode"], body["source"]) == (True, "configured")
    assert {"name": "Bash", "type": "builtin"} in body["data"]
    assert "first agent run" in body["note"]


async def test_tools_with_agent_mode_off_is_an_empty_list(backend: ScriptedBackend) -> None:
    body = (await call(app_with(backend), "GET", "/v1/tools")).json()
    assert (body["agent_mode"], body["data"]) == (False, [])


async def test_mcp_servers_are_listed_without_secrets(backend: ScriptedBackend) -> None:
    response = await call(app_with(backend), "GET", "/v1/mcp/servers")
    assert response.json()["data"] == [
        {"name": "docs", "type": "http", "url": "https://docs.example/mcp", "status": "unknown"}
    ]


@pytest.mark.parametrize("path", ["/v1/tools", "/v1/mcp/servers"])
async def test_the_listings_need_the_api_key(backend: ScriptedBackend, path: str) -> None:
    app = app_with(backend, api_key="k")
    assert (await call(app, "GET", path)).status == 401
    ok = await call(app, "GET", path, headers={"authorization": "Bearer k"})
    assert ok.status == 200


class _AgentBackend(ScriptedBackend):
    """A backend that declares agent tools and MCP servers."""

    def agent_tools(self) -> dict[str, Any]:
        return {"object": "list", "agent_mode": True, "data": [{"name": "Probe"}]}

    def mcp_servers(self) -> list[dict[str, Any]]:
        return [{"name": "docs", "type": "http", "status": "connected"}]


async def test_the_listings_come_from_a_backend_that_declares_them() -> None:
    from clawrap.core._backend import OffersAgentTools, RunsMcpServers

    backend = _AgentBackend(HELLO)
    assert isinstance(backend, OffersAgentTools) and isinstance(backend, RunsMcpServers)
    assert not isinstance(ScriptedBackend(HELLO), OffersAgentTools | RunsMcpServers)
    app = app_with(backend)
    assert (await call(app, "GET", "/v1/tools")).json()["data"] == [{"name": "Probe"}]
    servers = (await call(app, "GET", "/v1/mcp/servers")).json()["data"]
    assert servers == [{"name": "docs", "type": "http", "status": "connected"}]
