"""Trusted proxies: forwarding headers believed from the configured peers only.

The rules directly (hostile and malformed values included), then through the app:
the Host check and the request log's client address; and the app while draining.
"""

from __future__ import annotations

import ipaddress
import logging

import pytest
from asgi_fakes import FakeDialect, call
from scripted_backend import ScriptedBackend

from clawrap.core._config import Settings, SettingsError
from clawrap.core._events import Finished, TextDelta
from clawrap.http._app import App, create_app
from clawrap.http._proxies import MAX_CHAIN_CHARS, TrustedProxies, parse_address

LB = ipaddress.ip_address("10.0.0.5")
STRANGER = ipaddress.ip_address("203.0.113.9")
PROXIES = TrustedProxies(["10.0.0.0/24", "fd00::/8"])


def resolve(peer: object, headers: dict[str, str]) -> tuple[str | None, str | None]:
    address = peer if not isinstance(peer, str) else ipaddress.ip_address(peer)
    client, host = PROXIES.client_and_host(address, headers)  # type: ignore[arg-type]
    return (None if client is None else str(client)), host


def test_headers_from_an_untrusted_peer_are_ignored() -> None:
    spoofed = {
        "host": "127.0.0.1:8000",
        "x-forwarded-for": "10.0.0.1",
        "x-forwarded-host": "evil.example",
        "forwarded": "for=10.0.0.2;host=evil.example",
    }
    assert resolve(STRANGER, spoofed) == ("203.0.113.9", "127.0.0.1:8000")


def test_without_trusted_proxies_nothing_is_believed() -> None:
    none = TrustedProxies([])
    assert none.client_and_host(LB, {"x-forwarded-for": "1.2.3.4", "host": "h"}) == (LB, "h")


def test_a_trusted_balancer_tells_the_client_and_host() -> None:
    headers = {
        "host": "10.0.0.5:8000",
        "x-forwarded-for": "198.51.100.7",
        "x-forwarded-host": "ai.example",
    }
    assert resolve(LB, headers) == ("198.51.100.7", "ai.example")


def test_the_chain_is_read_from_the_right_past_trusted_hops_only() -> None:
    # The client forged the leftmost entry; the balancer appended the real address.
    headers = {"x-forwarded-for": "10.0.0.9, 198.51.100.7, 10.0.0.6"}
    assert resolve(LB, headers)[0] == "198.51.100.7"


def test_forwarded_wins_over_x_forwarded_and_takes_quoted_ipv6() -> None:
    headers = {
        "forwarded": 'for="[2001:db8::1]:4711";host=ai.example;proto=https',
        "x-forwarded-for": "198.51.100.7",
        "x-forwarded-host": "other.example",
    }
    assert resolve(LB, headers) == ("2001:db8::1", "ai.example")


@pytest.mark.parametrize(
    "chain",
    ["unknown", "_hidden", "not an address", "999.1.1.1", "[::1", "1.2.3.4:x:y", ",,,", "\x00"],
)
def test_a_malformed_entry_stops_at_the_last_trusted_hop(chain: str) -> None:
    client, _ = resolve(LB, {"x-forwarded-for": chain})
    assert client == "10.0.0.5"


def test_an_oversized_chain_is_not_parsed() -> None:
    chain = ", ".join(["198.51.100.7"] * (MAX_CHAIN_CHARS // 10))
    assert resolve(LB, {"x-forwarded-for": chain})[0] == "10.0.0.5"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("1.2.3.4:80", "1.2.3.4"),
        ("[::1]:80", "::1"),
        ("::1", "::1"),
        ('"[2001:db8::2]"', "2001:db8::2"),
        ("::ffff:10.0.0.5", "10.0.0.5"),
        ("", None),
        ("localhost", None),
    ],
)
def test_addresses_are_parsed_strictly(text: str, expected: str | None) -> None:
    parsed = parse_address(text)
    assert (None if parsed is None else str(parsed)) == expected


