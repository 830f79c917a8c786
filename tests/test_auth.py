"""detect_auth and cli_info: what the CLI will authenticate with, and which CLI runs."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from clawrap.core._auth import LOGIN_HINT, bundled_cli, cli_info, detect_auth, mask
from clawrap.core._config import Settings

SECRET = "sk-ant-api03-SECRETSECRETSECRET-wxyz"


@pytest.fixture
def empty_home(tmp_path: Path) -> dict[str, str]:
    """An environment with nothing but an empty home directory."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "PATH": "/usr/bin:/bin"}


@pytest.fixture
def logged_in_home(empty_home: dict[str, str]) -> dict[str, str]:
    """An empty home holding a `claude login` credentials file."""
    claude = Path(empty_home["HOME"]) / ".claude"
    claude.mkdir()
    creds = {"claudeAiOauth": {"accessToken": SECRET, "subscriptionType": "max"}}
    (claude / ".credentials.json").write_text(json.dumps(creds))
    return empty_home


def test_offline_settings_need_no_credentials(empty_home: dict[str, str]) -> None:
    info = detect_auth(Settings(offline=True), empty_home)
    assert (info.method, info.ok) == ("offline", True)


def test_nothing_found_is_none_with_login_hint(empty_home: dict[str, str]) -> None:
    info = detect_auth(Settings(), empty_home)
    assert (info.method, info.ok) == ("none", False)
    assert info.hint == LOGIN_HINT
    assert "clawrap login" in info.hint and "ANTHROPIC_API_KEY" in info.hint


def test_api_key_is_shown_by_its_last_four_characters_only(empty_home: dict[str, str]) -> None:
    info = detect_auth(Settings(), {**empty_home, "ANTHROPIC_API_KEY": SECRET})
    assert (info.method, info.ok) == ("api_key", True)
    assert "wxyz" in info.summary
    assert "SECRET" not in info.summary


def test_empty_api_key_counts_as_unset(empty_home: dict[str, str]) -> None:
    info = detect_auth(Settings(), {**empty_home, "ANTHROPIC_API_KEY": "  "})
    assert info.method == "none"


@pytest.mark.parametrize("name", ["CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"])
def test_token_variables_are_oauth_token(empty_home: dict[str, str], name: str) -> None:
    info = detect_auth(Settings(), {**empty_home, name: SECRET})
    assert (info.method, info.ok) == ("oauth_token", True)
    assert name in info.summary
    assert "SECRET" not in info.summary


def test_credentials_file_in_home_is_cli_login(logged_in_home: dict[str, str]) -> None:
    info = detect_auth(Settings(), logged_in_home)
    assert (info.method, info.ok) == ("cli_login", True)
    assert "~/.claude/.credentials.json" in info.summary
    assert "max plan" in info.summary
    assert "SECRET" not in info.summary


def test_credentials_file_under_claude_config_dir_is_cli_login(
    empty_home: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "elsewhere"
    config.mkdir()
    (config / ".credentials.json").write_text("{}")
    info = detect_auth(Settings(), {**empty_home, "CLAUDE_CONFIG_DIR": str(config)})
    assert (info.method, info.ok) == ("cli_login", True)
    assert str(config) in info.summary


def test_settings_config_dir_wins_over_the_environment(
    logged_in_home: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty-config"
    empty.mkdir()
    info = detect_auth(Settings(config_dir=str(empty)), logged_in_home)
    assert info.method == "none"


def test_empty_credentials_file_is_not_a_login(empty_home: dict[str, str]) -> None:
    claude = Path(empty_home["HOME"]) / ".claude"
    claude.mkdir()
    (claude / ".credentials.json").write_text("")
    assert detect_auth(Settings(), empty_home).method == "none"


def test_api_key_takes_precedence_over_a_login_and_says_so(
    logged_in_home: dict[str, str],
) -> None:
    info = detect_auth(Settings(), {**logged_in_home, "ANTHROPIC_API_KEY": SECRET})
    assert info.method == "api_key"
    assert "not used" in info.summary


def test_bedrock_with_region_is_ok(empty_home: dict[str, str]) -> None:
    env = {**empty_home, "CLAUDE_CODE_USE_BEDROCK": "1", "AWS_REGION": "eu-west-1"}
    env["AWS_PROFILE"] = "work"
    info = detect_auth(Settings(), env)
    assert (info.method, info.ok) == ("bedrock", True)
    assert "eu-west-1" in info.summary and "work" in info.summary


def test_bedrock_without_region_asks_for_aws_region(empty_home: dict[str, str]) -> None:
    info = detect_auth(Settings(), {**empty_home, "CLAUDE_CODE_USE_BEDROCK": "true"})
    assert (info.method, info.ok) == ("bedrock", False)
    assert "AWS_REGION" in info.hint


def test_bedrock_wins_over_an_api_key(empty_home: dict[str, str]) -> None:
    env = {**empty_home, "CLAUDE_CODE_USE_BEDROCK": "1", "ANTHROPIC_API_KEY": SECRET}
    assert detect_auth(Settings(), env).method == "bedrock"


def test_bedrock_flag_zero_is_off(empty_home: dict[str, str]) -> None:
    env = {**empty_home, "CLAUDE_CODE_USE_BEDROCK": "0", "ANTHROPIC_API_KEY": SECRET}
    assert detect_auth(Settings(), env).method == "api_key"


def test_vertex_with_project_and_region_is_ok(empty_home: dict[str, str]) -> None:
    env = {
        **empty_home,
        "CLAUDE_CODE_USE_VERTEX": "1",
        "ANTHROPIC_VERTEX_PROJECT_ID": "my-project",
        "CLOUD_ML_REGION": "us-east5",
    }
    info = detect_auth(Settings(), env)
    assert (info.method, info.ok) == ("vertex", True)
    assert "my-project" in info.summary and "us-east5" in info.summary


def test_vertex_names_what_is_missing(empty_home: dict[str, str]) -> None:
    info = detect_auth(Settings(), {**empty_home, "CLAUDE_CODE_USE_VERTEX": "yes"})
    assert (info.method, info.ok) == ("vertex", False)
    assert "ANTHROPIC_VERTEX_PROJECT_ID" in info.hint and "CLOUD_ML_REGION" in info.hint


def test_mask_hides_short_values_entirely() -> None:
    assert mask("abc123") == "(set)"
    assert mask(SECRET) == "...wxyz"


def test_cli_info_prefers_settings_cli_path(tmp_path: Path) -> None:
    fake = tmp_path / "claude"
    fake.write_text("#!/bin/sh\necho '9.8.7 (Claude Code)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    info = cli_info(Settings(cli_path=str(fake)))
    assert (info.path, info.source, info.version) == (str(fake), "settings", "9.8.7")


def test_cli_info_reports_a_missing_cli_path(tmp_path: Path) -> None:
    info = cli_info(Settings(cli_path=str(tmp_path / "nope")))
    assert info.version is None and info.error


def test_cli_info_reports_a_cli_that_fails(tmp_path: Path) -> None:
    fake = tmp_path / "claude"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    info = cli_info(Settings(cli_path=str(fake)))
    assert info.version is None
    assert info.error is not None and "3" in info.error


def test_cli_info_finds_the_bundled_cli_and_its_recorded_version() -> None:
    if bundled_cli() is None:
        pytest.skip("this claude-agent-sdk build bundles no CLI")
    info = cli_info(Settings(), run=False)
    assert info.source == "bundled"
    assert info.version is not None and info.version[0].isdigit()
