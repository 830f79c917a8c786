"""The CLI's login state: reading its status command, and the 401 gate it drives.

Units of the sans-IO state, then the real thing end to end: the real CLI's
``auth status`` over a config dir with no credentials turns completions into a
401 at the next probe, and a login appearing (the config dir's credentials
file, as ``clawrap login`` writes it) turns them back to 200, with no restart.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
import trio
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap, in_thread, serving_claude, start_upstream

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._login import LoginProbe, LoginState, parse_status
from clawrap.scripted._model import Reply


def test_parse_status_reads_the_cli_json() -> None:
    out = json.dumps({"loggedIn": True, "authMethod": "api_key", "apiProvider": "firstParty"})
    probe = parse_status(out.encode(), 5.0)
    assert probe == LoginProbe(True, "api_key", "firstParty", 5.0)


def test_parse_status_without_a_login_state_is_unknown() -> None:
    for out in (b"", b"not json", b"[]", b'{"loggedIn": "yes"}'):
        probe = parse_status(out, 1.0)
        assert probe.logged_in is None and probe.error


def test_parse_status_keeps_nothing_odd() -> None:
    out = json.dumps({"loggedIn": False, "authMethod": "x" * 500, "apiProvider": "a\nb"})
    probe = parse_status(out.encode(), 1.0)
    assert probe.auth_method is None and probe.api_provider is None


def test_only_a_probe_saying_logged_out_refuses() -> None:
    state = LoginState()
    assert state.refusal() is None  # never probed
    state.probed(LoginProbe(None, None, None, 1.0, "timed out"))
    assert state.refusal() is None  # could not tell
    state.probed(LoginProbe(False, "none", "firstParty", 2.0))
    refusal = state.refusal()
    assert refusal is not None and refusal.status == 401 and refusal.kind == "authentication"
    assert "clawrap login" in refusal.message
    state.probed(LoginProbe(True, "api_key", "firstParty", 3.0))
    assert state.refusal() is None


def test_an_upstream_401_is_recorded_but_never_closes_the_gate() -> None:
    state = LoginState()
    state.probed(LoginProbe(True, "api_key", "firstParty", 1.0))
    error = ClawrapError("authentication", "request id req_401 failed", code="x401")
    state.failed(error, 2.0)
    assert state.refusal() is None
    body = state.body()
    assert body["last_failure"] == {"at": 2, "code": "x401", "message": error.message}
    assert body["completions"] == "served" and body["logged_in"] is True


# -- end to end: the real CLI's status command


CREDENTIALS = {
    "claudeAiOauth": {
        "accessToken": "sk-ant-oat01-scripted",
        "refreshToken": "sk-ant-ort01-scripted",
        "expiresAt": 4_102_444_800_000,  # 2100: no refresh is attempted
        "scopes": ["user:inference", "user:profile"],
        "subscriptionType": "max",
    }
}


def _login(config_dir: Path) -> None:
    """What `clawrap login` leaves for the CLI: its credentials file in the config dir."""
    (config_dir / ".credentials.json").write_text(json.dumps(CREDENTIALS))


def _ask(server: Clawrap) -> str:
    with server.openai() as client:
        reply = client.chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "hello LOGIN-TEST"}]
        )
    return reply.choices[0].message.content or ""


def _auth_status(server: Clawrap) -> dict[str, object]:
    response = httpx.get(server.url + "/v1/auth/status", timeout=TEST_LIMIT)
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


@pytest.mark.e2e
@SDK_READER_LEFT_OPEN
async def test_a_lost_login_is_a_401_at_the_next_probe_and_recovers_by_itself(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    settings = Settings(
        port=0,
        pool_size=0,
        upstream_retries=0,
        data_dir=tmp_path / "data",
        auth_probe_interval=0.2,
    )
    with trio.fail_after(TEST_LIMIT):
        upstream = await start_upstream(nursery)
    # No key in the environment: the config dir alone decides whether the CLI is logged in.
    async with serving_claude(
        nursery, tmp_path, upstream, settings, env={"ANTHROPIC_API_KEY": ""}
    ) as server:
        config_dir = tmp_path / "claude"
        monitor = server.backend.login
        server.backend.start_login_monitor(nursery)
        with trio.fail_after(TEST_LIMIT):
            await monitor.wait_probes(1)
            status = await in_thread(lambda: _auth_status(server))
            assert status["logged_in"] is False and status["completions"] == "refused"

            with pytest.raises(openai.AuthenticationError) as caught:
                await in_thread(lambda: _ask(server))
            error = caught.value.response.json()["error"]
            assert error["type"] == "authentication_error"
            assert "clawrap login" in error["message"]
            assert upstream.model.requests == []  # refused before any run

            _login(config_dir)
            # A probe that started after the login finished: two more than now.
            await monitor.wait_probes(monitor.state.probes + 2)
            assert "LOGIN-TEST" in await in_thread(lambda: _ask(server))
            status = await in_thread(lambda: _auth_status(server))
            assert status["logged_in"] is True and status["completions"] == "served"
            assert status["cli_status"]["auth_method"] == "claude.ai"  # type: ignore[index]

            (config_dir / ".credentials.json").unlink()
            await monitor.wait_probes(monitor.state.probes + 2)
            with pytest.raises(openai.AuthenticationError):
                await in_thread(lambda: _ask(server))


@pytest.mark.e2e
@SDK_READER_LEFT_OPEN
async def test_an_upstream_401_is_recorded_and_probes_at_once(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # A probe interval far longer than the test: only the 401 can bring the next probe.
    settings = Settings(
        port=0,
        pool_size=0,
        upstream_retries=0,
        data_dir=tmp_path / "data",
        auth_probe_interval=3600.0,
    )
    with trio.fail_after(TEST_LIMIT):
        upstream = await start_upstream(nursery)
    async with serving_claude(nursery, tmp_path, upstream, settings) as server:
        upstream.model.when(
            "LOGIN-TEST",
            Reply(status=401, error_type="authentication_error", message="invalid x-api-key"),
        )
        monitor = server.backend.login
        server.backend.start_login_monitor(nursery)
        with trio.fail_after(TEST_LIMIT):
            await monitor.wait_probes(1)
            with pytest.raises(openai.AuthenticationError):
                await in_thread(lambda: _ask(server))
            await monitor.wait_probes(2)
            status = await in_thread(lambda: _auth_status(server))
        # The key is there, so the CLI still reports a login: requests are not refused.
        assert status["logged_in"] is True and status["completions"] == "served"
        failure = status["last_failure"]
        assert isinstance(failure, dict) and failure["code"] == "upstream_authentication"


@pytest.mark.e2e
@SDK_READER_LEFT_OPEN
async def test_deep_health_makes_one_round_trip_and_caches_it(clawrap_server: Clawrap) -> None:
    def deep() -> httpx.Response:
        return httpx.get(clawrap_server.url + "/healthz/deep", timeout=TEST_LIMIT)

    with trio.fail_after(TEST_LIMIT):
        first = await in_thread(deep)
        second = await in_thread(deep)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "ok" and first.json()["cached"] is False
    assert second.json()["cached"] is True
    assert len(clawrap_server.model.requests_matching("Health check")) == 1


@pytest.mark.e2e
@SDK_READER_LEFT_OPEN
async def test_deep_health_reports_a_failing_upstream_as_503(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("Health check", Reply(status=500, message="down"))
    with trio.fail_after(TEST_LIMIT):
        response = await in_thread(
            lambda: httpx.get(clawrap_server.url + "/healthz/deep", timeout=TEST_LIMIT)
        )
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing" and body["error"]["kind"] == "api_error"
    assert "down" not in body["error"]["message"]
