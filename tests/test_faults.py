"""Fault injection: fake Claude Code CLIs behind the real server, driven by the real client.

Each test points clawrap at one misbehaving CLI (tests/fake_cli/, through ``cli_path``): one
that is missing, exits at once, never answers, crashes mid-reply, ignores signals and
interrupts, prints garbage, or hangs while the server shuts down. Each proves two things:
the client gets a clear error in the protocol's shape (right status, a message that says what
happened and holds nothing internal), and no process is left, neither the fake nor any child
it started.

A fake is named in the settings marker as ``cli_path=fake("script", ...)``; the
``_fake_launchers`` fixture writes a launcher for it under the test's tmp_path (this run's
Python, the real bundled CLI in ``FAKE_REAL_CLI``, the executable bit set there, not relied on
from the checkout) and hands its path to the ``clawrap_server`` fixture.
"""

from __future__ import annotations

import json
import shlex
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
import trio
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap, in_thread, sse_data, wait_until
from openai.types.chat import ChatCompletionChunk
from procs import cmdline, descendants

from clawrap.core._auth import cli_info
from clawrap.core._config import Settings
from clawrap.scripted._model import Reply

pytestmark = [
    pytest.mark.e2e,
    SDK_READER_LEFT_OPEN,
    # The wrapping fakes tie the real CLI's life to their own with a Linux prctl.
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only"),
]

FAKES = Path(__file__).parent / "fake_cli"
# How long a misbehaving CLI may outlive the failure it caused. clawrap ends it with SIGTERM
# and, for one that ignores it, SIGKILL a moment later; spare time for a shared machine.
GONE_LIMIT = 8.0
# Private text the fakes print; a client must never see it.
PRIVATE = ("/opt/private", "sk-ant-fake", "fake_cli", "Traceback", "segmentation")


@dataclass(frozen=True)
class FakeCli:
    """A fake CLI to launch: ``script`` in tests/fake_cli/ with ``env`` added."""

    script: str
    env: dict[str, str] = field(default_factory=dict)
    executable: bool = True

    def launcher(self, directory: Path) -> Path:
        source = FAKES / self.script
        interpreter = sys.executable if source.suffix == ".py" else "/bin/sh"
        real = cli_info(Settings(), run=False).path or "claude"
        exports = {"FAKE_REAL_CLI": real, **self.env}
        lines = ["#!/bin/sh"]
        lines += [f"{name}={shlex.quote(value)}; export {name}" for name, value in exports.items()]
        lines.append(f'exec {shlex.quote(interpreter)} {shlex.quote(str(source))} "$@"')
        path = directory / f"fake-{source.stem}"
        path.write_text("\n".join(lines) + "\n")
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IXUSR if self.executable else mode & ~0o111)
        return path


def fake(script: str, *, executable: bool = True, **env: str) -> Any:
    """A placeholder for ``cli_path`` in a ``clawrap`` marker (see the module docstring)."""
    return FakeCli(script, env, executable)


@pytest.fixture(autouse=True)
def _fake_launchers(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    marker = request.node.get_closest_marker("clawrap")
    if marker is None or not isinstance(marker.kwargs.get("cli_path"), FakeCli):
        return
    launcher = marker.kwargs["cli_path"].launcher(tmp_path)
    settings = {**marker.kwargs, "cli_path": str(launcher)}
    # Put first, so it is the marker the clawrap_server fixture finds.
    request.node.add_marker(pytest.mark.clawrap(**settings), append=False)


# -- helpers


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def fake_pids(script: str) -> list[int]:
    """Live processes under this one that run ``script`` (the fake itself)."""
    return [pid for pid in descendants() if any(script in arg for arg in cmdline(pid))]


async def nothing_left() -> None:
    """Wait (bounded) until no process this test started is alive: fakes and real CLIs."""
    with trio.fail_after(GONE_LIMIT):
        await wait_until(lambda: descendants() == [])


def complete(server: Clawrap, text: str, **kwargs: Any) -> Any:
    with server.openai() as client:
        return client.chat.completions.create(model="sonnet", messages=ask(text), **kwargs)


def stream_lines(server: Clawrap, text: str) -> list[str]:
    """The raw SSE lines of a streamed completion (the status must be 200)."""
    with (
        server.openai() as client,
        client.chat.completions.with_streaming_response.create(
            model="sonnet", messages=ask(text), stream=True
        ) as response,
    ):
        return list(response.iter_lines())


async def status_error(call: Callable[[], Any]) -> openai.APIStatusError:
    """The HTTP error ``call`` raises in the openai client."""
    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.APIStatusError) as caught:
        await in_thread(call)
    return caught.value


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    """The ``error`` object of an error response, checked to be in OpenAI's shape."""
    body = exc.response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert not any(secret in error["message"] for secret in PRIVATE), error["message"]
    return error


