"""Processes, read from /proc: descendants of a pid, their names, RSS, CPU, and a sampler.

The benchmark must be able to say how much memory the server and its CLI processes hold, and
afterwards that none of them is left. A process is identified by (pid, start time), so a pid
reused by an unrelated process after ours exited is never mistaken for ours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import trio

CLI_NAME = "claude"  # /proc/<pid>/comm of the CLI binary the SDK bundles

ProcId = tuple[int, int]  # (pid, start time in clock ticks since boot)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first); None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of stat: starttime


def name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU of ``pid`` (0.0 if gone); with ``reaped_children``, that of its
    children which exited and were waited for instead."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    first = 13 if reaped_children else 11  # utime, stime are 14, 15; cutime, cstime 16, 17
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> list[int]:
    """Live (non-zombie) descendants of ``root``."""
    found: list[int] = []
    pending = [root]
    while pending:
        for child in _children(pending.pop()):
            if child not in found and start_time(child) is not None:
                found.append(child)
                pending.append(child)
    return found


def alive(proc: ProcId) -> bool:
    return start_time(proc[0]) == proc[1]


@dataclass
class Snapshot:
    server_rss_kb: int
    cli_rss_kb: int
    cli_count: int


@dataclass
class Watcher:
    """Remembers every descendant of ``root`` it has seen; samples RSS on request."""

    root: int
    seen: dict[ProcId, str] = field(default_factory=dict)

    def snapshot(self) -> Snapshot:
        cli = []
        for pid in descendants(self.root):
            started = start_time(pid)
            if started is None:
                continue
            comm = name(pid)
            self.seen.setdefault((pid, started), comm)
            if comm == CLI_NAME:
                cli.append(pid)
        return Snapshot(rss_kb(self.root), sum(rss_kb(p) for p in cli), len(cli))

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far of (the server itself, its CLI processes, live and exited).

        Exited CLIs are counted in the server's reaped children, so this assumes the
        server starts no other child processes (clawrap does not).
        """
        clis = sum(cpu_seconds(p) for p in descendants(self.root) if name(p) == CLI_NAME)
        return cpu_seconds(self.root), clis + cpu_seconds(self.root, reaped_children=True)

    def leftovers(self) -> list[tuple[int, str]]:
        """Processes seen under ``root`` that still run (after ``root`` has exited)."""
        return [(pid, comm) for (pid, st), comm in self.seen.items() if alive((pid, st))]

    def cli_seen(self) -> int:
        return sum(1 for comm in self.seen.values() if comm == CLI_NAME)


@dataclass
class Peak:
    server_rss_kb: int = 0
    cli_rss_kb: int = 0
    cli_count: int = 0
    samples: int = 0

    def add(self, snap: Snapshot) -> None:
        self.server_rss_kb = max(self.server_rss_kb, snap.server_rss_kb)
        self.cli_rss_kb = max(self.cli_rss_kb, snap.cli_rss_kb)
        self.cli_count = max(self.cli_count, snap.cli_count)
        self.samples += 1


async def sample_until_cancelled(watcher: Watcher, peak: Peak, interval: float = 0.1) -> None:
    """Sample ``watcher`` into ``peak`` every ``interval`` seconds until cancelled."""
    while True:
        peak.add(watcher.snapshot())
        await trio.sleep(interval)
