"""parse_claude_headers, resolve_cwd and agent_sdk_options: agent mode inside its fence."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from clawrap.agent._mcp_registry import McpRegistry
from clawrap.agent._mode import (
    DEFAULT_AGENT_TOOLS,
    DEFAULT_THINKING_BUDGET,
    agent_sdk_options,
    check_agent_roots,
    parse_agent_request,
    parse_claude_headers,
    resolve_cwd,
)
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._request import AgentOptions, CompletionRequest, TextPart, Turn

MCP = McpRegistry.parse(
    {"mcpServers": {"files": {"command": "files-server"}, "my_docs": {"command": "docs"}}}
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An agent root holding a project directory and a file."""
    root = tmp_path / "root"
    (root / "project").mkdir(parents=True)
    (root / "notes.txt").write_text("x")
    return root


@pytest.fixture
def settings(root: Path) -> Settings:
    return Settings(agent_roots=(str(root),))


def parse(
    settings: Settings, body: dict[str, Any] | None = None, **headers: str
) -> AgentOptions | None:
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return parse_agent_request(body or {}, named, settings, MCP)


def refusal(settings: Settings, body: dict[str, Any] | None = None, **headers: str) -> ClawrapError:
    with pytest.raises(ClawrapError) as caught:
        parse(settings, body, **headers)
    return caught.value


# -- asking for agent mode


def test_a_plain_request_is_not_agent_mode(settings: Settings) -> None:
    assert parse(settings, {"model": "sonnet"}) is None


def test_enable_tools_asks_for_agent_mode_with_defaults(settings: Settings) -> None:
    assert parse(settings, {"enable_tools": True}) == AgentOptions()


def test_any_agent_header_asks_for_agent_mode(settings: Settings) -> None:
    assert parse(settings, X_Claude_Max_Turns="3") == AgentOptions(max_turns=3)


def test_header_names_are_case_insensitive(settings: Settings) -> None:
    agent = parse_agent_request({}, {"x-claude-max-turns": "4"}, settings, MCP)
    assert agent == AgentOptions(max_turns=4)


def test_a_claude_body_object_carries_the_same_fields(settings: Settings) -> None:
    body = {"claude": {"max_turns": 5, "allowed_tools": ["Read", "Bash"]}}
    assert parse(settings, body) == AgentOptions(max_turns=5, allowed_tools=("Read", "Bash"))


def test_headers_win_over_the_claude_body_object(settings: Settings) -> None:
    agent = parse(settings, {"claude": {"max_turns": 5}}, X_Claude_Max_Turns="7")
    assert agent is not None and agent.max_turns == 7


def test_agent_mode_on_a_server_without_roots_is_a_403_naming_the_setting() -> None:
    err = refusal(Settings(), {"enable_tools": True})
    assert (err.status, err.kind) == (403, "permission")
    assert "CLAWRAP_AGENT_ROOTS" in err.message


def test_enable_tools_false_with_agent_fields_is_a_contradiction(settings: Settings) -> None:
    err = refusal(settings, {"enable_tools": False}, X_Claude_Max_Turns="3")
    assert (err.status, err.param) == (400, "X-Claude-Max-Turns")


def test_enable_tools_must_be_a_boolean(settings: Settings) -> None:
    err = refusal(settings, {"enable_tools": "yes"})
    assert (err.status, err.param) == (400, "enable_tools")


def test_an_unknown_claude_field_is_named(settings: Settings) -> None:
    err = refusal(settings, {"claude": {"max_turn": 3}})
    assert (err.status, err.param) == (400, "claude.max_turn")


def test_a_claude_field_that_is_not_an_object_is_refused(settings: Settings) -> None:
    assert refusal(settings, {"claude": "tools please"}).param == "claude"


# -- values