# -- 1. a CLI that is not there


@pytest.mark.clawrap(cli_path="/nonexistent/clawrap-test/claude", pool_size=0)
async def test_a_cli_path_naming_no_file_is_a_503_saying_what_to_do(
    clawrap_server: Clawrap,
) -> None:
    exc = await status_error(lambda: complete(clawrap_server, "hello"))
    assert exc.status_code == 503
    error = error_of(exc)
    assert error["code"] == "cli_not_found"
    assert "CLAWRAP_CLI_PATH" in error["message"]
    assert "/nonexistent" not in error["message"]
    await nothing_left()


@pytest.mark.clawrap(cli_path=fake("hang.py", executable=False), pool_size=0)
async def test_a_cli_path_that_is_not_executable_is_a_503_saying_what_to_do(
    clawrap_server: Clawrap,
) -> None:
    exc = await status_error(lambda: complete(clawrap_server, "hello"))
    assert exc.status_code == 503
    error = error_of(exc)
    assert error["code"] == "cli_unavailable"
    assert "CLAWRAP_CLI_PATH" in error["message"]
    await nothing_left()


# -- 2. a CLI that exits at once


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.clawrap(cli_path=fake("exit_with_error.sh"), pool_size=0)
async def test_a_cli_that_exits_at_once_with_an_error_is_a_503(
    clawrap_server: Clawrap, stream: bool
) -> None:
    exc = await status_error(lambda: complete(clawrap_server, "hello", stream=stream))
    assert exc.status_code == 503
    assert error_of(exc)["code"] == "cli_unavailable"
    await nothing_left()


# -- 3. a CLI that never answers


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.clawrap(cli_path=fake("hang.py"), pool_size=0, cli_start_timeout=1.0)
async def test_a_cli_that_never_answers_is_a_503_after_the_start_timeout_and_is_killed(
    clawrap_server: Clawrap, stream: bool
) -> None:
    async with trio.open_nursery() as nursery:
        failure: list[openai.APIStatusError] = []

        async def call() -> None:
            failure.append(
                await status_error(lambda: complete(clawrap_server, "hi", stream=stream))
            )

        nursery.start_soon(call)
        with trio.fail_after(TEST_LIMIT):
            await wait_until(lambda: fake_pids("hang.py") != [])  # it did start, and hangs
    [exc] = failure
    assert exc.status_code == 503
    error = error_of(exc)
    assert error["code"] == "cli_start_timeout"
    assert "CLAWRAP_CLI_START_TIMEOUT" in error["message"]
    await nothing_left()


def test_the_start_timeout_is_shorter_than_the_sdks_and_settable_from_the_environment() -> None:
    # The SDK waits 60 s for initialize; a hung CLI must not hold a client that long.
    assert Settings().cli_start_timeout < 60
    env = {"CLAWRAP_CLI_START_TIMEOUT": "7.5"}
    assert Settings.from_env(env).cli_start_timeout == 7.5


# -- 4. a CLI that crashes mid-reply


@pytest.mark.clawrap(cli_path=fake("crash_midway.py", FAKE_CRASH_AFTER="3"), pool_size=0)
async def test_a_cli_crashing_mid_stream_ends_the_stream_with_an_error_event_then_done(
    clawrap_server: Clawrap,
) -> None:
    # The model stalls after 3 deltas, so the reply can only end through the crash.
    clawrap_server.model.when("CRASH", Reply(tokens=20, stall_after=3))
    with trio.fail_after(TEST_LIMIT):
        lines = await in_thread(lambda: stream_lines(clawrap_server, "CRASH"))
    data = sse_data(lines)
    assert data[-1] == "[DONE]"
    error = openai_error_event(data[-2])
    assert error["code"] == "cli_process_failed"
    chunks = [ChatCompletionChunk.model_validate_json(d) for d in data[:-2]]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok1 tok2 tok3"
    await nothing_left()


