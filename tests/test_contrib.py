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


HAPROXY = CONTRIB / "haproxy"


def test_the_haproxy_config_routes_by_the_keys_clients_send() -> None:
    text = (HAPROXY / "haproxy.cfg").read_text(encoding="utf-8")
    for needed in (
        "option http-buffer-request",
        "req.hdr(x-session-id)",
        "req.body,json_query('$.session_id')",
        "req.body,json_query('$.previous_response_id')",
        "balance hash var(txn.route)",
        "hash-type consistent",
        "stick store-response res.hdr(x-session-id)",
        "stick store-response res.hdr(x-clawrap-response-id)",
        "option httpchk GET /health",
        "option forwardfor",
        "http-request del-header Forwarded",
        "http-request set-header X-Forwarded-Host",
    ):
        assert needed in text, needed


def test_the_haproxy_config_is_valid_where_haproxy_is_installed(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess

    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed")
    env = {**os.environ, "CLAWRAP_A": "127.0.0.1:1", "CLAWRAP_B": "127.0.0.1:2"}
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(HAPROXY / "haproxy.cfg")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_compose_file_runs_two_instances_on_shared_stores() -> None:
    if not HAVE_YAML:
        pytest.skip("PyYAML is not installed")
    import yaml

    data = yaml.safe_load((HAPROXY / "compose.yaml").read_text(encoding="utf-8"))
    services = data["services"]
    assert set(services) == {"clawrap-a", "clawrap-b", "haproxy", "postgres", "redis"}
    proxy_ip = services["haproxy"]["networks"]["clawrap"]["ipv4_address"]
    for name in ("clawrap-a", "clawrap-b"):
        env = services[name]["environment"]
        assert env["CLAWRAP_DATABASE_URL"].startswith("postgresql://")
        assert env["CLAWRAP_LIMITS_URL"].startswith("redis://redis:")
        assert env["CLAWRAP_TRUSTED_PROXIES"] == proxy_ip
    mounted = services["haproxy"]["volumes"][0]
    assert mounted.startswith("./haproxy.cfg:")
