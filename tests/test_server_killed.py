"""A server killed outright (kill -9) takes its CLI processes with it, busy ones included.

The server runs in its own process against the scripted model served here, so the
upstream outlives the server: a CLI left running would go on streaming from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from e2e import cli_env, start_upstream, wait_until
from procs import cmdline, descendants

from clawrap.scripted._model import Reply

pytestmark = pytest.mark.e2e

LIMIT = 60.0
SERVE = "from clawrap.cli._main import main; raise SystemExit(main())"


def is_cli(pid: int) -> bool:
    return any(os.path.basename(a) == "claude" or "/_bundled/claude" in a for a in cmdline(pid))


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
async def test_kill_9_of_the_server_ends_its_busy_cli(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = await start_upstream(nursery)
    # A long reply: a CLI left alive would stream it for a minute.
    upstream.model.when("LONG-REPLY", Reply(tokens=600, delay=0.1))
    env = {
        **os.environ,
        **cli_env(upstream.url, tmp_path / "claude"),
        "CLAWRAP_DATA_DIR": str(tmp_path / "data"),
        "CLAWRAP_POOL_SIZE": "0",
        "CLAWRAP_UPSTREAM_RETRIES": "0",
    }
    server = await trio.to_thread.run_sync(_start_server, env)
    stream: trio.SocketStream | None = None
    try:
        with trio.fail_after(LIMIT):
            port = await trio.to_thread.run_sync(_port_from_banner, server)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            body = json.dumps(
                {
                    "model": "sonnet",
                    "stream": True,
                    "messages": [{"role": "user", "content": "LONG-REPLY"}],
                }
            ).encode()
            await stream.send_all(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            received = b""
            while b"tok" not in received:
                received += await stream.receive_some()
            # The busy CLI, and any the pool has started beside it meanwhile.
            clis = [pid for pid in descendants(server.pid) if is_cli(pid)]
            assert clis
            assert upstream.open_responses == 1
            server.kill()
            await trio.to_thread.run_sync(server.wait)
            await wait_until(lambda: not any(_running(cli) for cli in clis))
            await wait_until(lambda: upstream.open_responses == 0)
    finally:
        if stream is not None:
            await stream.aclose()
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()


def _start_server(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def _port_from_banner(server: subprocess.Popen[str]) -> int:
    assert server.stderr is not None
    for line in server.stderr:
        if "listening on http://" in line:
            return int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    raise AssertionError("the server exited before listening")