@pytest.mark.clawrap(cli_path=fake("crash_midway.py", FAKE_CRASH_AFTER="3"), pool_size=0)
async def test_a_cli_crashing_mid_reply_is_a_502(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("CRASH", Reply(tokens=20, stall_after=3))
    exc = await status_error(lambda: complete(clawrap_server, "CRASH"))
    assert exc.status_code == 502
    assert error_of(exc)["code"] == "cli_process_failed"
    await nothing_left()


def openai_error_event(data: str) -> dict[str, Any]:
    body = json.loads(data)
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert isinstance(error.get("message"), str) and error["message"]
    assert not any(secret in error["message"] for secret in PRIVATE), error["message"]
    return error


# -- 5. a CLI that ignores signals (and interrupts) while its client goes away


async def drop_mid_reply(server: Clawrap) -> None:
    """Read three deltas of a reply that would never end, then leave; wait until nothing
    is left running, the model's stream included."""
    server.model.when("STALL", Reply(tokens=20, stall_after=3))

    def read_a_little_then_leave() -> None:
        with server.openai() as client:
            stream = client.chat.completions.create(
                model="sonnet", messages=ask("STALL"), stream=True
            )
            seen = 0
            for chunk in stream:
                seen += bool(chunk.choices and chunk.choices[0].delta.content)
                if seen == 3:
                    break
            stream.close()

    with trio.fail_after(TEST_LIMIT):
        await in_thread(read_a_little_then_leave)
    assert len(server.requests("STALL")) == 1  # the reply came through the fake
    await nothing_left()
    with trio.fail_after(GONE_LIMIT):
        await wait_until(lambda: server.upstream.open_responses == 0)


@pytest.mark.clawrap(cli_path=fake("ignore_signals.sh"), pool_size=0)
async def test_a_cli_ignoring_sigterm_and_sigint_is_gone_after_its_client_leaves(
    clawrap_server: Clawrap,
) -> None:
    await drop_mid_reply(clawrap_server)


@pytest.mark.clawrap(cli_path=fake("deaf.py"), pool_size=0)
async def test_a_cli_ignoring_signals_interrupts_and_eof_is_killed_after_its_client_leaves(
    clawrap_server: Clawrap,
) -> None:
    await drop_mid_reply(clawrap_server)


# -- 6. a CLI that prints garbage


# claude-agent-sdk's ClaudeSDKClient.receive_messages lets a message it cannot parse escape
# from its loop over Query.receive_messages without closing that generator; trio warns when it
# is collected. The SDK's own, and harmless once the process is gone (which the test asserts).
SDK_PARSER_LEFT_OPEN = pytest.mark.filterwarnings(
    r"ignore:Async generator 'claude_agent_sdk\._internal\.query\.Query\.receive_messages'"
    r" was garbage collected:ResourceWarning"
)


def garbage(mode: str) -> Any:
    settings = pytest.mark.clawrap(cli_path=fake("garbage.py", FAKE_GARBAGE_MODE=mode), pool_size=0)
    marks = [settings, SDK_PARSER_LEFT_OPEN] if mode == "after-init-shape" else [settings]
    return pytest.param(mode, marks=marks, id=mode)


@pytest.mark.parametrize(
    "mode", [garbage("before-init"), garbage("after-init-json"), garbage("after-init-shape")]
)
async def test_a_cli_printing_garbage_is_a_502_and_is_ended(
    clawrap_server: Clawrap, mode: str
) -> None:
    exc = await status_error(lambda: complete(clawrap_server, "hello"))
    assert exc.status_code == 502
    assert error_of(exc)["code"] == "cli_bad_output"
    await nothing_left()


# -- 7. server shutdown while a CLI hangs


@pytest.mark.clawrap(cli_path=fake("hang.py"), pool_size=0, cli_start_timeout=300.0)
async def test_shutting_down_while_a_request_waits_on_a_hung_cli_leaves_nothing(
    clawrap_server: Clawrap,
) -> None:
    outcome: list[BaseException] = []

    async def call() -> None:
        try:
            await in_thread(lambda: complete(clawrap_server, "hello"))
        except Exception as exc:
            outcome.append(exc)

    with trio.fail_after(TEST_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await wait_until(lambda: fake_pids("hang.py") != [])
            await clawrap_server.shutdown()
    [exc] = outcome
    assert isinstance(exc, openai.APIStatusError)
    assert exc.status_code == 503
    assert error_of(exc)["code"] == "server_shutting_down"
    await nothing_left()


@pytest.mark.clawrap(
    cli_path=fake("hang.py"), pool_size=0, cli_start_timeout=300.0, max_concurrency=2
)
async def test_shutting_down_while_n_choices_wait_on_hung_clis_ends_them_too(
    clawrap_server: Clawrap,
) -> None:
    outcome: list[BaseException] = []

    async def call() -> None:
        try:
            await in_thread(lambda: complete(clawrap_server, "hello", n=2))
        except Exception as exc:
            outcome.append(exc)

    with trio.fail_after(TEST_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await wait_until(lambda: len(fake_pids("hang.py")) == 2)
            await clawrap_server.shutdown()
    [exc] = outcome
    assert isinstance(exc, openai.APIStatusError)
    assert exc.status_code == 503
    assert error_of(exc)["code"] == "server_shutting_down"
    await nothing_left()


@pytest.mark.clawrap(cli_path=fake("hang.py"), pool_size=1, cli_start_timeout=300.0)
async def test_shutting_down_while_a_warm_process_hangs_at_start_leaves_nothing(
    clawrap_server: Clawrap,
) -> None:
    with trio.fail_after(TEST_LIMIT):
        await wait_until(lambda: fake_pids("hang.py") != [])
        await clawrap_server.shutdown()
    await nothing_left()
