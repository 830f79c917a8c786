"""contrib/docker: the image's entrypoint and healthcheck, run outside a container.

No Docker daemon runs here, so the Dockerfile's own commands are run as they are
written (``clawrap`` and ``python`` resolved to this environment's), with the
image's ``ENV`` (paths moved under tmp_path) and offline mode: the healthcheck
fails before the server listens and after it stopped, and passes while it runs.
The Dockerfile's promises (a non-root user, the CLI config dir a volume) are
checked as text.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import sys
from pathlib import Path

import pytest
import trio
from procs import descendants

DOCKER = Path(__file__).resolve().parents[1] / "contrib" / "docker"
START_LIMIT = 60.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def instructions() -> dict[str, str]:
    """Dockerfile instruction -> its argument text (continuation lines joined; last wins)."""
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found[word.upper()] = found.get(word.upper(), "") + " " + rest.strip()
    return {k: v.strip() for k, v in found.items()}


def exec_form(text: str) -> list[str]:
    value = json.loads(text[text.index("[") : text.rindex("]") + 1])
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def local(argv: list[str]) -> list[str]:
    """The image's command with its programs taken from this environment."""
    programs = {"clawrap": str(Path(sys.executable).parent / "clawrap"), "python": sys.executable}
    return [programs.get(argv[0], argv[0]), *argv[1:]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_image_runs_as_a_non_root_user_with_the_config_dir_a_volume() -> None:
    found = instructions()
    assert found["USER"] == "clawrap"
    env = dict(re.findall(r"(\w+)=(\S+)", found["ENV"]))
    assert env["CLAWRAP_CONFIG_DIR"] in exec_form(found["VOLUME"])
    assert "--interval" in found["HEALTHCHECK"]


async def test_the_entrypoint_serves_and_the_healthcheck_tells(tmp_path: Path) -> None:
    found = instructions()
    server = local(exec_form(found["ENTRYPOINT"]) + exec_form(found["CMD"]))
    health = local(exec_form(found["HEALTHCHECK"].split("CMD", 1)[1]))
    image_env = dict(re.findall(r"(\w+)=(\S+)", found["ENV"]))
    env = {
        **os.environ,
        **image_env,
        "CLAWRAP_CONFIG_DIR": str(tmp_path / "claude"),
        "CLAWRAP_DATA_DIR": str(tmp_path / "data"),
        "CLAWRAP_PORT": str(free_port()),
        "CLAWRAP_OFFLINE": "1",
        "CLAWRAP_POOL_SIZE": "0",
    }

    async def healthy() -> bool:
        done = await trio.run_process(health, env=env, check=False, capture_stderr=True)
        return done.returncode == 0

    assert not await healthy()  # nothing listens yet
    process = await trio.lowlevel.open_process(server, env=env, cwd=tmp_path)
    try:
        with trio.fail_after(START_LIMIT):
            while not await healthy():  # noqa: ASYNC110 (the healthcheck is the only way to ask)
                await trio.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(START_LIMIT):
            await process.wait()
    assert process.returncode == 0, shlex.join(server)
    assert not await healthy()
    assert descendants() == []
