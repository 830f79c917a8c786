"""Who may talk to the server: API key, Host, Origin and CORS rules, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from clawrap.core._config import Settings
from clawrap.http._security import (
    check_api_key,
    check_host,
    check_origin,
    cors_headers,
    host_name,
    is_preflight,
    preflight_headers,
    unsafe_settings_warnings,
)

KEY = "sk-clawrap-test-key-0123456789"


def keyed(**kwargs: Any) -> Settings:
    return Settings(api_key=KEY, **kwargs)


# -- API key -----------------------------------------------------------------------------------


def test_no_key_configured_lets_every_request_through() -> None:
    assert check_api_key(Settings(), "POST", "/v1/chat/completions", {}) is None


def test_a_missing_key_is_refused_with_401_and_says_how_to_send_it() -> None:
    error = check_api_key(keyed(), "POST", "/v1/chat/completions", {})
    assert error is not None and error.status == 401
    assert "x-api-key" in error.message and "Bearer" in error.message


def test_a_wrong_key_is_refused() -> None:
    error = check_api_key(keyed(), "GET", "/v1/models", {"authorization": "Bearer nope"})
    assert error is not None and error.message == "Invalid API key."


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {KEY}"},
        {"authorization": f"bearer   {KEY}  "},
        {"x-api-key": KEY},
        {"authorization": "Bearer placeholder", "x-api-key": KEY},
    ],
)
def test_the_key_is_accepted_as_bearer_or_x_api_key(headers: dict[str, str]) -> None:
    assert check_api_key(keyed(), "POST", "/v1/messages", headers) is None


def test_a_basic_authorization_is_not_a_bearer_key() -> None:
    assert check_api_key(keyed(), "GET", "/v1/models", {"authorization": f"Basic {KEY}"})


def test_health_is_open_without_a_key() -> None:
    assert check_api_key(keyed(), "GET", "/health", {}) is None


def test_a_cors_preflight_needs_no_key() -> None:
    headers = {"origin": "http://app.example", "access-control-request-method": "POST"}
    assert check_api_key(keyed(), "OPTIONS", "/v1/chat/completions", headers) is None


# -- Host --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8000",
        "127.0.0.1",
        "127.0.0.1:8000",
        "[::1]",
        "[::1]:8000",
        "LOCALHOST:1",
        "app.localhost:3000",
        "localhost.",
    ],
)
def test_loopback_names_are_allowed(host: str) -> None:
    assert check_host(Settings(), {"host": host}) is None


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "0.0.0.0:8000", "10.0.0.5"])
def test_other_hosts_are_refused_with_a_hint(host: str) -> None:
    error = check_host(Settings(), {"host": host})
    assert error is not None and error.status == 403
    assert "CLAWRAP_ALLOWED_HOSTS" in error.message


def test_allowed_hosts_extend_the_list_with_or_without_port() -> None:
    settings = Settings(allowed_hosts=("box.lan", "*.corp.example"))
    assert check_host(settings, {"host": "box.lan:8000"}) is None
    assert check_host(settings, {"host": "api.corp.example"}) is None
    assert check_host(settings, {"host": "corp.example.evil"}) is not None


def test_the_specific_bind_address_is_allowed() -> None:
    assert check_host(Settings(host="192.168.1.20"), {"host": "192.168.1.20:8000"}) is None


def test_a_wildcard_bind_address_allows_no_extra_host() -> None:
    assert check_host(Settings(host="0.0.0.0"), {"host": "0.0.0.0:8000"}) is not None


def test_a_request_without_host_is_not_a_rebinding_attack() -> None:
    assert check_host(Settings(), {}) is None


def test_host_name_strips_port_brackets_and_case() -> None:
    assert [host_name(h) for h in ("[::1]:80", "Example.COM:1", "::1")] == [
        "::1",
        "example.com",
        "::1",
    ]


# -- Origin and CORS ---------------------------------------------------------------------------


def test_a_request_without_origin_is_not_from_a_browser_page() -> None:
    assert check_origin(Settings(), {"host": "localhost:8000"}) is None


def test_an_unconfigured_origin_is_refused() -> None:
    error = check_origin(Settings(), {"origin": "https://evil.example", "host": "localhost:8000"})
    assert error is not None and error.status == 403
    assert "CLAWRAP_CORS_ORIGINS" in error.message


def test_a_null_origin_is_refused() -> None:
    assert check_origin(Settings(), {"origin": "null", "host": "localhost:8000"}) is not None


def test_a_configured_origin_is_allowed() -> None:
    settings = Settings(cors_origins=("http://localhost:3000",))
    headers = {"origin": "http://localhost:3000", "host": "localhost:8000"}
    assert check_origin(settings, headers) is None


def test_the_servers_own_pages_are_same_origin() -> None:
    headers = {"origin": "http://localhost:8000", "host": "localhost:8000"}
    assert check_origin(Settings(), headers) is None


def test_cors_headers_echo_only_a_configured_origin() -> None:
    settings = Settings(cors_origins=("http://localhost:3000",))
    headers = dict(cors_headers(settings, {"origin": "http://localhost:3000"}))
    assert headers["access-control-allow-origin"] == "http://localhost:3000"
    assert headers["vary"] == "origin"
    assert cors_headers(settings, {"origin": "http://other:3000"}) == []
    assert cors_headers(settings, {}) == []


def test_same_origin_requests_get_no_cors_headers() -> None:
    headers = {"origin": "http://localhost:8000", "host": "localhost:8000"}
    assert cors_headers(Settings(), headers) == []


def test_a_preflight_lists_the_headers_clients_send() -> None:
    settings = Settings(cors_origins=("http://localhost:3000",))
    request = {"origin": "http://localhost:3000", "access-control-request-method": "POST"}
    assert is_preflight("OPTIONS", request)
    headers = dict(preflight_headers(settings, request))
    allowed = headers["access-control-allow-headers"]
    for name in (
        "authorization",
        "x-api-key",
        "content-type",
        "anthropic-version",
        "x-claude-effort",
    ):
        assert name in allowed
    assert "POST" in headers["access-control-allow-methods"]


# -- the banner's warnings ---------------------------------------------------------------------


def test_listening_beyond_loopback_without_a_key_is_warned_about() -> None:
    assert unsafe_settings_warnings(Settings(host="0.0.0.0"))
    assert not unsafe_settings_warnings(Settings(host="0.0.0.0", api_key=KEY))
    assert not unsafe_settings_warnings(Settings())
