"""Each kind of CLI process's environment: bare for plain chats, IS_SANDBOX for root bypass."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clawrap.agent._mcp_registry import McpRegistry
from clawrap.claude._sdk_options import OptionsBuilder
from clawrap.core._config import Settings
from clawrap.core._request import AgentOptions, CompletionRequest, TextPart, Turn


def agent_env(tmp_path: Path, mode: str | None) -> dict[str, str]:
    settings = Settings(agent_roots=(str(tmp_path),), agent_allow_bypass=True)
    builder = OptionsBuilder(settings, {"ANTHROPIC_API_KEY": "dummy"}, str(tmp_path))
    request = CompletionRequest(
        model="sonnet",
        requested_model="sonnet",
        turns=(Turn("user", (TextPart("hi"),)),),
        agent=AgentOptions(permission_mode=mode),
    )
    spec = builder.agent_spec(request, tmp_path, McpRegistry())
    return dict(spec.extra_env)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs the sandbox flag")
def test_a_bypass_run_by_root_tells_the_cli_it_is_sandboxed(tmp_path: Path) -> None:
    assert agent_env(tmp_path, "bypassPermissions").get("IS_SANDBOX") == "1"


@pytest.mark.parametrize("mode", [None, "default", "acceptEdits", "plan"])
def test_other_permission_modes_do_not_get_the_sandbox_flag(
    tmp_path: Path, mode: str | None
) -> None:
    assert "IS_SANDBOX" not in agent_env(tmp_path, mode)


def plain_env(tmp_path: Path, cli_env: dict[str, str]) -> dict[str, str]:
    request = CompletionRequest(
        model="sonnet", requested_model="sonnet", turns=(Turn("user", (TextPart("hi"),)),)
    )
    return dict(OptionsBuilder(Settings(), cli_env, str(tmp_path)).spec(request).key.env)


def test_plain_processes_run_bare_with_an_api_key(tmp_path: Path) -> None:
    env = plain_env(tmp_path, {"ANTHROPIC_API_KEY": "dummy"})
    assert env["CLAUDE_CODE_SIMPLE"] == "1"
    assert env["CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS"] == "1"


def test_plain_processes_hand_an_oauth_token_to_bare_mode_as_a_bearer_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bare mode does not read CLAUDE_CODE_OAUTH_TOKEN, but reads ANTHROPIC_AUTH_TOKEN.
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BETAS"):
        monkeypatch.delenv(name, raising=False)
    token = "sk-ant-oat01-abcdefghijkl"
    env = plain_env(tmp_path, {"CLAUDE_CODE_OAUTH_TOKEN": token, "CLAUDE_CONFIG_DIR": "/none"})
    assert env["CLAUDE_CODE_SIMPLE"] == "1"
    assert env["ANTHROPIC_AUTH_TOKEN"] == token
    assert env["ANTHROPIC_BETAS"] == "oauth-2025-04-20"


def test_the_oauth_beta_joins_the_betas_the_operator_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    cli_env = {
        "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-abcdefghijkl",
        "ANTHROPIC_BETAS": "some-beta-2026-01-01",
        "CLAUDE_CONFIG_DIR": "/none",
    }
    env = plain_env(tmp_path, cli_env)
    assert env["ANTHROPIC_BETAS"] == "some-beta-2026-01-01,oauth-2025-04-20"


def test_plain_processes_are_not_bare_with_a_stored_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bare mode never reads a stored login, and its access token cannot be handed over.
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config"
    config.mkdir()
    (config / ".credentials.json").write_text(
        '{"claudeAiOauth": {"accessToken": "sk-ant-oat01-abcdefghijkl"}}'
    )
    env = plain_env(tmp_path, {"CLAUDE_CONFIG_DIR": str(config)})
    assert "CLAUDE_CODE_SIMPLE" not in env
    assert "ANTHROPIC_AUTH_TOKEN" not in env


def test_a_spawn_key_does_not_show_its_environment() -> None:
    from clawrap.claude._sdk_options import SpawnKey

    assert "secret" not in repr(SpawnKey("prompt", env=(("ANTHROPIC_API_KEY", "secret"),)))


def test_agent_processes_are_never_bare(tmp_path: Path) -> None:
    settings = Settings(agent_roots=(str(tmp_path),))
    builder = OptionsBuilder(settings, {"ANTHROPIC_API_KEY": "dummy"}, str(tmp_path))
    request = CompletionRequest(
        model="sonnet",
        requested_model="sonnet",
        turns=(Turn("user", (TextPart("hi"),)),),
        agent=AgentOptions(),
    )
    spec = builder.agent_spec(request, tmp_path, McpRegistry())
    assert "CLAUDE_CODE_SIMPLE" not in dict(spec.key.env)
