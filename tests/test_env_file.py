"""``.env`` in the working directory: read at start-up, the real environment winning."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawrap.cli._main import read_env_file
from clawrap.core._config import Settings


def test_the_file_fills_in_what_the_environment_lacks(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\n"
        "CLAWRAP_PORT=9123\n"
        "export CLAWRAP_MAX_CONCURRENCY=7\n"
        'CLAWRAP_DEFAULT_MODEL="haiku"\n'
        "ANTHROPIC_API_KEY=sk-from-file\n"
    )
    environ = {"CLAWRAP_PORT": "8001", "ANTHROPIC_API_KEY": ""}
    added = read_env_file(env_file, environ)
    assert sorted(added) == ["CLAWRAP_DEFAULT_MODEL", "CLAWRAP_MAX_CONCURRENCY"]
    # Set in the real environment, even empty: the environment wins.
    assert environ["CLAWRAP_PORT"] == "8001" and environ["ANTHROPIC_API_KEY"] == ""
    settings = Settings.from_env(environ)
    assert settings.port == 8001 and settings.max_concurrency == 7
    assert settings.default_model == "haiku"


def test_the_working_directory_s_file_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    environ: dict[str, str] = {}
    assert read_env_file(environ=environ) == []  # no file: nothing
    (tmp_path / ".env").write_text("CLAWRAP_OFFLINE=1\n")
    assert read_env_file(environ=environ) == ["CLAWRAP_OFFLINE"]
    assert Settings.from_env(environ).offline is True
