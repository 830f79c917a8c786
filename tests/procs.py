"""Live child processes of the test process, read with psutil (so tests can prove none is left).

psutil reads them on every platform it supports; where it cannot, it raises rather than
returning an empty list, so a no-process-left assertion never passes for want of looking.
"""

from __future__ import annotations

import os

import psutil

_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def descendants(pid: int | None = None) -> list[int]:
    """Every live descendant of ``pid`` (default: this process), zombies excluded."""
    try:
        children = psutil.Process(os.getpid() if pid is None else pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found: list[int] = []
    for child in children:
        try:
            if child.status() not in _GONE:
                found.append(child.pid)
        except psutil.NoSuchProcess:
            continue  # exited while being looked at
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def claude_children() -> list[int]:
    """Live descendants of this process whose command line runs the bundled ``claude`` binary."""
    return [
        pid
        for pid in descendants()
        if any(
            os.path.basename(arg) == "claude" or "/_bundled/claude" in arg for arg in cmdline(pid)
        )
    ]
