"""The files in contrib/: each parses, and each client configuration points at clawrap."""

from __future__ import annotations

import configparser
import importlib.util
import json
import plistlib
from pathlib import Path

import pytest

CONTRIB = Path(__file__).resolve().parents[1] / "contrib"
BASE_URL = "http://127.0.0.1:8000/v1"

# Client configurations; the Grafana dashboard is checked against /metrics elsewhere.
JSON_FILES = sorted(p for p in CONTRIB.rglob("*.json") if p.parent.name != "grafana")
YAML_FILES = sorted([*CONTRIB.rglob("*.yaml"), *CONTRIB.rglob("*.yml")])
HAVE_YAML = importlib.util.find_spec("yaml") is not None


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _id(path: Path) -> str:
    return str(path.relative_to(CONTRIB))


def test_contrib_has_the_expected_configurations() -> None:
    names = {_id(p) for p in [*JSON_FILES, *YAML_FILES]}
    assert {
        "continue/config.yaml",
        "zed/settings.json",
        "aider/.aider.conf.yml",
        "open-webui/compose.yaml",
    } <= names


@pytest.mark.parametrize("path", JSON_FILES, ids=_id)
def test_json_parses_and_names_the_base_url(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert BASE_URL in _strings(data)


@pytest.mark.parametrize("path", YAML_FILES, ids=_id)
def test_yaml_parses_and_names_the_base_url(path: Path) -> None:
    if not HAVE_YAML:
        pytest.skip("PyYAML is not installed")
    import yaml  # type: ignore[import-untyped]

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert BASE_URL in _strings(data)


@pytest.mark.parametrize("path", YAML_FILES, ids=_id)
def test_yaml_names_the_base_url_as_text(path: Path) -> None:
    # Holds without PyYAML too: the URL is written out, not assembled.
    assert BASE_URL in path.read_text(encoding="utf-8")


def test_continue_asks_for_usage_in_streams() -> None:
    text = (CONTRIB / "continue/config.yaml").read_text(encoding="utf-8")
    assert "include_usage: true" in text and "provider: openai" in text


def test_aider_uses_the_openai_prefix() -> None:
    text = (CONTRIB / "aider/.aider.conf.yml").read_text(encoding="utf-8")
    assert "model: openai/sonnet" in text


def test_zed_uses_openai_compatible_with_models() -> None:
    data = json.loads((CONTRIB / "zed/settings.json").read_text(encoding="utf-8"))
    provider = data["language_models"]["openai_compatible"]["clawrap"]
    assert {m["name"] for m in provider["available_models"]} >= {"sonnet", "opus", "haiku"}


def test_launchd_plist_parses_and_keeps_clawrap_running() -> None:
    with (CONTRIB / "launchd/dev.clawrap.plist").open("rb") as f:
        plist = plistlib.load(f)
    assert plist["Label"] == "dev.clawrap"
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] is True
    assert "clawrap-launch" in " ".join(plist["ProgramArguments"])


def test_launchd_wrapper_reads_the_key_file() -> None:
    text = (CONTRIB / "launchd/clawrap-launch.sh").read_text(encoding="utf-8")
    assert ".config/clawrap/api-key" in text and "exec clawrap serve" in text


def test_systemd_unit_parses_and_runs_clawrap_serve() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(CONTRIB / "systemd/clawrap.service", encoding="utf-8")
    exec_start = unit["Service"]["ExecStart"]
    assert "clawrap serve" in exec_start and ".config/clawrap/api-key" in exec_start
    assert unit["Install"]["WantedBy"] == "default.target"
