"""clawrap server processes for the multi-instance tests: start, read, signal, stop.

Each instance is ``clawrap serve --port 0`` in its own process (as an operator runs
it), its port read from the banner. Stopping sends SIGTERM (the drain), waits, and
kills only on a hang; afterwards no CLI process of it may be left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from procs import cmdline, descendants

SERVE = "from clawrap.cli._main import main; raise SystemExit(main())"
STOP_LIMIT = 60.0


def is_cli(pid: int) -> bool:
    return any(os.path.basename(a) == "claude" or "/_bundled/claude" in a for a in cmdline(pid))


@dataclass
class Instance:
    """One running ``clawrap serve`` process."""

    process: subprocess.Popen[str]
    url: str
    log: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    clis_seen: set[int] = field(default_factory=set)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)

    def pool(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get("/v1/pool").json()
        return data

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels`` (``/metrics``)."""
        total = 0.0
        for line in self.get("/metrics").text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def clis(self) -> list[int]:
        found = [pid for pid in descendants(self.process.pid) if is_cli(pid)]
        self.clis_seen.update(found)
        return found

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, limit: float = STOP_LIMIT) -> int:
        return self.process.wait(timeout=limit)


def _read_port(process: subprocess.Popen[str], log: list[str], ready: threading.Event) -> None:
    """Collect stderr lines (the banner gives the URL); runs until the process closes it."""
    assert process.stderr is not None
    for line in process.stderr:
        log.append(line)
        if "listening on http://" in line:
            ready.set()
    ready.set()


def start_instance(env: dict[str, str], data_dir: Path) -> Instance:
    """``clawrap serve`` on 127.0.0.1, a free port, with ``env`` over the test's environment."""
    environment = {
        **os.environ,
        "CLAWRAP_DATA_DIR": str(data_dir),
        "CLAWRAP_UPSTREAM_RETRIES": "0",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "--port", "0"],
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    ready = threading.Event()
    reader = threading.Thread(target=_read_port, args=(process, log, ready), daemon=True)
    reader.start()
    if not ready.wait(STOP_LIMIT):
        process.kill()
        raise AssertionError("the server did not start in time")
    for line in log:
        if "listening on http://" in line:
            url = "http://" + line.split("http://", 1)[1].split("/v1", 1)[0].strip()
            return Instance(process, url, log, reader)
    process.wait()
    reader.join()
    assert process.stderr is not None
    process.stderr.close()
    raise AssertionError("the server exited before listening:\n" + "".join(log))


@contextmanager
def instances(*envs: tuple[dict[str, str], Path]) -> Iterator[list[Instance]]:
    """Several instances; on exit each is stopped with SIGTERM (killed only on a hang) and
    none may leave a CLI process behind."""
    started: list[Instance] = []
    try:
        for env, data_dir in envs:
            started.append(start_instance(env, data_dir))
        yield started
    finally:
        for instance in started:
            if instance.process.poll() is None:
                instance.clis()
                instance.terminate()
        for instance in started:
            try:
                instance.wait()
            except subprocess.TimeoutExpired:
                instance.process.kill()
                instance.process.wait()
                raise
            finally:
                # The reader ends at the closed pipe's end; then the pipe is closed here.
                if instance.reader is not None:
                    instance.reader.join(STOP_LIMIT)
                if instance.process.stderr is not None:
                    instance.process.stderr.close()
        for instance in started:
            assert not [pid for pid in instance.clis_seen if _alive(pid)], "a CLI outlived it"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


__all__ = ["Instance", "instances", "is_cli", "start_instance"]
