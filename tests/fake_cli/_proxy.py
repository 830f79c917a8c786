"""Shared by the wrapping fakes: start the real bundled CLI as a child that dies with us."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux: the child gets SIGKILL when this fake dies, however it dies, so a test that
    # goes wrong cannot leave the real CLI behind. (What is under test is whether clawrap
    # ends the fake; the fake's own cleanup is not.)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def start_real_cli(**kwargs: Any) -> subprocess.Popen[bytes]:
    """The real CLI with this fake's arguments; ``kwargs`` go to Popen (stdin, stdout)."""
    real = os.environ["FAKE_REAL_CLI"]
    return subprocess.Popen([real, *sys.argv[1:]], preexec_fn=_die_with_parent, **kwargs)
