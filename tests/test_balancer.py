"""contrib/haproxy/haproxy.cfg in front of two clawrap instances routes conversations warm.

Runs where HAProxy is installed (a Debian package: ``apt-get install haproxy``) and is
skipped elsewhere. Two ``clawrap serve`` processes (offline, no warm pool: every CLI
process is a spawn the pool counts) behind HAProxy with the shipped configuration: a
10-turn ``previous_response_id`` chain and a 10-turn ``X-Session-Id`` session each stay
on one instance, with no CLI spawned after the first turn.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from instances import Instance, instances

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed"),
]

CONFIG = Path(__file__).resolve().parents[1] / "contrib" / "haproxy" / "haproxy.cfg"
TURNS = 10
LIMIT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hostport(instance: Instance) -> str:
    return instance.url.removeprefix("http://")


def _balancer(a: Instance, b: Instance, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "CLAWRAP_LB_BIND": f"127.0.0.1:{port}",
        "CLAWRAP_A": _hostport(a),
        "CLAWRAP_B": _hostport(b),
    }
    log = (tmp_path / "haproxy.log").open("w")
    proxy = subprocess.Popen(
        ["haproxy", "-db", "-f", str(CONFIG)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(int(LIMIT / 0.05)):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    assert proxy.poll() is None, (tmp_path / "haproxy.log").read_text()
                # No event marks HAProxy's listener ready; bounded by the loop's count.
                time.sleep(0.05)
            else:
                raise AssertionError("HAProxy never answered /health")
        yield url
    finally:
        proxy.terminate()
        proxy.wait(timeout=LIMIT)
        log.close()


def spawned(instance: Instance) -> int:
    return int(instance.pool()["spawned"])


def served(instance: Instance, route: str) -> float:
    return instance.metric("clawrap_requests_total", route=route, status="200")


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Instance, Instance, str]]:
    env = {
        "CLAWRAP_OFFLINE": "1",
        "CLAWRAP_POOL_SIZE": "0",
        "CLAWRAP_TRUSTED_PROXIES": "127.0.0.1",
    }
    with instances((env, tmp_path / "a"), (env, tmp_path / "b")) as (a, b):
        for url in _balancer(a, b, tmp_path):
            yield a, b, url


def test_a_previous_response_id_chain_stays_warm_on_one_instance(
    two: tuple[Instance, Instance, str],
) -> None:
    a, b, url = two
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        first = client.responses.create(model="sonnet", input="turn 1")
        after_first = spawned(a) + spawned(b)
        previous = first.id
        for turn in range(2, TURNS + 1):
            reply = client.responses.create(
                model="sonnet", input=f"turn {turn}", previous_response_id=previous
            )
            assert reply.output_text
            previous = reply.id
    assert after_first == 1
    assert spawned(a) + spawned(b) == 1
    assert sorted([served(a, "/v1/responses"), served(b, "/v1/responses")]) == [0, TURNS]


def test_an_x_session_id_session_stays_warm_on_one_instance(
    two: tuple[Instance, Instance, str],
) -> None:
    a, b, url = two
    headers = {"x-session-id": "balanced-session-1"}
    with httpx.Client(base_url=url, timeout=LIMIT, headers=headers) as client:
        for turn in range(1, TURNS + 1):
            body = {"model": "sonnet", "messages": [{"role": "user", "content": f"turn {turn}"}]}
            response = client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200, response.text
            assert response.headers["x-session-id"] == "balanced-session-1"
            if turn == 1:
                after_first = spawned(a) + spawned(b)
    assert after_first == 1
    assert spawned(a) + spawned(b) == 1
    route = "/v1/chat/completions"
    assert sorted([served(a, route), served(b, route)]) == [0, TURNS]
