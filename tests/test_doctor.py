"""clawrap doctor: one line per check, a fix for each failure, non-zero exit on failure."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from clawrap.cli._doctor import check_auth, check_settings, doctor_main, is_loopback
from clawrap.core._config import Settings

DUMMY_KEY = "sk-ant-dummy-key-for-tests-0000"


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """No credentials anywhere: an empty home, an empty CLI config dir, a fresh data dir."""
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "claude-config"
    config.mkdir()
    return {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CLAUDE_CONFIG_DIR": str(config),
        "CLAWRAP_DATA_DIR": str(tmp_path / "data"),
        "CLAWRAP_PORT": str(_free_port()),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    status = doctor_main(argv, environ=env, out=out)
    return status, out.getvalue()


def line_of(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if f" {name} " in line)


def test_without_credentials_it_fails_and_says_how_to_log_in(clean_env: dict[str, str]) -> None:
    status, output = run([], clean_env)
    assert status != 0
    assert "FAIL" in line_of(output, "Authentication")
    assert "clawrap login" in output and "ANTHROPIC_API_KEY" in output


def test_with_an_api_key_every_check_passes(clean_env: dict[str, str]) -> None:
    status, output = run([], {**clean_env, "ANTHROPIC_API_KEY": DUMMY_KEY})
    assert status == 0, output
    assert "all checks passed" in output


def test_the_key_itself_is_never_printed(clean_env: dict[str, str]) -> None:
    _, output = run([], {**clean_env, "ANTHROPIC_API_KEY": DUMMY_KEY})
    assert DUMMY_KEY not in output
    assert DUMMY_KEY[-4:] in output


def test_live_request_is_skipped_unless_asked(clean_env: dict[str, str]) -> None:
    _, output = run([], {**clean_env, "ANTHROPIC_API_KEY": DUMMY_KEY})
    assert "--live" in line_of(output, "Live request")


def test_a_port_in_use_fails(clean_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status, output = run(["--port", str(port)], {**clean_env, "ANTHROPIC_API_KEY": DUMMY_KEY})
    assert status != 0
    assert "in use" in line_of(output, "Port")


def test_a_data_dir_that_cannot_be_created_fails(clean_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**clean_env, "ANTHROPIC_API_KEY": DUMMY_KEY, "CLAWRAP_DATA_DIR": str(blocker / "x")}
    status, output = run([], env)
    assert status != 0
    assert "FAIL" in line_of(output, "Data directory")


def test_the_data_dir_is_created_when_missing(clean_env: dict[str, str]) -> None:
    run([], clean_env)
    assert Path(clean_env["CLAWRAP_DATA_DIR"]).is_dir()


def test_output_is_plain_ascii_when_the_stream_is_not_utf8(clean_env: dict[str, str]) -> None:
    _, output = run([], clean_env)
    assert output.isascii()


def test_output_uses_check_marks_on_a_utf8_stream(clean_env: dict[str, str]) -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8")
    doctor_main([], environ=clean_env, out=out)
    assert "✗" in raw.getvalue().decode("utf-8")


def test_listening_beyond_loopback_without_a_key_fails() -> None:
    (check,) = check_settings(Settings(host="0.0.0.0"))
    assert check.status == "fail"
    assert "CLAWRAP_API_KEY" in check.fix


def test_listening_beyond_loopback_with_a_key_passes() -> None:
    (check,) = check_settings(Settings(host="0.0.0.0", api_key="k" * 32))
    assert check.status == "ok"


def test_cors_wildcard_fails() -> None:
    (check,) = check_settings(Settings(cors_origins=("*",)))
    assert check.status == "fail"


def test_agent_bypass_on_loopback_with_a_key_warns() -> None:
    settings = Settings(agent_roots=("/srv/work",), agent_allow_bypass=True, api_key="k" * 32)
    (check,) = check_settings(settings)
    assert check.status == "warn"


def test_agent_bypass_without_a_key_fails() -> None:
    (check,) = check_settings(Settings(agent_roots=("/srv/work",), agent_allow_bypass=True))
    assert check.status == "fail"


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("::", False)],
)
def test_loopback_addresses(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


# -- the live request, against a scripted stand-in for the Messages API on loopback


class _StandIn(BaseHTTPRequestHandler):
    refuse = False

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
        if not self.path.startswith("/v1/messages"):
            self.send_error(404)
            return
        if self.refuse:
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            self._send(401, "application/json", json.dumps({"type": "error", "error": error}))
            return
        message = {
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-haiku-4-5"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        }
        if not body.get("stream"):
            message |= {"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}
            self._send(200, "application/json", json.dumps(message))
            return
        events = [
            {"type": "message_start", "message": message},
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "ok"},
            },
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 1},
            },
            {"type": "message_stop"},
        ]
        sse = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
        self._send(200, "text/event-stream", sse)

    def _send(self, status: int, kind: str, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _stand_in(refuse: bool) -> Iterator[str]:
    handler = type("Handler", (_StandIn,), {"refuse": refuse})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def accepting_model() -> Iterator[str]:
    yield from _stand_in(refuse=False)


@pytest.fixture
def refusing_model() -> Iterator[str]:
    yield from _stand_in(refuse=True)


def _children() -> set[int]:
    """Pids whose parent is this process, zombies included (they were not reaped)."""
    return {child.pid for child in psutil.Process().children()}


def _live_env(clean_env: dict[str, str], base_url: str) -> dict[str, str]:
    return {
        **clean_env,
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": DUMMY_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


@pytest.mark.e2e
def test_live_request_through_the_real_cli_passes(
    clean_env: dict[str, str], accepting_model: str
) -> None:
    before = _children()
    status, output = run(["--live"], _live_env(clean_env, accepting_model))
    assert status == 0, output
    assert "OK" in line_of(output, "Live request")
    assert _children() <= before


@pytest.mark.e2e
def test_live_request_refused_with_401_says_how_to_log_in(
    clean_env: dict[str, str], refusing_model: str
) -> None:
    before = _children()
    status, output = run(["--live"], _live_env(clean_env, refusing_model))
    assert status != 0
    assert "401" in line_of(output, "Live request")
    fix = output.split(" Live request ", 1)[1].splitlines()[1]
    assert "fix:" in fix and "clawrap login" in fix
    assert _children() <= before


def test_a_stored_login_warns_that_plain_requests_carry_the_clis_environment_note(
    tmp_path: Path,
) -> None:
    (tmp_path / ".credentials.json").write_text('{"claudeAiOauth": {"accessToken": "x"}}')
    check = check_auth(Settings(config_dir=str(tmp_path)), {"HOME": str(tmp_path)})
    assert check.status == "warn"
    assert "CLAUDE_CODE_OAUTH_TOKEN" in check.fix


def test_an_oauth_token_needs_no_warning(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-abcdefghijkl"}
    assert check_auth(Settings(config_dir=str(tmp_path)), env).status == "ok"


def test_a_mistyped_clawrap_variable_is_named_with_the_setting_it_resembles() -> None:
    from clawrap.cli._doctor import check_variables

    (check,) = check_variables({"CLAWRAP_PROT": "9000", "CLAWRAP_PORT": "1", "HOME": "/"})
    assert check.status == "warn"
    assert "CLAWRAP_PROT" in check.detail and "CLAWRAP_PORT" in check.detail


def test_known_clawrap_variables_raise_no_warning() -> None:
    from clawrap.cli._doctor import check_variables

    assert check_variables({"CLAWRAP_PORT": "1", "CLAWRAP_API_KEY": "x", "PATH": "/bin"}) == []
