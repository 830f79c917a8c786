"""Find and stop every process an agent run started, the CLI's own children included.

In agent mode the CLI runs Bash commands as its children. Measured with the
bundled CLI (2.1.x): each command runs as ``/bin/bash -c ...`` in a new session
(``setsid``: its process group and session are its own pid) and the command's
own processes get process groups of their own again. So neither the CLI's
process group (which is clawrap's: the SDK spawns it without
``start_new_session``) nor the shell's group covers them: only the parent links
do. When the CLI dies without cleaning up (SIGKILL, crash) those processes are
re-parented to init and the links are lost, so the tree must be read *before*
the CLI is stopped.

:func:`descendants` reads the parent links with ``psutil`` (from here in a worker
thread: a scan reads every process on the machine). :func:`terminate_tree` sends
SIGTERM (and SIGCONT, so a stopped process sees it), waits a bounded grace period,
then SIGKILLs survivors. On Linux every process is held by a pidfd from the moment
it is found, so a pid that is reused by an unrelated process in the meantime is
never signalled. :func:`stop_descendants` freezes the tree with SIGSTOP first, so
nothing can fork past the snapshot. Reaping stays the parent's business: a zombie
counts as gone.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from collections import deque
from collections.abc import Iterable

import psutil
import trio

# Longest wait after SIGKILL: the kernel only needs to schedule the exit.
_KILL_WAIT = 5.0
# Without pidfds we can only poll for an exit; start fast, back off.
_POLL_FIRST = 0.005
_POLL_MAX = 0.1
# A tree that keeps forking while being frozen is given up on after this many sweeps.
_FREEZE_SWEEPS = 20

_HAS_PIDFD = (
    sys.platform.startswith("linux")
    and hasattr(os, "pidfd_open")
    and hasattr(signal, "pidfd_send_signal")
)


_GONE = frozenset({psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD})


def _children_table() -> dict[int, list[int]]:
    """parent pid -> its live children, for every process we can see."""
    children: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["ppid", "status"]):
        # A process that is gone or hidden mid-scan gets None for what could not be read.
        ppid, status = proc.info["ppid"], proc.info["status"]
        if ppid is not None and status not in _GONE:
            children.setdefault(ppid, []).append(proc.pid)
    return children


def descendants(pid: int) -> list[int]:
    """The live descendants of ``pid``, parents before children; ``[]`` if it has none.

    ``pid`` itself is not included. Zombies count as gone and are left out. Reads
    every process's parent link: blocking work, for a worker thread.
    """
    children = _children_table()
    found: list[int] = []
    queue = deque([pid])
    seen = {pid}
    while queue:
        for child in sorted(children.get(queue.popleft(), ())):
            if child not in seen:  # a pid reused mid-scan could form a loop
                seen.add(child)
                found.append(child)
                queue.append(child)
    return found


def is_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() not in _GONE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists; we may not look at it


class _Proc:
    """One process to stop, held by a pidfd where the platform has them."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd: int | None = None
        if _HAS_PIDFD:
            # A process that is already gone simply gets no fd (and is never signalled).
            with contextlib.suppress(OSError):
                self.fd = os.pidfd_open(pid)

    def send(self, sig: signal.Signals) -> bool:
        """Signal the process; False when it is already gone."""
        try:
            if self.fd is not None:
                signal.pidfd_send_signal(self.fd, sig)
            elif _HAS_PIDFD:
                return False  # pidfd_open failed: it was gone when found
            else:
                os.kill(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def alive(self) -> bool:
        if self.fd is not None:
            # Readable means exited; unlike the pid, the fd cannot name a newer process.
            return not select.select([self.fd], [], [], 0)[0]
        return not _HAS_PIDFD and is_alive(self.pid)

    async def wait_gone(self) -> None:
        if self.fd is not None:
            if self.alive():
                # A pidfd turns readable when its process exits, child of ours or not.
                await trio.lowlevel.wait_readable(self.fd)
            return
        delay = _POLL_FIRST
        while self.alive():
            await trio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


async def _wait_all(procs: Iterable[_Proc], limit: float) -> None:
    with trio.move_on_after(limit):
        async with trio.open_nursery() as nursery:
            for proc in procs:
                nursery.start_soon(proc.wait_gone)


async def _terminate(procs: list[_Proc], grace: float) -> list[int]:
    for proc in procs:
        if proc.send(signal.SIGTERM):
            # A stopped process only acts on SIGTERM once continued.
            proc.send(signal.SIGCONT)
    await _wait_all(procs, grace)
    killed = [proc for proc in procs if proc.alive() and proc.send(signal.SIGKILL)]
    await _wait_all(killed, _KILL_WAIT)
    return [proc.pid for proc in killed]


async def terminate_tree(pids: Iterable[int], grace: float) -> list[int]:
    """Stop every process in ``pids``: SIGTERM, up to ``grace`` seconds, then SIGKILL.

    Processes already gone are skipped. Returns the pids that needed SIGKILL.
    Waiting is bounded (``grace`` plus a few seconds after SIGKILL); reaping is
    left to each process's parent.
    """
    procs = [_Proc(pid) for pid in dict.fromkeys(pids)]
    try:
        return await _terminate(procs, grace)
    finally:
        for proc in procs:
            proc.close()


async def stop_descendants(pid: int, grace: float) -> list[int]:
    """Freeze and stop every descendant of ``pid`` (not ``pid`` itself).

    Each descendant is sent SIGSTOP as it is found and the tree is read again
    until no new process appears, so none can fork past the snapshot; then they
    all get :func:`terminate_tree`'s SIGTERM/SIGCONT/SIGKILL treatment. Returns
    every pid that was found.
    """
    procs: dict[int, _Proc] = {}
    try:
        for _ in range(_FREEZE_SWEEPS):
            found = await trio.to_thread.run_sync(descendants, pid)
            new = [p for p in found if p not in procs]
            if not new:
                break
            for child in new:
                proc = procs[child] = _Proc(child)
                proc.send(signal.SIGSTOP)
        await _terminate(list(procs.values()), grace)
        return list(procs)
    finally:
        for proc in procs.values():
            proc.close()


__all__ = ["descendants", "is_alive", "stop_descendants", "terminate_tree"]