@pytest.mark.parametrize("value", ["0", "-1", "abc", "3.5", "501", "1" * 20, ""])
def test_bad_max_turns_header_is_a_400_naming_header_and_value(
    settings: Settings, value: str
) -> None:
    err = refusal(settings, X_Claude_Max_Turns=value)
    assert (err.status, err.param) == (400, "X-Claude-Max-Turns")
    assert repr(value[:20]) in err.message or value[:20] in err.message


@pytest.mark.parametrize("value", [True, 2.0, "3", None, 0])
def test_max_turns_in_the_body_must_be_a_positive_integer(settings: Settings, value: Any) -> None:
    assert refusal(settings, {"claude": {"max_turns": value}}).param == "claude.max_turns"


def test_tool_lists_accept_commas_and_keep_commas_inside_rules(root: Path) -> None:
    lenient = Settings(agent_roots=(str(root),), agent_allow_bypass=True)
    agent = parse(lenient, X_Claude_Allowed_Tools="Read, Bash(git add:*, git commit:*),Read")
    assert agent is not None
    assert agent.allowed_tools == ("Read", "Bash(git add:*, git commit:*)")


def test_tool_lists_accept_a_json_list_header(settings: Settings) -> None:
    agent = parse(settings, X_Claude_Disallowed_Tools='["Bash", "Write"]')
    assert agent is not None and agent.disallowed_tools == ("Bash", "Write")


@pytest.mark.parametrize("value", ["Read;rm -rf /", "1Read", "Re ad", '["Read"', "Bash(\x01)"])
def test_bad_tool_names_are_a_400_naming_the_header(settings: Settings, value: str) -> None:
    err = refusal(settings, X_Claude_Allowed_Tools=value)
    assert (err.status, err.param) == (400, "X-Claude-Allowed-Tools")


def test_a_tool_list_of_the_wrong_type_is_refused(settings: Settings) -> None:
    err = refusal(settings, {"claude": {"allowed_tools": {"Read": True}}})
    assert err.param == "claude.allowed_tools"


def test_approval_rules_need_the_operators_consent(settings: Settings) -> None:
    err = refusal(settings, X_Claude_Allowed_Tools="Read(/etc/**)")
    assert (err.status, err.code) == (403, "approval_rule_not_allowed")


def test_permission_mode_is_one_of_the_safe_modes(settings: Settings) -> None:
    agent = parse(settings, X_Claude_Permission_Mode="plan")
    assert agent is not None and agent.permission_mode == "plan"
    assert refusal(settings, X_Claude_Permission_Mode="yolo").status == 400


def test_bypass_permissions_is_a_403_unless_the_operator_allows_it(root: Path) -> None:
    err = refusal(Settings(agent_roots=(str(root),)), X_Claude_Permission_Mode="bypassPermissions")
    assert (err.status, err.param) == (403, "X-Claude-Permission-Mode")
    lenient = Settings(agent_roots=(str(root),), agent_allow_bypass=True)
    agent = parse(lenient, X_Claude_Permission_Mode="bypassPermissions")
    assert agent is not None and agent.permission_mode == "bypassPermissions"


def test_mcp_servers_are_picked_from_the_operators_list(settings: Settings) -> None:
    agent = parse(settings, X_Claude_Mcp_Servers="files,my_docs")
    assert agent is not None and agent.mcp_servers == ("files", "my_docs")


def test_an_unknown_mcp_server_is_a_400_naming_it(settings: Settings) -> None:
    err = refusal(settings, X_Claude_Mcp_Servers="files,evil")
    assert (err.status, err.param) == (400, "X-Claude-Mcp-Servers")
    assert "'evil'" in err.message


def test_mcp_tools_must_belong_to_a_selected_server(settings: Settings) -> None:
    ok = parse(settings, X_Claude_Mcp_Servers="my_docs", X_Claude_Allowed_Tools="mcp__my_docs__get")
    assert ok is not None and ok.allowed_tools == ("mcp__my_docs__get",)
    err = refusal(settings, X_Claude_Allowed_Tools="mcp__files__read")
    assert err.param == "X-Claude-Allowed-Tools"


