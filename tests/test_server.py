"""The real server on a loopback socket: start, answer, shut down cleanly."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import trio
from procs import claude_children
from scripted_backend import ScriptedBackend

from clawrap.cli._server import banner, hypercorn_config, offline_cli_env, serve
from clawrap.core._config import Settings
from clawrap.core._events import Finished, TextDelta, Usage

HELLO = [TextDelta("Hello"), TextDelta(" there"), Usage(5, 2), Finished("end_turn")]


@dataclass
class Running:
    url: str
    backend: ScriptedBackend
    stop: trio.Event
    stopped: trio.Event
    out: io.StringIO


@pytest.fixture
async def running(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Running]:
    backend = ScriptedBackend(HELLO)
    stop, stopped = trio.Event(), trio.Event()
    out = io.StringIO()

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(
            Settings(port=0, data_dir=tmp_path),
            backend=backend,
            shutdown_trigger=stop.wait,
            out=out,
            task_status=task_status,
        )
        stopped.set()

    bound = await nursery.start(run)
    server = Running(bound[0], backend, stop, stopped, out)
    yield server
    stop.set()
    with trio.fail_after(15):
        await stopped.wait()


async def test_the_server_answers_and_shuts_down_cleanly(running: Running) -> None:
    async with httpx.AsyncClient(base_url=running.url) as client:
        response = await client.get("/health")
    assert response.json() == {"status": "ok"}
    assert "x-request-id" in response.headers
    running.stop.set()
    with trio.fail_after(10):
        await running.stopped.wait()
    assert running.backend.closed


async def test_the_openai_client_streams_a_reply_over_the_socket(running: Running) -> None:
    def chat() -> list[openai.types.chat.ChatCompletionChunk]:
        # The sync client in a thread: openai's async stream leaves generators unclosed under trio.
        with openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0) as client:
            stream = client.chat.completions.create(
                model="sonnet", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            return list(stream)

    with trio.fail_after(10):
        chunks = await trio.to_thread.run_sync(chat)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there"
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_the_banner_says_where_to_connect(running: Running) -> None:
    text = running.out.getvalue()
    assert f"{running.url}/v1" in text
    assert "API key             not required" in text


async def test_shutdown_ends_a_running_stream_with_an_error_event(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    backend = ScriptedBackend([TextDelta("partial")], hang=True, ignore_halt=True)
    stop, stopped = trio.Event(), trio.Event()

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(
            Settings(port=0, data_dir=tmp_path, drain_seconds=0.2),
            backend=backend,
            shutdown_trigger=stop.wait,
            out=None,
            task_status=task_status,
        )
        stopped.set()

    [url] = await nursery.start(run)
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    lines: list[str] = []
    with trio.fail_after(15):
        async with (
            httpx.AsyncClient(base_url=url) as client,
            client.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            async for line in response.aiter_lines():
                lines.append(line)
                if "partial" in line:
                    stop.set()
        await stopped.wait()
    data = [line[6:] for line in lines if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert "error" in json.loads(data[-2])
    assert backend.cancelled == 1 and backend.closed


def test_hypercorn_logs_no_access_lines_and_keeps_long_streams() -> None:
    config = hypercorn_config(Settings(host="::1", port=9))
    assert config.bind == ["[::1]:9"]
    assert config.accesslog is None
    assert config.read_timeout is None
    assert config.keep_alive_timeout > 5


def test_offline_env_points_the_cli_at_loopback_only() -> None:
    env = offline_cli_env(4321, "/tmp/x")
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4321"
    assert env["CLAUDE_CONFIG_DIR"] == "/tmp/x"
    assert env["CLAUDE_CODE_USE_BEDROCK"] == "0"


def test_the_banner_warns_about_listening_beyond_loopback_without_a_key() -> None:
    text = banner(Settings(host="0.0.0.0"), "http://127.0.0.1:8000", "ANTHROPIC_API_KEY", "")
    assert "WARNING" in text and "no API key" in text
    offline = banner(Settings(offline=True), "http://x:1", "offline", "", offline_port=5)
    assert "Offline mode" in offline


@pytest.mark.e2e
async def test_offline_mode_answers_through_the_real_cli_and_leaves_no_process(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    stop, stopped = trio.Event(), trio.Event()
    settings = Settings(port=0, offline=True, pool_size=1, data_dir=tmp_path)

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(settings, shutdown_trigger=stop.wait, out=None, task_status=task_status)
        stopped.set()

    with trio.fail_after(120):
        [url] = await nursery.start(run)

        def chat() -> str:
            with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
                reply = client.chat.completions.create(
                    model="sonnet", messages=[{"role": "user", "content": "hello"}]
                )
            return reply.choices[0].message.content or ""

        def message_stream() -> str:
            with (
                anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0) as client,
                client.messages.stream(
                    model="sonnet", max_tokens=200, messages=[{"role": "user", "content": "hello"}]
                ) as stream,
            ):
                return stream.get_final_text()

        assert "scripted" in await trio.to_thread.run_sync(chat)
        assert "scripted" in await trio.to_thread.run_sync(message_stream)
        stop.set()
        await stopped.wait()
    assert claude_children() == []


async def test_a_chunked_body_over_the_limit_is_refused_on_the_socket(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    stop = trio.Event()
    backend = ScriptedBackend(HELLO)
    settings = Settings(port=0, max_body_bytes=100, data_dir=tmp_path)
    run = partial(serve, settings, backend=backend, shutdown_trigger=stop.wait, out=None)
    [url] = await nursery.start(run)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "sonnet", "messages": [{"role": "user", "content": "'
        for _ in range(4):
            yield b"x" * 50
        yield b'"}]}'

    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post(
                "/v1/chat/completions",
                content=chunks(),
                headers={"content-type": "application/json"},
            )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert backend.runs == 0
    stop.set()


async def test_a_client_leaving_mid_stream_cancels_the_backend_on_the_socket(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    stop = trio.Event()
    backend = ScriptedBackend([TextDelta("first")], hang=True, ignore_halt=True)
    settings = Settings(port=0, data_dir=tmp_path)
    run = partial(serve, settings, backend=backend, shutdown_trigger=stop.wait, out=None)
    [url] = await nursery.start(run)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    body = json.dumps(
        {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            await stream.send_all(head + body)
            received = b""
            while b"first" not in received:
                received += await stream.receive_some()
        # The connection is closed: hypercorn reports it, and the run is cancelled.
        await backend.wait_until(lambda b: b.cancelled == 1)
    assert backend.active == 0
    stop.set()
