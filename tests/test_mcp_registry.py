"""McpRegistry: the operator's MCP servers, chosen by name, described without secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clawrap.agent._mcp_registry import McpConfigError, McpRegistry
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError

SECRET = "s3cr3t-token-value"

CONFIG: dict[str, Any] = {
    "mcpServers": {
        "files": {
            "command": "/opt/tools/bin/files-server",
            "args": ["--token", SECRET],
            "env": {"FILES_TOKEN": SECRET},
        },
        "docs": {
            "type": "http",
            "url": f"https://user:{SECRET}@docs.example.com:8443/mcp?key={SECRET}#frag",
            "headers": {"Authorization": f"Bearer {SECRET}"},
        },
        "events": {"type": "sse", "url": "http://127.0.0.1:9000/sse"},
    }
}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(CONFIG))
    return path


@pytest.fixture
def registry(config_file: Path) -> McpRegistry:
    return McpRegistry.load(Settings(mcp_config=str(config_file)))


def load_text(tmp_path: Path, text: str) -> McpRegistry:
    path = tmp_path / "mcp.json"
    path.write_text(text)
    return McpRegistry.load(Settings(mcp_config=str(path)))


def test_no_config_file_means_no_servers() -> None:
    registry = McpRegistry.load(Settings())
    assert registry.names() == ()
    assert registry.describe() == []


def test_names_are_the_configured_servers_sorted(registry: McpRegistry) -> None:
    assert registry.names() == ("docs", "events", "files")


def test_select_gives_the_sdk_dicts_for_the_named_servers(registry: McpRegistry) -> None:
    chosen = registry.select(["files", "events"])
    assert chosen == {
        "files": {
            "type": "stdio",
            "command": "/opt/tools/bin/files-server",
            "args": ["--token", SECRET],
            "env": {"FILES_TOKEN": SECRET},
        },
        "events": {"type": "sse", "url": "http://127.0.0.1:9000/sse"},
    }


def test_select_hands_out_copies_the_caller_cannot_corrupt(registry: McpRegistry) -> None:
    registry.select(["files"])["files"]["args"].append("--evil")
    assert registry.select(["files"])["files"]["args"] == ["--token", SECRET]


def test_select_of_an_unknown_name_is_a_400_naming_it(registry: McpRegistry) -> None:
    with pytest.raises(ClawrapError) as caught:
        registry.select(["files", "nope"], param="X-Claude-Mcp-Servers")
    err = caught.value
    assert (err.status, err.param) == (400, "X-Claude-Mcp-Servers")
    assert "'nope'" in err.message and "docs, events, files" in err.message


def test_describe_never_shows_env_headers_args_or_url_secrets(registry: McpRegistry) -> None:
    described = registry.describe()
    assert SECRET not in json.dumps(described)
    assert described == [
        {
            "name": "docs",
            "type": "http",
            "url": "https://docs.example.com:8443/mcp",
            "status": "unknown",
        },
        {"name": "events", "type": "sse", "url": "http://127.0.0.1:9000/sse", "status": "unknown"},
        {"name": "files", "type": "stdio", "command": "files-server", "status": "unknown"},
    ]


def test_describe_shows_the_status_the_cli_reported(registry: McpRegistry) -> None:
    registry.record_status(
        [{"name": "files", "status": "connected"}, {"name": "stranger", "status": "connected"}, 7]
    )
    statuses = {d["name"]: d["status"] for d in registry.describe()}
    assert statuses == {"docs": "unknown", "events": "unknown", "files": "connected"}


def test_a_status_report_that_is_not_a_list_is_ignored(registry: McpRegistry) -> None:
    registry.record_status({"files": "connected"})
    assert {d["status"] for d in registry.describe()} == {"unknown"}


def test_a_missing_file_stops_start_up_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    with pytest.raises(SystemExit, match=r"cannot read MCP config .*absent\.json"):
        McpRegistry.load(Settings(mcp_config=str(missing)))


def test_malformed_json_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="invalid MCP config"):
        load_text(tmp_path, '{"mcpServers": {')


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        ([], "top level must be an object"),
        ({"servers": {}}, "unknown top-level field"),
        ({"mcpServers": []}, "'mcpServers' must be an object"),
        ({"mcpServers": {"a b": {"command": "x"}}}, "server name 'a b'"),
        ({"mcpServers": {"x": "npx server"}}, r"mcpServers\.x must be an object"),
        ({"mcpServers": {"x": {"type": "ws", "url": "ws://h"}}}, "type must be"),
        ({"mcpServers": {"x": {"command": ""}}}, "command must be a non-empty string"),
        ({"mcpServers": {"x": {"command": "a", "args": "-v"}}}, "args must be a list"),
        ({"mcpServers": {"x": {"command": "a", "env": {"K": 1}}}}, "env must be an object"),
        ({"mcpServers": {"x": {"command": "a", "cwd": "/"}}}, "unknown field"),
        ({"mcpServers": {"x": {"type": "http", "url": "file:///etc"}}}, "url must be an http"),
        ({"mcpServers": {"x": {"type": "http", "url": "http://"}}}, "url has no host"),
        ({"mcpServers": {"x": {"type": "sse", "url": "http://h", "command": "c"}}}, "unknown"),
    ],
)
def test_invalid_configs_stop_start_up_with_a_clear_reason(
    tmp_path: Path, config: Any, complaint: str
) -> None:
    with pytest.raises(SystemExit, match=complaint):
        load_text(tmp_path, json.dumps(config))


def test_parse_raises_a_config_error_for_callers_that_do_not_exit() -> None:
    with pytest.raises(McpConfigError):
        McpRegistry.parse({"mcpServers": {"x": {}}})


def test_a_huge_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="larger than 1 MiB"):
        load_text(tmp_path, " " * (1024 * 1024 + 10) + "{}")


def test_deeply_nested_json_is_refused_without_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="invalid MCP config"):
        load_text(tmp_path, "[" * 100_000 + "]" * 100_000)