def test_a_bad_trusted_proxy_stops_start_up() -> None:
    with pytest.raises(SettingsError, match="trusted proxies are IP addresses"):
        Settings(trusted_proxies=("10.0.0.0/33",))


def _app(**settings: object) -> App:
    fake = FakeDialect()
    backend = ScriptedBackend([TextDelta("hi"), Finished("end_turn")])
    return create_app(Settings(**settings), backend, dialects={"openai": fake, "anthropic": fake})  # type: ignore[arg-type]


async def test_a_trusted_forwarded_host_passes_the_host_check_only_when_allowed() -> None:
    # The test client connects from 127.0.0.1.
    app = _app(trusted_proxies=("127.0.0.1",), allowed_hosts=("ai.example",))
    ok = {"x-forwarded-host": "ai.example", "host": "127.0.0.1:8000"}
    assert (await call(app, "GET", "/v1/models", headers=ok)).status == 200
    bad = {"x-forwarded-host": "evil.example", "host": "127.0.0.1:8000"}
    refused = await call(app, "GET", "/v1/models", headers=bad)
    assert refused.status == 403 and refused.json()["error"]["code"] == "host_not_allowed"
    garbage = {"x-forwarded-host": "a b@c", "host": "127.0.0.1:8000"}
    assert (await call(app, "GET", "/v1/models", headers=garbage)).status == 400


async def test_an_untrusted_peer_cannot_pass_the_host_check_with_forwarded_headers() -> None:
    app = _app(trusted_proxies=("10.0.0.0/8",))
    spoof = {"host": "evil.example", "x-forwarded-host": "localhost", "forwarded": "host=localhost"}
    assert (await call(app, "GET", "/v1/models", headers=spoof)).status == 403
    # And forwarded headers cannot make a loopback request look foreign either.
    fine = {"x-forwarded-host": "evil.example"}
    assert (await call(app, "GET", "/v1/models", headers=fine)).status == 200


async def test_the_log_line_names_the_forwarded_client(caplog: pytest.LogCaptureFixture) -> None:
    app = _app(trusted_proxies=("127.0.0.1",))
    with caplog.at_level(logging.INFO, logger="clawrap.requests"):
        await call(app, "GET", "/health", headers={"x-forwarded-for": "198.51.100.7"})
        await call(app, "GET", "/health")
    lines = [r.getMessage() for r in caplog.records if r.name == "clawrap.requests"]
    assert "client=198.51.100.7" in lines[0]
    assert "client=127.0.0.1" in lines[1]


async def test_a_draining_app_refuses_work_in_each_shape_and_says_so_on_health() -> None:
    app = _app()
    app.begin_drain()
    health = await call(app, "GET", "/health")
    assert (health.status, health.json()) == (503, {"status": "draining"})
    chat = await call(app, "POST", "/v1/chat/completions", json_body={})
    assert chat.status == 503 and chat.json()["error"]["code"] == "server_draining"
    assert chat.headers["retry-after"] == "1"
    messages = await call(app, "POST", "/v1/messages", json_body={})
    assert messages.status == 503 and messages.json()["error"]["type"] == "overloaded_error"
    assert (await call(app, "GET", "/v1/models")).status == 200


def test_trusting_every_address_is_warned_about() -> None:
    from clawrap.http._security import unsafe_settings_warnings

    assert any(
        "trusts every address" in w
        for w in unsafe_settings_warnings(Settings(trusted_proxies=("0.0.0.0/0",)))
    )
    assert unsafe_settings_warnings(Settings(trusted_proxies=("10.0.0.5",))) == []


async def test_a_new_websocket_while_draining_is_refused_at_the_handshake() -> None:
    import trio

    app = _app()
    app.begin_drain()
    sent: list[dict[str, object]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, object]:
        if incoming:
            return incoming.pop()
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/v1/responses",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "client": ("127.0.0.1", 50000),
        "extensions": {"websocket.http.response": {}},
    }
    with trio.fail_after(10):
        await app(scope, receive, send)
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 503
    assert b"server_draining" in sent[1]["body"]  # type: ignore[operator]
