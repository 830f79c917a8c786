"""Settings: every field is checked however its value arrives (code, CLAWRAP_*, a flag),
and a bad value is named with what the field accepts, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clawrap import Settings
from clawrap.cli._main import build_parser, main, settings_from_args
from clawrap.core._config import SettingsError, accepts, env_name, flag_name

# One value each field refuses, as text (the way the environment and flags give it).
BAD: dict[str, str] = {
    "host": " ",
    "port": "65536",
    "cors_origins": "http://a.example/path",
    "log_format": "xml",
    "log_level": "chatty",
    "max_body_bytes": "0",
    "request_timeout": "0",
    "idle_timeout": "-1",
    "max_concurrency": "0",
    "queue_timeout": "nan",
    "default_model": " ",
    "allow_any_model": "maybe",
    "model_map": "gpt-4o",
    "cli_start_timeout": "0",
    "upstream_retries": "-1",
    "offline": "2",
    "pool_size": "-1",
    "pool_max": "0",
    "pool_idle_expiry": "0",
    "pool_memory_mb": "0",
    "pool_parked": "-1",
    "tool_wait": "-1",
    "session_ttl": "0",
    "allow_remote_images": "sometimes",
    "agent_allow_bypass": "perhaps",
    "agent_timeout": "0",
    "response_ttl": "0",
    "response_store_mb": "0",
    "database_url": "mysql://db.example/clawrap",
    "database_pool": "0",
    "max_connections": "0",
    "body_timeout": "0",
    "header_timeout": "-1",
    "json_schema_max_depth": "0",
    "auth_probe_interval": "-1",
    "breaker_threshold": "0",
    "breaker_cooldown": "-1",
    "response_cache": "often",
    "cache_ttl": "0",
    "cache_max_entries": "-1",
    "max_n": "0",
    "debug": "loud",
    "trusted_proxies": "10.0.0.300",
    "limits_url": "mongodb://db.example",
    "drain_seconds": "-1",
}
# Free text or paths: any non-empty value is accepted (checked where it is used).
UNCHECKED_TEXT = {
    "api_key",
    "allowed_hosts",
    "models",
    "fallback_models",
    "cli_path",
    "config_dir",
    "data_dir",
    "session_db",
    "usage_db",
    "keys_file",
    "metrics_key",
    "agent_roots",
    "mcp_config",
}


def test_every_field_is_either_checked_here_or_free_text() -> None:
    assert set(Settings.model_fields) <= set(BAD) | UNCHECKED_TEXT


def test_every_number_has_a_declared_range() -> None:
    for name, info in Settings.model_fields.items():
        if info.annotation in (int, float):
            bounds = [m for m in info.metadata if any(hasattr(m, b) for b in ("ge", "gt"))]
            assert bounds, f"{name}: give it a range (Port, Seconds, Count, AtLeastOne)"


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_from_the_environment_names_the_variable_and_the_rule(name: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({env_name(name): BAD[name]})
    (problem,) = caught.value.problems
    line = str(problem)
    assert line.startswith(f"{env_name(name)}={BAD[name]!r}: ")
    own_rule = (
        "cors origins must be",
        "model map entries are requested=served",
        "trusted proxies are IP addresses",
        "limits url must be",
        "the database URL must start with",
    )
    assert line.endswith(accepts(name)) or any(rule in line for rule in own_rule)


def test_an_empty_variable_counts_as_unset() -> None:
    settings = Settings.from_env({"CLAWRAP_HOST": "", "CLAWRAP_PORT": "", "CLAWRAP_API_KEY": " "})
    assert (settings.host, settings.port, settings.api_key) == ("127.0.0.1", 8000, None)


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_from_code_names_the_field_its_variable_and_the_rule(name: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings(**{name: BAD[name]})
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{name}=")
    assert f"({env_name(name)})" in str(problem)


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_flag_is_refused_naming_the_flag(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if Settings.model_fields[name].annotation is bool:
        pytest.skip("boolean flags take no value (--offline / --no-offline)")
    assert main(["serve", f"{flag_name(name)}={BAD[name]}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"clawrap: {flag_name(name)} ")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_rule_gives_the_allowed_range() -> None:
    assert accepts("port") == "a whole number from 0 to 65535"
    assert accepts("max_concurrency") == "a whole number, at least 1"
    assert accepts("queue_timeout") == "a number, more than 0"
    assert accepts("log_format") == "text or json"
    with pytest.raises(SettingsError, match="from 0 to 65535"):
        Settings(port=-1)


def test_serve_refuses_bad_variables_one_line_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLAWRAP_POOL_MAX", "0")
    monkeypatch.setenv("CLAWRAP_SESSION_TTL", "forever")
    assert main(["serve", "--port", "9"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "clawrap: CLAWRAP_POOL_MAX='0': pool max must be a whole number, at least 1",
        "clawrap: CLAWRAP_SESSION_TTL='forever': session ttl must be a number, more than 0",
    ]


def test_a_flag_that_fixes_a_bad_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWRAP_PORT", "99999")
    args = build_parser().parse_args(["serve", "--port", "9"])
    assert settings_from_args(args).port == 9


def test_an_assignment_is_checked_too() -> None:
    settings = Settings()
    with pytest.raises(SettingsError, match="CLAWRAP_MAX_CONCURRENCY"):
        settings.max_concurrency = 0
    assert settings.max_concurrency == 4


def test_an_unknown_setting_from_code_is_refused() -> None:
    with pytest.raises(SettingsError, match="no such setting"):
        Settings(max_concurency=3)  # type: ignore[call-arg]


def test_an_api_key_is_never_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings(api_key=12345)  # type: ignore[arg-type]
    assert "12345" not in str(caught.value)


def test_code_gets_only_what_it_passes_not_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAWRAP_PORT", "9100")
    monkeypatch.setenv("CLAWRAP_API_KEY", "from-the-environment")
    assert (Settings().port, Settings().api_key) == (8000, None)
    assert Settings.from_env().port == 9100


def test_values_are_read_as_their_types_from_code_and_text() -> None:
    settings = Settings(
        cors_origins="http://a:1, chrome-extension://abc",  # type: ignore[arg-type]
        models=["x", "y"],  # type: ignore[arg-type]
        request_timeout=30,
        data_dir="~/somewhere",  # type: ignore[arg-type]
        log_level="DEBUG",  # type: ignore[arg-type]
    )
    assert settings.cors_origins == ("http://a:1", "chrome-extension://abc")
    assert settings.models == ("x", "y")
    assert settings.request_timeout == 30.0
    assert settings.data_dir == Path("~/somewhere").expanduser()
    assert settings.log_level == "debug"


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("CLAWRAP_OFFLINE", "yes", True),
        ("CLAWRAP_OFFLINE", "off", False),
        ("CLAWRAP_AGENT_ROOTS", "/a, /b", ("/a", "/b")),
        ("CLAWRAP_QUEUE_TIMEOUT", "2.5", 2.5),
        ("clawrap_pool_size", "3", 3),
    ],
)
def test_variables_are_parsed(variable: str, raw: str, expected: Any) -> None:
    settings = Settings.from_env({variable: raw})
    assert getattr(settings, variable.lower().removeprefix("clawrap_")) == expected