def test_an_overlong_header_is_refused(settings: Settings) -> None:
    assert refusal(settings, X_Claude_Allowed_Tools="Read," * 5000).status == 400


# -- effort and thinking


def test_effort_and_thinking_apply_without_agent_mode() -> None:
    found = parse_claude_headers(
        {}, {"X-Claude-Effort": "high", "X-Claude-Thinking": "true"}, Settings()
    )
    assert (found.agent, found.effort, found.thinking) == (None, "high", "enabled")
    assert found.thinking_budget == DEFAULT_THINKING_BUDGET


def test_max_thinking_tokens_turns_thinking_on_with_that_budget() -> None:
    found = parse_claude_headers({}, {"X-Claude-Max-Thinking-Tokens": "4096"}, Settings())
    assert (found.thinking, found.thinking_budget) == ("enabled", 4096)


@pytest.mark.parametrize("value", ["100", "200000", "lots"])
def test_max_thinking_tokens_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(ClawrapError) as caught:
        parse_claude_headers({}, {"X-Claude-Max-Thinking-Tokens": value}, Settings())
    assert caught.value.param == "X-Claude-Max-Thinking-Tokens"


def test_a_budget_with_thinking_disabled_is_refused() -> None:
    headers = {"X-Claude-Thinking": "disabled", "X-Claude-Max-Thinking-Tokens": "2048"}
    with pytest.raises(ClawrapError):
        parse_claude_headers({}, headers, Settings())


@pytest.mark.parametrize(
    ("header", "field"),
    [("X-Claude-Effort", "extreme"), ("X-Claude-Thinking", "sometimes")],
)
def test_unknown_effort_or_thinking_is_a_400(header: str, field: str) -> None:
    with pytest.raises(ClawrapError) as caught:
        parse_claude_headers({}, {header: field}, Settings())
    assert (caught.value.status, caught.value.param) == (400, header)


def test_apply_lays_the_settings_over_the_request(settings: Settings) -> None:
    request = CompletionRequest(
        "sonnet", "sonnet", (Turn("user", (TextPart("hi"),)),), effort="low", thinking_budget=2000
    )
    found = parse_claude_headers(
        {"enable_tools": True}, {"X-Claude-Thinking": "disabled"}, settings
    )
    applied = found.apply(request)
    assert (applied.agent, applied.effort, applied.thinking_budget) == (AgentOptions(), "low", None)


# -- the working directory


def test_a_directory_inside_a_root_is_used_resolved(settings: Settings, root: Path) -> None:
    workdir = resolve_cwd(str(root / "project" / ".." / "project"), settings)
    assert (workdir.path, workdir.temporary) == ((root / "project").resolve(), False)


def test_the_root_itself_may_be_the_working_directory(settings: Settings, root: Path) -> None:
    assert resolve_cwd(str(root), settings).path == root.resolve()


def test_dotdot_out_of_the_root_is_refused(settings: Settings, root: Path) -> None:
    with pytest.raises(ClawrapError, match="not inside"):
        resolve_cwd(str(root / ".."), settings)


