"""Start and stop what is measured: the scripted model and ``clawrap serve``, as subprocesses.

Both run outside the benchmark's own process, so the clients' work does not share an event loop
(or a GIL) with the server. The CLI never reaches Anthropic: clawrap gets ``ANTHROPIC_BASE_URL``
pointing at the scripted model on loopback, a dummy key, a throwaway ``CLAUDE_CONFIG_DIR`` and
data dir, and the variables that switch off the CLI's other traffic.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

from ._procs import Watcher

REPO = Path(__file__).resolve().parent.parent
DUMMY_KEY = "sk-scripted"
# Variables from the user's environment that could route the CLI elsewhere or change clawrap.
SCRUBBED_PREFIXES = ("CLAWRAP_", "ANTHROPIC_", "CLAUDE_CODE_", "CLAUDE_CONFIG_DIR")
START_LIMIT = 30.0  # seconds for a subprocess to answer
STOP_LIMIT = 20.0  # seconds for a subprocess to exit after SIGTERM


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def offline_env(mock_url: str, config_dir: str) -> dict[str, str]:
    """What every CLI run of the benchmark gets: the scripted model and nothing else."""
    return {
        "ANTHROPIC_BASE_URL": mock_url,
        "ANTHROPIC_API_KEY": DUMMY_KEY,
        "CLAUDE_CONFIG_DIR": config_dir,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }


@dataclass
class Child:
    label: str
    proc: subprocess.Popen[bytes]
    log: Path
    exit_note: str = ""

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Stack:
    """The scripted model and clawrap, started by :meth:`start`, stopped by :meth:`stop`."""

    settings: dict[str, str] = field(default_factory=dict)  # CLAWRAP_* for the server
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="clawrap-bench-")))
    mock: Child | None = None
    server: Child | None = None
    mock_url: str = ""
    base_url: str = ""
    watcher: Watcher | None = None
    startup: dict[str, float] = field(default_factory=dict)

    @property
    def config_dir(self) -> str:
        return str(self.tmp / "claude-config")

    def sdk_config_dir(self) -> str:
        """A separate config dir for the benchmark's own bare-SDK runs."""
        path = self.tmp / "sdk-config"
        path.mkdir(exist_ok=True)
        return str(path)

    async def start(self) -> None:
        t0 = time.perf_counter()
        mock_port = free_port()
        self.mock = self._spawn(
            "scripted model",
            [sys.executable, "-m", "bench._upstream", "--port", str(mock_port)],
            self._base_env(),
        )
        self.mock_url = f"http://127.0.0.1:{mock_port}"
        await self._wait_ready(self.mock, f"{self.mock_url}/_bench/streams")
        self.startup["scripted model ready"] = time.perf_counter() - t0

        os.mkdir(self.config_dir)
        env = self._base_env() | offline_env(self.mock_url, self.config_dir)
        env["CLAWRAP_DATA_DIR"] = str(self.tmp / "data")
        env |= self.settings
        port = free_port()
        t1 = time.perf_counter()
        self.server = self._spawn(
            "clawrap", [sys.executable, "-m", "clawrap", "serve", "--port", str(port)], env
        )
        self.watcher = Watcher(self.server.proc.pid)
        self.base_url = f"http://127.0.0.1:{port}"
        await self._wait_ready(self.server, f"{self.base_url}/health")
        self.startup["clawrap /health answers"] = time.perf_counter() - t1

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return env

    def _spawn(self, label: str, argv: list[str], env: dict[str, str]) -> Child:
        log = self.tmp / f"{label.replace(' ', '-')}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        return Child(label, proc, log)

    async def _wait_ready(self, child: Child, url: str) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            with trio.move_on_after(START_LIMIT):
                while child.proc.poll() is None:
                    try:
                        if (await client.get(url)).status_code == 200:
                            return
                    except httpx.HTTPError:
                        pass
                    await trio.sleep(0.05)
        raise RuntimeError(f"{child.label} did not start:\n{child.tail()}")

    async def stop(self) -> list[str]:
        """SIGTERM both; then check that no process the server started is left. Lines to print."""
        lines: list[str] = []
        if self.server is not None:
            lines.append(await self._stop_child(self.server, watch=True))
            if self.watcher is not None:
                left = self.watcher.leftovers()
                seen = self.watcher.cli_seen()
                if left:
                    names = ", ".join(f"{pid} ({comm})" for pid, comm in left)
                    lines.append(f"LEFT RUNNING after clawrap exited: {names}")
                    for pid, _ in left:
                        os.kill(pid, signal.SIGKILL)  # ours: seen under our server, same start time
                else:
                    lines.append(
                        f"no process of clawrap's remains ({seen} claude processes seen during "
                        "the run, all gone)"
                    )
        if self.mock is not None:
            lines.append(await self._stop_child(self.mock, watch=False))
        shutil.rmtree(self.tmp, ignore_errors=True)
        return lines

    async def _stop_child(self, child: Child, *, watch: bool) -> str:
        proc = child.proc
        if proc.poll() is not None:
            return f"{child.label} had already exited ({proc.returncode}):\n{child.tail()}"
        if watch and self.watcher is not None:
            self.watcher.snapshot()  # remember every process alive just before the signal
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_LIMIT):
            while proc.poll() is None:
                if watch and self.watcher is not None:
                    self.watcher.snapshot()  # and any started while shutting down
                await trio.sleep(0.02)
        took = time.perf_counter() - t0
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            return f"{child.label} ignored SIGTERM for {STOP_LIMIT:.0f} s: killed"
        return f"{child.label} exited with {proc.returncode} {took:.2f} s after SIGTERM"

    def kill_now(self) -> None:
        """Last resort (an exception escaped): kill both without ceremony."""
        for child in (self.server, self.mock):
            if child is not None and child.proc.poll() is None:
                child.proc.kill()
                child.proc.wait()
        if self.watcher is not None:
            for pid, _ in self.watcher.leftovers():
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)
