"""Tie every CLI process's life to the server's: when the server dies, its CLIs die too.

A server killed outright (``kill -9``, the OOM killer) runs no cleanup, and a
CLI in the middle of a reply would go on with its upstream call to the end,
spending the user's usage for nobody. So each CLI is started through a small
launcher script (:func:`launcher_for`) that forks a watchdog and then execs
the CLI in its own place (the SDK still holds the CLI's pid, and its pipes go
straight to the CLI). The watchdog waits on the read end of a FIFO whose only
writer is this server process (:class:`_Lifeline`, opened once, never closed):
when the server is gone, by any means, the kernel closes its end, the
watchdog sees end-of-file and kills the CLI.

The watchdog ends with the CLI: on Linux through ``PR_SET_PDEATHSIG`` (set in
the watchdog, whose parent thread is the exec'd CLI's main thread, which lives
as long as the CLI; set on the CLI itself it would fire when the spawning
thread exits, and trio spawns from short-lived worker threads); elsewhere by
noticing, once a second, that its parent changed.

POSIX only; on other systems, or when the CLI to run cannot be found, the CLI
is started as before.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from claude_agent_sdk import ClaudeAgentOptions

_SCRIPT = """#!{python} -IS
# clawrap's CLI launcher: a watchdog kills the CLI when the server that started it dies.
import os, select, signal, sys
FIFO = {fifo!r}
CLI = {cli!r}
parent = os.getpid()
fd = os.open(FIFO, os.O_RDONLY | os.O_NONBLOCK)
if os.fork() == 0:
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    os.closerange(3, fd)
    os.closerange(fd + 1, 65536)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while os.getppid() == parent:
        if select.select([fd], [], [], 1.0)[0] and not os.read(fd, 64):
            try:
                os.kill(parent, signal.SIGKILL)
            except OSError:
                pass
            break
    os._exit(0)
os.close(fd)
os.execv(CLI, [CLI, *sys.argv[1:]])
"""


class _Lifeline:
    """The FIFO this process holds open for its whole life, and the launchers using it."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="clawrap-lifeline-")  # 0700
        atexit.register(shutil.rmtree, self.directory, ignore_errors=True)
        self.fifo = os.path.join(self.directory, "server")
        os.mkfifo(self.fifo, 0o600)
        # Read-write: holds a writer (this process) without waiting for a reader; never
        # written to, never closed: only this process's end makes the watchdogs see EOF.
        self._fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        os.set_inheritable(self._fd, False)
        self._launchers: dict[str, str] = {}

    def launcher(self, cli: str) -> str:
        path = self._launchers.get(cli)
        if path is None:
            path = os.path.join(self.directory, f"claude-{len(self._launchers)}")
            text = _SCRIPT.format(python=sys.executable, fifo=self.fifo, cli=cli)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
            with os.fdopen(fd, "w") as file:
                file.write(text)
            self._launchers[cli] = path
        return path


_lock = threading.Lock()
_lifeline: _Lifeline | None = None


def _the_lifeline() -> _Lifeline:
    global _lifeline
    with _lock:
        if _lifeline is None:
            _lifeline = _Lifeline()
        return _lifeline


def bundled_cli() -> str | None:
    """The CLI the SDK would run when given none: its bundled one, else ``claude`` on PATH."""
    import claude_agent_sdk

    bundled = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    if bundled.is_file():
        return str(bundled)
    return shutil.which("claude")


def _runnable(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and os.access(path, os.X_OK)


def launcher_for(cli: str) -> str:
    """The launcher script that runs ``cli`` under this server's watchdog."""
    return _the_lifeline().launcher(cli)


def with_lifeline(options: ClaudeAgentOptions) -> ClaudeAgentOptions:
    """``options`` with the CLI started through the launcher, where that can be done."""
    if os.name != "posix":
        return options
    cli = str(options.cli_path) if options.cli_path is not None else bundled_cli()
    if cli is None or not _runnable(cli):
        return options  # let the SDK report it as before
    return replace(options, cli_path=launcher_for(os.path.abspath(cli)))


__all__ = ["bundled_cli", "launcher_for", "with_lifeline"]
