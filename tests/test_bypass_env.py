"""IS_SANDBOX reaches the CLI only for bypassPermissions runs by root (refused otherwise)."""

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
