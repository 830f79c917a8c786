"""A configuration whose CLI cannot start is not warmed again and again."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from clawrap.claude._sdk_options import SpawnKey, SpawnSpec
from clawrap.claude.pool._pool import ProcessPool
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError

MISSING_CLI = "/nonexistent/claude"


def spec(system: str = "You are terse.") -> SpawnSpec:
    return SpawnSpec(SpawnKey(system), model="sonnet", cli_path=MISSING_CLI)


async def test_a_configuration_that_failed_to_start_is_not_kept_warm() -> None:
    pool = ProcessPool(Settings(pool_size=1))
    failing = spec()
    with pytest.raises(ClawrapError), trio.fail_after(30):
        await pool.acquire(failing)
    assert failing.key not in [s.key for s in pool.policy.wanted()]
    await pool.aclose()


class CountedSpawns:
    """Makes every spawn of a pool fail at once (as a CLI refusing to start does), counting
    the tries per spawn key. No process is started: the clock may jump."""

    def __init__(self, pool: ProcessPool) -> None:
        self.tries: dict[SpawnKey, int] = {}

        async def spawn(s: SpawnSpec) -> Any:
            self.tries[s.key] = self.tries.get(s.key, 0) + 1
            await trio.lowlevel.checkpoint()
            raise ClawrapError("overloaded", "The Claude Code CLI could not be started.")

        pool.count.spawn = spawn  # type: ignore[method-assign]


async def run_pool_for(pool: ProcessPool, seconds: float) -> None:
    async with trio.open_nursery() as nursery:
        await pool.start(nursery)
        await trio.sleep(seconds)
        await pool.aclose()


async def test_a_configuration_failing_to_warm_is_dropped_after_one_try(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pool = ProcessPool(Settings(pool_size=1))
    other = spec("other")
    pool.policy.note(other, trio.current_time())
    pool.policy.note(other, trio.current_time())  # seen twice: wanted warm
    spawns = CountedSpawns(pool)
    await run_pool_for(pool, 120)
    assert spawns.tries == {other.key: 1}


async def test_the_default_configuration_failing_to_warm_is_retried_less_and_less_often(
    autojump_clock: trio.testing.MockClock,
) -> None:
    default = spec("default")
    pool = ProcessPool(Settings(pool_size=1), default_spec=default)
    spawns = CountedSpawns(pool)
    await run_pool_for(pool, 150)
    # After each failure 5, 10, 20, 40, 80 s: 5 tries in 150 s, not one every 5 s (30).
    assert 4 <= spawns.tries[default.key] <= 6
