"""Live child processes of the test process, read from /proc (so tests can prove none is left)."""

from __future__ import annotations

import os
from pathlib import Path


def _children_of(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return children


def descendants(pid: int | None = None) -> list[int]:
    """Every live descendant of ``pid`` (default: this process), zombies excluded."""
    found: list[int] = []
    pending = [os.getpid() if pid is None else pid]
    while pending:
        for child in _children_of(pending.pop()):
            if child not in found and not _is_zombie(child):
                found.append(child)
                pending.append(child)
    return found


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # already gone
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def claude_children() -> list[int]:
    """Live descendants of this process whose command line runs the bundled ``claude`` binary."""
    return [
        pid
        for pid in descendants()
        if any(
            os.path.basename(arg) == "claude" or "/_bundled/claude" in arg for arg in cmdline(pid)
        )
    ]
