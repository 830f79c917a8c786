"""descendants, terminate_tree and stop_descendants, on real processes."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from clawrap.claude.pool._process_tree import (
    descendants,
    is_alive,
    stop_descendants,
    terminate_tree,
)

# A grace long enough that a cooperative process always exits inside it.
GENEROUS = 10.0


@dataclass
class Tree:
    shell: trio.Process
    children: list[int]  # pids the shell printed, in order

    @property
    def everyone(self) -> list[int]:
        return [self.shell.pid, *self.children]


@asynccontextmanager
async def shell_tree(script: str) -> AsyncIterator[Tree]:
    """A ``sh`` running ``script``; the script prints pids, one a line, then ``ready``."""
    proc = await trio.lowlevel.open_process(["sh", "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    pids: list[int] = []
    buffer = b""
    try:
        with trio.fail_after(10):
            while not buffer.endswith(b"ready\n"):
                chunk = await proc.stdout.receive_some()
                assert chunk, "the shell exited before it was ready"
                buffer += chunk
        pids = [int(line) for line in buffer.decode().split()[:-1]]
        yield Tree(proc, pids)
    finally:
        # Whatever a failed test left behind must not outlive it.
        for pid in [*descendants(proc.pid), *pids, proc.pid]:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
        with trio.CancelScope(shield=True), trio.fail_after(10):
            await proc.wait()
            await proc.stdout.aclose()


TWO_SLEEPS = "sleep 1000 & echo $!; sleep 1000 & echo $!; echo ready; wait"


async def test_descendants_lists_children_of_a_process() -> None:
    async with shell_tree(TWO_SLEEPS) as tree:
        assert sorted(descendants(tree.shell.pid)) == sorted(tree.children)


async def test_descendants_include_grandchildren_after_their_parents() -> None:
    script = "sh -c 'sleep 1000 & echo $!; echo ready; wait' & wait"
    async with shell_tree(script) as tree:
        (grandchild,) = tree.children
        found = descendants(tree.shell.pid)
        assert grandchild in found
        middle = [pid for pid in found if pid != grandchild]
        assert len(middle) == 1
        assert found.index(middle[0]) < found.index(grandchild)


def test_descendants_of_a_process_without_children_is_empty() -> None:
    with subprocess.Popen(["sleep", "1000"]) as proc:
        try:
            assert descendants(proc.pid) == []
        finally:
            proc.kill()


def test_descendants_of_an_unknown_pid_is_empty() -> None:
    assert descendants(2**22 + 12345) == []


async def test_terminate_tree_stops_the_shell_and_all_its_children() -> None:
    async with shell_tree(TWO_SLEEPS) as tree:
        pids = [tree.shell.pid, *descendants(tree.shell.pid)]
        with trio.fail_after(GENEROUS + 10):
            killed = await terminate_tree(pids, grace=GENEROUS)
        await tree.shell.wait()
        assert killed == []
        assert not any(is_alive(pid) for pid in tree.everyone)


async def test_processes_that_ignore_sigterm_are_killed() -> None:
    # The inner shell reports itself only once SIGTERM is ignored; exec keeps its pid.
    script = "sh -c 'trap \"\" TERM; echo $$; echo ready; exec sleep 1000' & wait"
    async with shell_tree(script) as tree:
        (stubborn,) = tree.children
        with trio.fail_after(15):
            killed = await terminate_tree([stubborn], grace=0.2)
        assert killed == [stubborn]
        assert not is_alive(stubborn)


async def test_a_stopped_process_still_acts_on_sigterm() -> None:
    async with shell_tree(TWO_SLEEPS) as tree:
        first = tree.children[0]
        os.kill(first, signal.SIGSTOP)
        with trio.fail_after(GENEROUS + 10):
            killed = await terminate_tree([first], grace=GENEROUS)
        assert killed == []
        assert not is_alive(first)


async def test_processes_already_gone_are_skipped() -> None:
    proc = await trio.lowlevel.open_process(["true"])
    await proc.wait()
    with trio.fail_after(5):
        assert await terminate_tree([proc.pid], grace=GENEROUS) == []


async def test_stop_descendants_stops_everything_below_but_not_the_root() -> None:
    script = (
        "sleep 1000 & echo $!; sh -c 'sleep 1000 & echo $!; echo ready; wait' & exec sleep 1000"
    )
    async with shell_tree(script) as tree:
        below = descendants(tree.shell.pid)
        assert len(below) == 3  # two sleeps and the inner shell
        with trio.fail_after(GENEROUS + 10):
            found = await stop_descendants(tree.shell.pid, grace=GENEROUS)
        assert sorted(found) == sorted(below)
        assert not any(is_alive(pid) for pid in below)
        assert is_alive(tree.shell.pid)


async def test_stop_descendants_of_a_childless_process_finds_nothing() -> None:
    async with shell_tree("echo ready; exec sleep 1000") as tree:
        with trio.fail_after(5):
            assert await stop_descendants(tree.shell.pid, grace=GENEROUS) == []


async def test_the_tests_own_process_reader_sees_a_tree_it_did_not_start_itself() -> None:
    # tests/procs.py backs every "no process left" assertion: it must see processes at all.
    import procs

    async with shell_tree(TWO_SLEEPS) as tree:
        seen = procs.descendants()
        assert set(tree.everyone) <= set(seen)
        assert set(procs.descendants(tree.shell.pid)) == set(descendants(tree.shell.pid))
        assert procs.cmdline(tree.children[0])[:2] == ["sleep", "1000"]
