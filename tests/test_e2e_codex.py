"""Codex CLI end to end: ``codex exec`` over HTTP and over a WebSocket, against clawrap.

Codex talks only the Responses API. It is configured with a provider at the test's server
(``wire_api = "responses"``; ``supports_websockets`` for its WebSocket mode), update checks
off and, since a test machine gives it no sandbox of its own, its sandbox bypassed. The
scripted model asks it for a shell command; Codex runs it, sends the result back, and the
model's final answer ends the run. The package is pinned in tests/codex/package.json and
installed once per session with ``npm ci``; without ``node`` and ``npm`` the tests are
skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio
from e2e import SDK_READER_LEFT_OPEN, Clawrap

pytestmark = [pytest.mark.e2e, pytest.mark.node, SDK_READER_LEFT_OPEN]

CODEX_DIR = Path(__file__).parent / "codex"
STAMP = CODEX_DIR / "node_modules" / ".installed-lock-sha256"
INSTALL_LIMIT = 600  # seconds; the package holds a ~400 MB native binary
RUN_LIMIT = 120.0


@pytest.fixture(scope="session")
def codex() -> Path:
    """The Codex CLI binary (skips when Node.js is absent)."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("node and npm are needed for the Codex CLI tests")
    lock = hashlib.sha256((CODEX_DIR / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != lock:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CODEX_DIR,
            check=True,
            timeout=INSTALL_LIMIT,
            capture_output=True,
        )
        STAMP.write_text(lock)
    return CODEX_DIR / "node_modules" / ".bin" / "codex"


def configure(home: Path, base_url: str, *, websockets: bool) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        "\n".join(
            [
                'model = "sonnet"',
                'model_provider = "clawrap"',
                "check_for_update_on_startup = false",
                "",
                "[model_providers.clawrap]",
                'name = "clawrap"',
                f'base_url = "{base_url}/v1"',
                'wire_api = "responses"',
                'env_key = "CLAWRAP_TEST_KEY"',
                "request_max_retries = 0",
                "stream_max_retries = 0",
                f"supports_websockets = {'true' if websockets else 'false'}",
                "",
            ]
        )
    )


async def codex_exec(
    codex: Path, tmp_path: Path, server: Clawrap, prompt: str, *, websockets: bool
) -> tuple[subprocess.CompletedProcess[bytes], Path]:
    home, work = tmp_path / "codex-home", tmp_path / "work"
    configure(home, server.url, websockets=websockets)
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CODEX_HOME": str(home),
        "CLAWRAP_TEST_KEY": "unused",
    }
    command = [str(codex), "exec", "--skip-git-repo-check"]
    command += ["--dangerously-bypass-approvals-and-sandbox", prompt]
    with trio.fail_after(RUN_LIMIT):
        done = await trio.run_process(
            command, cwd=work, env=env, capture_stdout=True, capture_stderr=True, check=False
        )
    return done, work


def shell_then_answer(command: str, answer: str) -> str:
    script = {"tool_uses": [{"name": "exec_command", "input": {"cmd": command}}],
              "then": [{"text": answer}]}  # fmt: skip
    return f"[[mock:{json.dumps(script)}]]"


@pytest.mark.parametrize("websockets", [False, True], ids=["http", "websocket"])
async def test_codex_exec_runs_the_shell_command_the_model_asks_for(
    clawrap_server: Clawrap,
    codex: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    websockets: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="clawrap")
    marker = f"CODEX{'WS' if websockets else 'HTTP'}"
    prompt = f"{marker}: write the proof. " + shell_then_answer(
        f"echo {marker.lower()}-ran > proof.txt", f"Done: {marker} proof written."
    )
    done, work = await codex_exec(codex, tmp_path, clawrap_server, prompt, websockets=websockets)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert (work / "proof.txt").read_text() == f"{marker.lower()}-ran\n"
    assert f"Done: {marker} proof written." in done.stdout.decode()
    # The command's result reached the model as a tool result.
    messages = [json.dumps(r.body.get("messages")) for r in clawrap_server.requests(marker)]
    assert any('"tool_result"' in m for m in messages)
    served = [r.getMessage() for r in caplog.records if "/v1/responses" in r.getMessage()]
    kind = "WEBSOCKET" if websockets else "POST"
    assert sum(m.startswith(f"{kind} /v1/responses") for m in served) >= 2
