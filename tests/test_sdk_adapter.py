"""What clawrap relies on in claude-agent-sdk without the SDK publishing it, checked against the
installed SDK (and its bundled CLI), each failure saying what changed.

Moved here from test_process_tree.py: the ``cli_pid`` tests (the reading itself moved from
``pool/_process_tree`` into ``claude/_sdk_adapter``).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import tempfile
import tomllib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ClaudeSDKError
from packaging.requirements import Requirement
from procs import descendants

from clawrap.claude import _sdk_adapter as adapter
from clawrap.claude._sdk_errors import map_exceptions
from clawrap.core._errors import ClawrapError

ROOT = Path(__file__).resolve().parent.parent
CHANGED = "claude-agent-sdk {version} changed what clawrap/claude/_sdk_adapter.py relies on: "


def changed(what: str) -> str:
    return CHANGED.format(version=importlib.metadata.version("claude-agent-sdk")) + what


def test_the_installed_sdk_is_a_release_the_pin_allows() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [pin] = [r for r in map(Requirement, project["dependencies"]) if r.name == "claude-agent-sdk"]
    installed = importlib.metadata.version("claude-agent-sdk")
    assert pin.specifier.contains(installed), (
        f"claude-agent-sdk {installed} is installed, but pyproject.toml pins {pin.specifier}: "
        "reinstall with `pip install -e '.[test]'`, or run the suite on it and move the pin"
    )
    assert any(s.operator in ("==", "<", "<=", "~=") for s in pin.specifier), (
        "the claude-agent-sdk pin needs an upper bound: releases nobody tested must not install"
    )


def test_message_parse_error_is_still_where_it_was_and_an_sdk_error() -> None:
    assert issubclass(adapter.MessageParseError, ClaudeSDKError), changed(
        "MessageParseError in claude_agent_sdk._errors is gone or no longer a ClaudeSDKError"
    )


def test_the_control_request_channel_takes_a_request_and_a_timeout() -> None:
    from claude_agent_sdk._internal.query import Query

    method = getattr(Query, "_send_control_request", None)
    assert inspect.iscoroutinefunction(method), changed(
        "Query._send_control_request (the channel for rewind_conversation) is gone"
    )
    assert list(inspect.signature(method).parameters) == ["self", "request", "timeout"], changed(
        "Query._send_control_request takes other parameters than (request, timeout)"
    )


def test_the_bundled_cli_is_where_the_server_looks_for_it() -> None:
    # core/_auth.py reads the SDK's file layout (it may not import the SDK): the binary in
    # _bundled/ and the version the SDK records for it.
    from claude_agent_sdk._cli_version import __cli_version__

    from clawrap.core._auth import bundled_cli, cli_info
    from clawrap.core._config import Settings

    assert bundled_cli() is not None, changed("the CLI binary is no longer in _bundled/")
    assert cli_info(Settings(), run=False).version == __cli_version__, changed(
        "the bundled CLI's version is recorded elsewhere than claude.version or _cli_version.py"
    )


# -- cli_pid on stand-ins for the transport's process


class _Process:
    def __init__(self, pid: int, returncode: int | None) -> None:
        self.pid = pid
        self.returncode = returncode


class _Transport:
    def __init__(self, process: _Process | None) -> None:
        self._process = process


class _Client:
    def __init__(self, transport: _Transport | None) -> None:
        self._transport = transport


def pid_of(client: object) -> int | None:
    fake: Any = client
    return adapter.cli_pid(fake)


def test_cli_pid_reads_the_running_process_of_the_transport() -> None:
    assert pid_of(_Client(_Transport(_Process(4242, None)))) == 4242


def test_cli_pid_is_none_before_connect_after_disconnect_and_after_exit() -> None:
    assert pid_of(_Client(None)) is None
    assert pid_of(_Client(_Transport(None))) is None
    assert pid_of(_Client(_Transport(_Process(4242, 0)))) is None
    assert pid_of(object()) is None


# -- against a real CLI


@asynccontextmanager
async def connected() -> AsyncIterator[ClaudeSDKClient]:
    """A connected client; nothing listens at its upstream, and no model call is made."""
    with tempfile.TemporaryDirectory() as config_dir:
        env = {
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
            "ANTHROPIC_API_KEY": "sk-test-dummy",
            "CLAUDE_CONFIG_DIR": config_dir,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        client = ClaudeSDKClient(ClaudeAgentOptions(tools=[], setting_sources=[], env=env))
        try:
            with trio.fail_after(60):
                await client.connect()
            yield client
        finally:
            with trio.CancelScope(shield=True):
                await client.disconnect()


@pytest.mark.e2e
async def test_the_transport_process_the_rewind_request_and_control_failures() -> None:
    async with connected() as client:
        process = adapter.cli_process(client)
        assert process is not None, changed("client._transport._process is gone")
        for name in ("terminate", "kill", "wait"):
            assert callable(getattr(process, name, None)), changed(f"its process has no {name}()")
        pid = adapter.cli_pid(client)
        assert pid == process.pid and pid in descendants(os.getpid()), changed(
            "client._transport._process is not the CLI's running process"
        )

        rewind = {
            "subtype": "rewind_conversation",
            "target_message_uuid": str(uuid.uuid4()),
            "last_seen_user_message_uuid": None,
        }
        with trio.fail_after(10):
            answer = await adapter.control_request(client, rewind, answer_within=5)
        assert answer.get("rewound") is False and answer.get("reason") == "target_not_found", (
            changed(f"the CLI answered a rewind to an unknown message with {answer!r}")
        )

        with pytest.raises(Exception) as raised, trio.fail_after(10):
            await adapter.control_request(client, {"subtype": "no_such_request"}, answer_within=5)
        assert adapter.is_sdk_failure(raised.value), changed(
            f"a refused control request raised {type(raised.value).__name__}, not Exception"
        )
        with pytest.raises(ClawrapError) as mapped, map_exceptions("run"):
            raise raised.value
        assert mapped.value.code == "cli_process_failed"
    assert adapter.cli_pid(client) is None, changed("a disconnected client still has a process")


@pytest.mark.e2e
async def test_set_model_takes_a_system_prompt_only_for_the_model_in_use() -> None:
    async with connected() as client:
        with trio.fail_after(10):
            await client.set_model("haiku")  # an alias: no upstream check
            answer = await adapter.set_system_prompt(
                client, "haiku", "Be brief.", only_if_current=False, answer_within=5
            )
        assert "haiku" in str(answer.get("model")), changed(
            f"set_model with a system_prompt answered {answer!r}"
        )
        with pytest.raises(Exception) as raised, trio.fail_after(10):
            await adapter.set_system_prompt(
                client, "claude-opus-4-1", "Be brief.", only_if_current=True, answer_within=5
            )
        assert adapter.is_sdk_failure(raised.value) and "only_if_model_is_current" in str(
            raised.value
        ), changed(f"a prompt switch naming another model did not fail: {raised.value!r}")


def test_a_bug_is_not_taken_for_an_sdk_failure() -> None:
    for bug in (TypeError("x"), KeyError("x"), AttributeError("x"), RuntimeError("x")):
        assert not adapter.is_sdk_failure(bug)
        with pytest.raises(type(bug)), map_exceptions("run"):
            raise bug
