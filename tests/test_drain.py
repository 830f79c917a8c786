"""Draining on SIGTERM, with a real server process and a real client stream.

The server (``clawrap serve`` in its own process) runs the real CLI against the
scripted model served here. After SIGTERM: ``/health`` says draining (503), new
work is refused with a 503 and ``retry-after`` in each protocol's own error shape,
a running stream goes on to its end, or, past ``CLAWRAP_DRAIN_SECONDS``, ends with
an error event; the process then exits and leaves no CLI process behind.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest
import trio
from e2e import Upstream, cli_env, start_upstream, wait_until
from instances import Instance, start_instance

from clawrap.scripted._model import Reply

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sys.platform != "linux", reason="reads /proc"),
]

LIMIT = 90.0


def chat_body(text: str, *, stream: bool = True) -> dict[str, object]:
    return {"model": "sonnet", "stream": stream, "messages": [{"role": "user", "content": text}]}


async def _start(upstream: Upstream, tmp_path: Path, drain: float) -> Instance:
    env = {
        **cli_env(upstream.url, tmp_path / "claude"),
        "CLAWRAP_POOL_SIZE": "0",
        "CLAWRAP_DRAIN_SECONDS": str(drain),
    }
    return await trio.to_thread.run_sync(start_instance, env, tmp_path / "data")


async def _draining(client: httpx.AsyncClient) -> bool:
    return (await client.get("/health")).status_code == 503


async def _stop(instance: Instance) -> int:
    """The exit code once the process ends; no CLI of it may be left."""
    code = await trio.to_thread.run_sync(instance.wait)
    if instance.reader is not None:
        await trio.to_thread.run_sync(instance.reader.join)
    if instance.process.stderr is not None:
        instance.process.stderr.close()
    return code


async def test_a_draining_server_refuses_new_work_and_lets_a_stream_finish(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery)
    upstream.model.when("DRAIN-SLOW", Reply(tokens=40, delay=0.1))
    instance = await _start(upstream, tmp_path, drain=60)
    lines: list[str] = []
    try:
        with trio.fail_after(LIMIT):
            async with (
                httpx.AsyncClient(base_url=instance.url, timeout=60) as client,
                httpx.AsyncClient(base_url=instance.url, timeout=60) as other,
                client.stream(
                    "POST", "/v1/chat/completions", json=chat_body("DRAIN-SLOW")
                ) as response,
            ):
                # One iterator for the whole body: a second one would find it consumed.
                body = response.aiter_lines()
                async for line in body:
                    lines.append(line)
                    if "tok" in line:
                        break
                clis = instance.clis()
                assert clis
                instance.terminate()
                await wait_until_async(lambda: _draining(other))
                health = await other.get("/health")
                assert health.json() == {"status": "draining"}
                refused = await other.post("/v1/chat/completions", json=chat_body("new"))
                assert refused.status_code == 503
                assert refused.json()["error"]["code"] == "server_draining"
                assert int(refused.headers["retry-after"]) >= 1
                anthropic = await other.post(
                    "/v1/messages",
                    json={**chat_body("new", stream=False), "max_tokens": 10},
                    headers={"anthropic-version": "2023-06-01"},
                )
                assert anthropic.status_code == 503
                assert anthropic.json()["type"] == "error"
                assert anthropic.json()["error"]["type"] == "overloaded_error"
                assert "retry-after" in anthropic.headers
                responses = await other.post(
                    "/v1/responses", json={"model": "sonnet", "input": "new"}
                )
                assert responses.status_code == 503
                assert responses.json()["error"]["code"] == "server_draining"
                # Reading still works while draining; only new work is refused.
                assert (await other.get("/v1/models")).status_code == 200
                async for line in body:
                    lines.append(line)
            assert await _stop(instance) == 0
            await wait_until(lambda: upstream.open_responses == 0)
    finally:
        if instance.process.poll() is None:
            instance.process.kill()
            instance.process.wait()
    data = [line[6:] for line in lines if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert not any('"error"' in chunk for chunk in data)
    finals = [json.loads(c) for c in data[:-1]]
    assert [c["choices"][0]["finish_reason"] for c in finals if c["choices"]][-1] == "stop"
    assert sum("tok" in c for c in data) >= 40
    assert not [pid for pid in clis if _alive(pid)]


async def test_past_the_drain_deadline_a_stream_ends_with_an_error_event(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery)
    # A minute of reply: only the drain deadline can end it.
    upstream.model.when("DRAIN-LONG", Reply(tokens=600, delay=0.1))
    instance = await _start(upstream, tmp_path, drain=1)
    lines: list[str] = []
    clis: list[int] = []
    try:
        with trio.fail_after(LIMIT):
            async with (
                httpx.AsyncClient(base_url=instance.url, timeout=60) as client,
                client.stream(
                    "POST", "/v1/chat/completions", json=chat_body("DRAIN-LONG")
                ) as response,
            ):
                async for line in response.aiter_lines():
                    lines.append(line)
                    if "tok" in line and not clis:
                        clis = instance.clis()
                        instance.terminate()
            assert await _stop(instance) == 0
            await wait_until(lambda: upstream.open_responses == 0)
    finally:
        if instance.process.poll() is None:
            instance.process.kill()
            instance.process.wait()
    data = [line[6:] for line in lines if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert error["code"] == "server_shutting_down"
    assert sum("tok" in c for c in data) < 600
    assert clis and not [pid for pid in clis if _alive(pid)]


async def wait_until_async(check: object) -> None:
    """Poll an async condition until it holds (bounded by the caller's fail_after)."""
    from collections.abc import Awaitable, Callable

    assert callable(check)
    probe: Callable[[], Awaitable[bool]] = check
    # Another process's state, with no event to wait on (as e2e.wait_until).
    while not await probe():  # noqa: ASYNC110
        await trio.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
