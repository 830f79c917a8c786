"""CLI processes spawned for one run alone (agent mode), and stopping one with all it started.

An agent run's process is fixed at spawn to the run's working directory, tools,
approvals and MCP servers, so it never joins the warm set; it still counts against
the pool's capacity (:class:`~clawrap.claude.pool._count.ProcessCount`) from its
spawn until it has exited, and waits for room like any spawn.

However the run ends (done, halted, failed, client gone, deadline), its process is
stopped in the order that leaves nothing behind (measured: killing the CLI first
orphans its Bash commands, which are in process groups of their own): read the
CLI's pid while it is connected, interrupt the turn (the CLI then stops its tools
itself), stop whatever descendants are still there
(:func:`~clawrap.claude.pool._process_tree.stop_descendants`: freeze, SIGTERM,
SIGKILL), then end the CLI (SIGTERM, SIGKILL after a moment) and disconnect, all
under a shield.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from clawrap.claude._cli_process import CliProcess
from clawrap.claude._sdk_adapter import cli_pid
from clawrap.claude._sdk_errors import map_exceptions
from clawrap.claude._sdk_options import SpawnSpec
from clawrap.claude.pool._count import ProcessCount
from clawrap.claude.pool._process_tree import stop_descendants, terminate_tree
from clawrap.core._errors import ClawrapError

log = logging.getLogger("clawrap.processes")

INTERRUPT_LIMIT = 0.5  # the CLI acknowledges an interrupt in well under this
TREE_GRACE = 0.5  # SIGTERM to SIGKILL for the run's leftover processes
CLI_GRACE = 0.2  # SIGTERM to SIGKILL for the CLI itself, once its children are gone


class DedicatedProcesses:
    """The processes of runs in progress that spawned their own, counted in ``count``."""

    def __init__(self, count: ProcessCount) -> None:
        self._count = count
        self._stopping: dict[CliProcess, trio.Event] = {}
        self.active: set[CliProcess] = set()

    @asynccontextmanager
    async def run(
        self, spec: SpawnSpec, *, deadline: float | None = None
    ) -> AsyncIterator[CliProcess]:
        """A process spawned for ``spec`` alone; stopped with its whole tree on exit.

        Waits for room like any spawn, until ``deadline`` (the request's queue deadline;
        by default ``queue_timeout`` from now), then a 429.
        """
        deadline = self._count.deadline(deadline)
        while not self._count.has_room():
            await self._count.wait_for_room(deadline)
        proc = await self._count.spawn(spec)
        self.active.add(proc)
        try:
            yield proc
        finally:
            with trio.CancelScope(shield=True):
                await self.stop(proc)

    async def stop(self, proc: CliProcess) -> None:
        """End ``proc`` and everything it started; a second call waits for the first.
        Shielded; never raises a CLI failure."""
        with trio.CancelScope(shield=True):
            stopping = self._stopping.get(proc)
            if stopping is not None:
                await stopping.wait()
                return
            self._stopping[proc] = trio.Event()
            try:
                await self._stop_tree(proc)
            finally:
                self.active.discard(proc)
                self._stopping.pop(proc).set()

    async def aclose(self) -> None:
        """Stop every run's process (their runs normally do it themselves)."""
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for proc in list(self.active):
                    nursery.start_soon(self.stop, proc)

    async def _stop_tree(self, proc: CliProcess) -> None:
        pid = cli_pid(proc.client) or proc.pid  # read while the client is still connected
        if proc.in_turn and proc.alive:
            with trio.move_on_after(INTERRUPT_LIMIT):
                try:
                    with map_exceptions("run"):
                        await proc.interrupt()
                except ClawrapError:
                    # Stopped by signal below; why it would not stop itself is of no use.
                    log.debug("interrupting dedicated CLI process %s failed", pid, exc_info=True)
        if pid is not None:
            try:
                left = await stop_descendants(pid, TREE_GRACE)
            except OSError:
                log.warning("stopping the processes of CLI %s failed", pid, exc_info=True)
            else:
                if left:
                    log.info("stopped %d process(es) left by CLI %s", len(left), pid)
            # Its children are gone and it is never reused: end the CLI itself now. Left to
            # exit on stdin EOF or SIGTERM it sometimes takes ~1.5 s (measured), which would
            # hold the end of the response and a dropped client's run that long.
            try:
                await terminate_tree([pid], CLI_GRACE)
            except OSError:
                log.warning("stopping CLI process %s failed", pid, exc_info=True)
        await self._count.close(proc)


__all__ = ["DedicatedProcesses"]
