"""The model catalogue against the real parts: the live list, the bundled CLI's own models,
and the bundled CLI itself as a client of clawrap's Messages surface."""

from __future__ import annotations

import logging
import subprocess
import tempfile
from pathlib import Path

import pytest
import trio
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap, in_thread

from clawrap.core._auth import bundled_cli
from clawrap.core._models import ALIAS_TARGETS, model_info
from clawrap.scripted._model import Reply

pytestmark = [pytest.mark.e2e, SDK_READER_LEFT_OPEN]


def model_ids(server: Clawrap, path: str = "/v1/models", method: str = "GET") -> list[str]:
    import httpx

    response = httpx.request(method, server.url + path, timeout=30)
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["data"]]


async def test_the_model_list_is_the_upstreams_live_list_refreshed_on_demand(
    clawrap_server: Clawrap,
) -> None:
    listed = await in_thread(lambda: model_ids(clawrap_server))
    assert "claude-sonnet-5-5" in listed and "sonnet" in listed
    clawrap_server.model.models.append({"type": "model", "id": "claude-live-1"})
    # Cached: the new model shows only after a refresh.
    assert "claude-live-1" not in await in_thread(lambda: model_ids(clawrap_server))
    refreshed = await in_thread(
        lambda: model_ids(clawrap_server, "/v1/models/refresh", method="POST")
    )
    assert "claude-live-1" in refreshed
    clawrap_server.model.when("LIVEMODEL", Reply(text="From the live model."))

    def ask() -> tuple[str, str]:
        with clawrap_server.anthropic() as client:
            reply = client.messages.create(
                model="claude-live-1",
                max_tokens=64,
                messages=[{"role": "user", "content": "LIVEMODEL"}],
            )
        return reply.model, reply.content[0].text  # type: ignore[union-attr]

    assert await in_thread(ask) == ("claude-live-1", "From the live model.")
    (upstream,) = clawrap_server.requests("LIVEMODEL")
    assert upstream.body["model"] == "claude-live-1"


async def test_the_catalogue_aliases_are_the_bundled_clis(
    clawrap_server: Clawrap, tmp_path: Path
) -> None:
    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient
    from e2e import cli_env

    env = cli_env(clawrap_server.upstream.url, tmp_path / "probe")
    options = ClaudeAgentOptions(setting_sources=[], system_prompt="x", tools=[], env=env)
    client = ClaudeSDKClient(options)
    try:
        with trio.fail_after(TEST_LIMIT):
            await client.connect()
            info = await client.get_server_info()
    finally:
        with trio.CancelScope(shield=True):
            await client.disconnect()
    assert info is not None
    resolved = {m["value"]: m["resolvedModel"] for m in info["models"] if m["value"] != "default"}
    assert resolved == ALIAS_TARGETS
    assert all(model_info(model) is not None for model in resolved.values())


def run_cli_as_client(server: Clawrap, *args: str) -> subprocess.CompletedProcess[str]:
    cli = bundled_cli()
    assert cli is not None
    with tempfile.TemporaryDirectory(prefix="clawrap-cli-client-") as home:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": home,
            "ANTHROPIC_BASE_URL": server.url,
            "ANTHROPIC_API_KEY": "sk-client",
            "CLAUDE_CONFIG_DIR": str(Path(home) / "claude"),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }
        return subprocess.run(
            [str(cli), "-p", "Say hello CLICLIENT", *args],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TEST_LIMIT,
        )


@pytest.mark.parametrize("args", [(), ("--model", "sonnet")], ids=["default-model", "sonnet"])
async def test_claude_code_itself_is_served_as_a_client(
    clawrap_server: Clawrap, caplog: pytest.LogCaptureFixture, args: tuple[str, ...]
) -> None:
    caplog.set_level(logging.INFO, logger="clawrap.requests")
    clawrap_server.model.when("CLICLIENT", Reply(text="Hello from behind clawrap."))
    done = await in_thread(lambda: run_cli_as_client(clawrap_server, *args))
    assert done.returncode == 0, done.stderr
    assert "Hello from behind clawrap." in done.stdout
    lines = [r.getMessage() for r in caplog.records if r.name == "clawrap.requests"]
    statuses = [line.split()[2] for line in lines]
    assert statuses and all(s.startswith(("2", "3")) for s in statuses), lines
    # What the CLI sends: its default model, and for --model sonnet its current Sonnet.
    model = {(): "claude-opus-5-5", ("--model", "sonnet"): "claude-sonnet-5-5"}[args]
    assert any(line.startswith("POST /v1/messages 200") for line in lines), lines
    assert all(f"model={model}" in line for line in lines if " model=" in line), lines
