"""Smoke test of the single-file build: build (or take) clawrap.pyz, serve, stream, stop.

    python contrib/zipapp/smoke.py [--pyz dist/clawrap.pyz]

Runs ``clawrap.pyz serve --offline`` with the base Python (not a venv, so
only what the pyz carries is importable) and an empty shiv cache, waits for
``/health``, completes one streamed chat completion with the ``openai``
package, stops the server with SIGTERM and checks that no process is left:
neither the server nor any Claude Code CLI it started (every one of them runs
from the freshly unpacked cache, so they are found by their path). Prints the
timings. Exit status 0 only when all of that worked.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PYZ = ROOT / "dist" / "clawrap.pyz"
START_TIMEOUT = 180.0  # the first start unpacks ~400 MB
REQUEST_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


class SmokeFailure(Exception):
    pass


def say(message: str) -> None:
    print(f"smoke: {message}", flush=True)


def base_python() -> str:
    """The interpreter under the running venv, if any: it sees none of the venv's packages."""
    return getattr(sys, "_base_executable", None) or sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_health(port: int, server: subprocess.Popen[bytes], began: float) -> float:
    url = f"http://127.0.0.1:{port}/health"
    while time.monotonic() - began < START_TIMEOUT:
        if server.poll() is not None:
            raise SmokeFailure(f"the server exited with status {server.returncode} before /health")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - began
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)  # a script polling a child process, not a test
    raise SmokeFailure(f"/health did not answer within {START_TIMEOUT:g} s")


def stream_one_completion(port: int) -> tuple[str, float, float]:
    from openai import OpenAI

    client = OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="none",
        timeout=REQUEST_TIMEOUT,
        max_retries=0,
    )
    began = time.monotonic()
    first: float | None = None
    text = ""
    finish = None
    stream = client.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "Say hello."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                first = first if first is not None else time.monotonic() - began
                text += choice.delta.content
            finish = choice.finish_reason or finish
    if not text or finish is None:
        raise SmokeFailure(f"the stream ended without text or finish_reason: {text!r} {finish!r}")
    return text, first or 0.0, time.monotonic() - began


def processes_under(path: Path) -> list[int]:
    """Pids of processes whose executable or command line lies under ``path`` (Linux /proc)."""
    found = []
    marker = str(path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            )
            exe = os.readlink(entry / "exe") if marker not in cmdline else marker
        except OSError:
            continue
        if marker in cmdline or exe.startswith(marker):
            found.append(int(entry.name))
    return found


def stop(server: subprocess.Popen[bytes]) -> float:
    began = time.monotonic()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SmokeFailure(
            f"the server did not stop within {STOP_TIMEOUT:g} s of SIGTERM"
        ) from None
    return time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyz", type=Path, help="use this pyz instead of building one")
    args = parser.parse_args(argv)

    pyz = args.pyz
    if pyz is None:
        say("building dist/clawrap.pyz")
        subprocess.run([sys.executable, str(ROOT / "contrib/zipapp/build.py")], check=True)
        pyz = DEFAULT_PYZ
    pyz = pyz.resolve()
    say(f"{pyz.name}: {pyz.stat().st_size / 2**20:.1f} MiB")

    work = Path(tempfile.mkdtemp(prefix="clawrap-smoke-"))
    shiv_root = work / "shiv"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "CLAUDE_", "CLAWRAP_", "PYTHON"))
        and key not in ("VIRTUAL_ENV",)
    }
    env |= {
        "SHIV_ROOT": str(shiv_root),
        "HOME": str(work / "home"),
        "CLAWRAP_DATA_DIR": str(work / "data"),
        "CLAUDE_CONFIG_DIR": str(work / "claude"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    (work / "home").mkdir()
    port = free_port()
    command = [base_python(), "-I", str(pyz), "serve", "--offline", "--port", str(port)]
    say("starting: " + " ".join(command[1:]))
    log = open(work / "server.log", "wb")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    status = 1
    try:
        began = time.monotonic()
        ready = wait_for_health(port, server, began)
        say(f"first start (unpacking included) answered /health after {ready:.2f} s")
        text, first, whole = stream_one_completion(port)
        say(f"streamed {text!r}: first text after {first:.2f} s, whole reply {whole:.2f} s")
        stopped = stop(server)
        say(f"stopped by SIGTERM in {stopped:.2f} s, exit status {server.returncode}")
        left = processes_under(shiv_root)
        if left:
            raise SmokeFailure(f"processes left running after stop: {left}")
        say("no process left")
        status = 0
    except (SmokeFailure, subprocess.CalledProcessError) as exc:
        say(f"FAILED: {exc}")
    except Exception as exc:
        say(f"FAILED: {type(exc).__name__}: {exc}")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        for pid in processes_under(shiv_root):
            # Only processes started from this run's private cache: ours.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()
        if status != 0:
            say("server output (last 40 lines):")
            lines = (work / "server.log").read_text("utf-8", "replace").splitlines()
            for line in lines[-40:]:
                print("    " + line)
        shutil.rmtree(work, ignore_errors=True)
    say("PASSED" if status == 0 else "FAILED")
    return status


if __name__ == "__main__":
    sys.exit(main())
