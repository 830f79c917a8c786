"""Two clawrap processes on one PostgreSQL: a conversation may land on either, and stays whole.

Both servers are real ``clawrap serve`` processes (their own CLI pool, their own
stores) with ``CLAWRAP_DATABASE_URL`` naming one database on the suite's
PostgreSQL, and the CLIs of both talk to one scripted model. A Responses API
``previous_response_id`` chain (the real ``openai`` client) and a session
(``X-Session-Id``) alternate between the two: each turn the model sees the whole
conversation so far, though the instance serving it never saw the turns before.
The usage ledger both write adds up to the usage the responses reported. At the
end each server stops on SIGTERM and leaves no CLI process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest
import trio
from e2e import CLIENT_TIMEOUT, TEST_LIMIT, Upstream, cli_env, in_thread, start_upstream

from bench._pg import PgServer
from clawrap.scripted._model import Reply

pytestmark = [pytest.mark.e2e]

STOP_LIMIT = 30.0


@asynccontextmanager
async def clawrap_process(
    nursery: trio.Nursery, env: dict[str, str], log: Path
) -> AsyncIterator[str]:
    """``clawrap serve`` on a free port; its base URL. Stopped with SIGTERM on exit."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "clawrap", "serve"],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    url: list[str] = []
    ready = trio.Event()

    async def read_log() -> None:
        buffer = b""
        with log.open("ab") as out:
            async for chunk in process.stderr:  # type: ignore[union-attr]
                out.write(chunk)
                buffer += chunk
                if not url and b"listening on " in buffer:
                    line = buffer.split(b"listening on ", 1)[1].split(b"\n", 1)
                    if len(line) == 2:
                        url.append(line[0].decode().strip().removesuffix("/v1"))
                        ready.set()
        ready.set()  # the log ended: the server stopped

    nursery.start_soon(read_log)
    children: list[psutil.Process] = []
    try:
        with trio.fail_after(TEST_LIMIT):
            await ready.wait()
        assert url, f"clawrap did not start: {tail(log)}"
        yield url[0]
    finally:
        if process.returncode is None:
            children = psutil.Process(process.pid).children(recursive=True)
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(STOP_LIMIT):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
    alive = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"processes left behind by clawrap: {alive}"
    assert process.returncode == 0, tail(log)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=CLIENT_TIMEOUT)


def texts_upstream(upstream: Upstream, marker: str) -> str:
    [request] = upstream.model.requests_matching(marker)
    return request.text


def respond(url: str, **kwargs: Any) -> Any:
    with openai.OpenAI(
        base_url=url + "/v1",
        api_key="unused",
        max_retries=0,
        timeout=CLIENT_TIMEOUT,
        _strict_response_validation=True,
    ) as client:
        return client.responses.create(model="sonnet", **kwargs)


def chat(url: str, session: str, text: str) -> dict[str, Any]:
    response = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "sonnet", "messages": [{"role": "user", "content": text}]},
        headers={"x-session-id": session},
        timeout=CLIENT_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_two_instances_share_chains_sessions_and_the_ledger(
    nursery: trio.Nursery, tmp_path: Path, pg: PgServer
) -> None:
    url = await trio.to_thread.run_sync(pg.create_database)
    with trio.fail_after(TEST_LIMIT):
        upstream = await start_upstream(nursery)
    base = {
        "CLAWRAP_DATABASE_URL": url,
        "CLAWRAP_PORT": "0",
        "CLAWRAP_POOL_SIZE": "1",
        "CLAWRAP_UPSTREAM_RETRIES": "0",
    }
    envs = [
        {**cli_env(upstream.url, tmp_path / f"claude-{n}"), **base}
        | {"CLAWRAP_DATA_DIR": str(tmp_path / f"data-{n}")}
        for n in ("a", "b")
    ]
    for n, reply in enumerate(["Apple.", "Banana.", "Cherry.", "Damson."], start=1):
        upstream.model.when(f"CHAIN{n}", Reply(text=reply, input_tokens=10 * n, output_tokens=n))
        upstream.model.when(f"SESS{n}", Reply(text=f"S{n}.", input_tokens=100, output_tokens=7))
    async with (
        clawrap_process(nursery, envs[0], tmp_path / "a.log") as first,
        clawrap_process(nursery, envs[1], tmp_path / "b.log") as second,
    ):
        servers = [first, second]
        used: list[tuple[int, int]] = []
        previous: str | None = None
        for n in range(1, 5):
            at = servers[(n - 1) % 2]
            prior = {"previous_response_id": previous} if previous else {}
            with trio.fail_after(TEST_LIMIT):
                response = await in_thread(lambda at=at, prior=prior, n=n: respond(
                    at, input=f"CHAIN{n} go on", **prior
                ))  # fmt: skip
            assert response.status == "completed"
            assert response.output_text == ["Apple.", "Banana.", "Cherry.", "Damson."][n - 1]
            used.append((response.usage.input_tokens, response.usage.output_tokens))
            previous = response.id
            # The instance that served this turn saw every earlier turn, from the store.
            seen = texts_upstream(upstream, f"CHAIN{n}")
            for k in range(1, n):
                assert f"CHAIN{k} go on" in seen
                assert ["Apple.", "Banana.", "Cherry."][k - 1] in seen

        for n in range(1, 5):
            at = servers[n % 2]
            with trio.fail_after(TEST_LIMIT):
                body = await in_thread(lambda at=at, n=n: chat(at, "shared-chat", f"SESS{n} next"))
            assert body["choices"][0]["message"]["content"] == f"S{n}."
            used.append((body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]))
            seen = texts_upstream(upstream, f"SESS{n}")
            assert all(f"SESS{k} next" in seen and f"S{k}." in seen for k in range(1, n))

        # Either instance reads the whole session, and the one ledger both wrote.
        for at in servers:
            session = (await in_thread(partial(get, at + "/v1/sessions/shared-chat"))).json()
            assert session["turns"] == 8
            usage = (await in_thread(partial(get, at + "/v1/usage"))).json()
            totals = usage["total"]
            assert totals["requests"] == 8, usage
            assert totals["output_tokens"] == sum(o for _, o in used), (usage, used)
            assert totals["input_tokens"] + totals.get("cache_read_tokens", 0) + totals.get(
                "cache_write_tokens", 0
            ) == sum(i for i, _ in used), (usage, used)
            health = await in_thread(partial(get, at + "/health"))
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
