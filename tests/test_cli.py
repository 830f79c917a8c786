"""The command line: flags over CLAWRAP_* variables, delegation, and refusing bad values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import clawrap.cli._doctor as doctor
import clawrap.scripted._mock_upstream as mock_upstream
from clawrap.cli._main import build_parser, main, settings_from_args, settings_problems
from clawrap.core._config import Settings


def parse(*argv: str) -> Settings:
    return settings_from_args(build_parser().parse_args(["serve", *argv]))


def test_a_flag_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWRAP_PORT", "9000")
    monkeypatch.setenv("CLAWRAP_MAX_CONCURRENCY", "7")
    settings = parse("--port", "9100")
    assert (settings.port, settings.max_concurrency) == (9100, 7)


def test_boolean_flags_turn_on_and_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWRAP_OFFLINE", "1")
    assert parse().offline is True
    assert parse("--no-offline").offline is False


def test_list_flags_are_comma_separated() -> None:
    settings = parse("--cors-origins", "http://a:1, http://b:2", "--api-key", "k")
    assert settings.cors_origins == ("http://a:1", "http://b:2")
    assert settings.api_key == "k"


def test_a_malformed_number_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse("--port", "eighty")
    assert exit_info.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_values_the_server_cannot_run_with_are_refused_before_starting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--log-format", "xml", "--max-concurrency", "0"]) == 2
    err = capsys.readouterr().err
    assert "log format" in err and "max concurrency" in err


def test_serve_warns_of_a_clawrap_variable_no_setting_reads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import clawrap.cli._main as cli_main

    monkeypatch.setenv("CLAWRAP_MAX_CONCURENCY", "8")
    monkeypatch.setattr(cli_main, "_serve", lambda settings: 0)
    assert main(["serve"]) == 0
    err = capsys.readouterr().err
    assert "CLAWRAP_MAX_CONCURENCY is not a setting" in err
    assert "CLAWRAP_MAX_CONCURRENCY" in err


def test_default_settings_have_no_problems() -> None:
    assert settings_problems(Settings()) == []


def test_doctor_and_mock_upstream_get_their_own_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(doctor, "doctor_main", lambda argv: seen.append(("doctor", argv)) or 0)
    monkeypatch.setattr(
        mock_upstream, "mock_upstream_main", lambda argv: seen.append(("mock", argv)) or 3
    )
    assert main(["doctor", "--live"]) == 0
    assert main(["mock-upstream", "--port", "5"]) == 3
    assert seen == [("doctor", ["--live"]), ("mock", ["--port", "5"])]


def test_python_dash_m_clawrap_prints_its_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clawrap", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.stdout.startswith("clawrap ")


def test_login_runs_the_clis_own_auth_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "args"
    fake = tmp_path / "claude"
    fake.write_text(f'#!/bin/sh\necho "$@" > {record}\nexit 3\n')
    fake.chmod(0o755)
    monkeypatch.setenv("CLAWRAP_CLI_PATH", str(fake))

    assert main(["login"]) == 3
    assert record.read_text().split() == ["auth", "login"]
