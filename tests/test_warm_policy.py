"""The warm policy's bookkeeping: which processes the pool keeps warm, and on which model."""

from __future__ import annotations

from clawrap.claude._sdk_options import SpawnKey, SpawnSpec
from clawrap.claude.pool._warm_policy import PEAK_WINDOW, WarmPolicy
from clawrap.core._config import Settings

DEFAULT = SpawnSpec(SpawnKey("You are a helpful assistant."), model="sonnet")
IDE = SpawnSpec(SpawnKey("You are an IDE assistant."), model="sonnet")


def policy(pool_size: int = 2) -> WarmPolicy:
    return WarmPolicy(Settings(pool_size=pool_size), DEFAULT)


def test_warm_processes_start_on_the_model_their_key_was_last_asked_for() -> None:
    warm = policy()
    assert [s.model for s in warm.wanted()] == ["sonnet"]
    warm.note(SpawnSpec(DEFAULT.key, model="claude-haiku-4-5"), now=1.0)
    warm.note(SpawnSpec(IDE.key, model="claude-opus-4-5"), now=2.0)
    warm.note(SpawnSpec(IDE.key, model="claude-sonnet-4-5"), now=3.0)
    wanted = warm.wanted()
    assert [(s.key, s.model) for s in wanted] == [
        (DEFAULT.key, "claude-haiku-4-5"),
        (IDE.key, "claude-sonnet-4-5"),
    ]


def test_a_key_seen_once_keeps_one_process_and_seen_twice_a_full_set() -> None:
    warm = policy()
    assert warm.target(DEFAULT.key, now=0.0) == 2
    warm.note(IDE, now=1.0)
    assert warm.target(IDE.key, now=1.0) == 1
    warm.note(IDE, now=2.0)
    assert warm.target(IDE.key, now=2.0) == 2


def test_the_target_follows_the_recent_peak_of_busy_processes_then_falls_back() -> None:
    warm = policy()
    warm.note_busy(DEFAULT.key, 4, now=10.0)
    assert warm.target(DEFAULT.key, now=11.0) == 4
    assert warm.target(DEFAULT.key, now=10.0 + PEAK_WINDOW + 1) == 2


def test_no_warm_processes_when_the_pool_size_is_zero() -> None:
    warm = policy(pool_size=0)
    warm.note(IDE, now=1.0)
    warm.note(IDE, now=2.0)
    assert warm.target(DEFAULT.key, now=2.0) == 0
    assert warm.target(IDE.key, now=2.0) == 0