def test_a_symlink_pointing_out_of_the_root_is_refused(
    settings: Settings, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    with pytest.raises(ClawrapError, match="not inside"):
        resolve_cwd(str(root / "escape"), settings)


def test_a_root_that_is_a_symlink_accepts_both_spellings(tmp_path: Path, root: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(root)
    settings = Settings(agent_roots=(str(link),))
    assert resolve_cwd(str(link / "project"), settings).path == (root / "project").resolve()
    assert resolve_cwd(str(root / "project"), settings).path == (root / "project").resolve()


def test_a_file_is_not_a_working_directory(settings: Settings, root: Path) -> None:
    with pytest.raises(ClawrapError, match="not a directory"):
        resolve_cwd(str(root / "notes.txt"), settings)


def test_a_missing_directory_inside_a_root_is_refused(settings: Settings, root: Path) -> None:
    with pytest.raises(ClawrapError, match="does not exist"):
        resolve_cwd(str(root / "absent"), settings)


def test_a_missing_path_outside_the_roots_does_not_reveal_existence(settings: Settings) -> None:
    with pytest.raises(ClawrapError, match="not inside"):
        resolve_cwd("/nonexistent/clawrap/path", settings)


@pytest.mark.parametrize("value", ["project", "", "/tmp/\x00x"])
def test_relative_empty_or_nul_paths_are_refused(settings: Settings, value: str) -> None:
    with pytest.raises(ClawrapError) as caught:
        resolve_cwd(value, settings, param="X-Claude-Cwd")
    assert (caught.value.status, caught.value.param) == (400, "X-Claude-Cwd")


def test_no_directory_gives_a_private_temporary_one_removed_on_cleanup(
    settings: Settings,
) -> None:
    workdir = resolve_cwd(None, settings)
    assert workdir.temporary
    assert stat.S_IMODE(os.stat(workdir.path).st_mode) == 0o700
    (workdir.path / "left-behind").write_text("x")
    workdir.cleanup()
    workdir.cleanup()
    assert not workdir.path.exists()


def test_cleanup_never_removes_a_requested_directory(settings: Settings, root: Path) -> None:
    resolve_cwd(str(root / "project"), settings).cleanup()
    assert (root / "project").is_dir()


def test_cwd_is_checked_when_the_request_is_parsed(settings: Settings, root: Path) -> None:
    agent = parse(settings, X_Claude_Cwd=str(root / "project"))
    assert agent is not None and agent.cwd == str(root / "project")
    assert refusal(settings, X_Claude_Cwd="/etc").param == "X-Claude-Cwd"


def test_start_up_refuses_roots_that_are_missing_or_relative(root: Path) -> None:
    assert check_agent_roots(Settings(agent_roots=(str(root),))) == (root.resolve(),)
    with pytest.raises(SystemExit, match="not a directory"):
        check_agent_roots(Settings(agent_roots=(str(root / "absent"),)))
    with pytest.raises(SystemExit, match="not absolute"):
        check_agent_roots(Settings(agent_roots=("relative",)))


# -- the SDK options (the fence)


def test_default_agent_options_offer_the_file_and_shell_tools_without_approvals(
    root: Path,
) -> None:
    options = agent_sdk_options(AgentOptions(), root, MCP)
    assert options == {
        "tools": list(DEFAULT_AGENT_TOOLS),
        "allowed_tools": [],
        "disallowed_tools": [],
        "permission_mode": "acceptEdits",
        "cwd": str(root),
        "mcp_servers": {},
    }


def test_named_tools_choose_which_tools_exist_but_approve_nothing(root: Path) -> None:
    agent = AgentOptions(allowed_tools=("Read", "Bash"), disallowed_tools=("Bash",), max_turns=4)
    options = agent_sdk_options(agent, root, MCP)
    assert options["tools"] == ["Read"]
    assert options["allowed_tools"] == []
    assert options["disallowed_tools"] == ["Bash"]
    assert options["max_turns"] == 4


def test_selected_mcp_servers_are_configured_and_approved(root: Path) -> None:
    agent = AgentOptions(mcp_servers=("files",), allowed_tools=("Read", "mcp__files__list"))
    options = agent_sdk_options(agent, root, MCP)
    assert options["mcp_servers"] == {
        "files": {"type": "stdio", "command": "files-server", "args": []}
    }
    assert options["tools"] == ["Read"]
    assert options["allowed_tools"] == ["mcp__files__list", "mcp__files"]


def test_rules_the_operator_allowed_become_approvals(root: Path) -> None:
    agent = AgentOptions(allowed_tools=("Bash(git status:*)",), permission_mode="plan")
    options = agent_sdk_options(agent, root, MCP)
    assert (options["tools"], options["allowed_tools"]) == (["Bash"], ["Bash(git status:*)"])
    assert options["permission_mode"] == "plan"
