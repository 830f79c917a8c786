"""Looking into a ProcessPool from tests: the processes it holds, and waiting for it to warm.

Only tests need these, so they live here rather than in the package.
"""

from __future__ import annotations

from clawrap.claude._cli_process import CliProcess
from clawrap.claude.pool._pool import ProcessPool


def pids(pool: ProcessPool) -> set[int]:
    """Pids of the pool's processes that have not exited yet, in every state."""
    return {p.pid for p in pool.count.live if p.pid is not None}


def idle_processes(pool: ProcessPool) -> list[CliProcess]:
    """The warm processes no request is using (conversation empty)."""
    return pool._idle.all()


def is_awaited(pool: ProcessPool, proc: CliProcess) -> bool:
    """Whether a request waits for ``proc``, which is being reset."""
    return proc in pool._coming._awaited


async def wait_warm(pool: ProcessPool, count: int | None = None) -> None:
    """Wait until ``count`` (default ``pool_size``) processes of the default key are warm."""
    want = pool.settings.pool_size if count is None else count
    default = pool._default
    assert default is not None, "the pool has no default spec to warm"
    await pool.wait_for(lambda: pool._idle.count(default.key) >= want)
