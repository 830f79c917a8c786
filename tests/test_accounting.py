"""Keys, limit decisions and the ledger, without a server (limits on trio's mock clock)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import trio
import trio.testing

from clawrap.accounting._accountant import Accountant
from clawrap.accounting._keys import (
    LOCAL,
    Identity,
    KeyLimits,
    KeyRing,
    KeysFileError,
    add_key,
    hash_key,
    read_keys_file,
)
from clawrap.accounting._ledger import Ledger
from clawrap.accounting._limits import (
    Limiter,
    Spent,
    check_access,
    check_spend,
    remaining_budget,
    seconds_to_next_day,
    seconds_to_next_month,
)
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Usage
from clawrap.storage._database import Database

NOON = dt.datetime(2026, 7, 31, 12, 0, tzinfo=dt.UTC)


def who(**limits: object) -> Identity:
    return Identity("alice", limits=KeyLimits(**limits))  # type: ignore[arg-type]


# -- keys


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_key_added_to_a_file_is_stored_as_its_hash_and_identifies_its_holder(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"keys{suffix}"
    alice = add_key(path, "alice", requests_per_minute=3, models=("sonnet",), agent=False)
    root = add_key(path, "root", admin=True)
    text = path.read_text()
    assert alice not in text and root not in text
    assert hash_key(alice) in text
    assert path.stat().st_mode & 0o777 == 0o600
    ring = KeyRing.load("legacy-key", path)
    found = ring.identify(["wrong", alice])
    assert found is not None and found.name == "alice" and not found.admin
    assert found.limits.requests_per_minute == 3 and found.limits.models == ("sonnet",)
    assert found.limits.agent is False
    assert ring.identify([root]) == Identity("root", admin=True)
    assert ring.identify(["legacy-key"]) == Identity("default", admin=True)
    assert ring.identify(["nope", alice[:-1]]) is None
    with pytest.raises(KeysFileError, match="already has a key named 'alice'"):
        add_key(path, "alice")


def test_with_no_key_configured_everyone_is_the_local_admin() -> None:
    assert KeyRing.load(None, None).identify([]) == Identity(LOCAL, admin=True)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[[keys]]\nname = "a"\nhash = "abc"\n', "keys.0.hash"),
        ('[[keys]]\nname = "a"\nhash = "sha256:' + "0" * 64 + '"\nrpm = 3\n', "keys.0.rpm"),
        ('[[keys]]\nname = "a b"\nhash = "sha256:' + "0" * 64 + '"\n', "keys.0.name"),
        ("[[keys]\n", "not valid TOML"),
    ],
)
def test_a_bad_keys_file_is_refused_naming_the_field(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    with pytest.raises(KeysFileError, match=problem):
        read_keys_file(path)


def test_two_keys_of_one_name_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    entry = {"name": "a", "hash": "sha256:" + "1" * 64}
    path.write_text(json.dumps({"keys": [entry, entry | {"hash": "sha256:" + "2" * 64}]}))
    with pytest.raises(KeysFileError, match="same name"):
        KeyRing.load(None, path)


# -- decisions


async def test_requests_per_minute_refuse_the_third_and_free_up_as_the_window_moves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = Limiter(trio.current_time)
    alice, bob = (
        who(requests_per_minute=2),
        Identity("bob", limits=KeyLimits(requests_per_minute=2)),
    )
    assert limiter.hit_rate(alice) is None
    await trio.sleep(20)
    assert limiter.hit_rate(alice) is None
    refusal = limiter.hit_rate(alice)
    assert refusal is not None and refusal.limit == "requests_per_minute"
    assert refusal.retry_after == pytest.approx(40)  # the first request leaves the window
    assert limiter.hit_rate(bob) is None  # per key
    await trio.sleep(40)
    assert limiter.hit_rate(alice) is None
    assert limiter.hit_rate(alice) is not None


def test_concurrent_runs_count_up_and_down() -> None:
    limiter = Limiter(lambda: 0.0)
    alice = who(concurrent_runs=1)
    assert limiter.start_run(alice) is None
    refusal = limiter.start_run(alice)
    assert refusal is not None and refusal.limit == "concurrent_runs" and refusal.retry_after
    limiter.end_run(alice)
    assert limiter.start_run(alice) is None


def test_spend_ceilings_refuse_once_reached_until_the_next_utc_day_or_month() -> None:
    limits = {"tokens_per_day": 1000, "usd_per_day": 1.0, "usd_per_month": 10.0}
    alice = who(**limits)
    assert check_spend(alice, Spent(999, 0.99, 9.99), NOON) is None
    day = check_spend(alice, Spent(1000, 0.0, 0.0), NOON)
    assert day is not None and day.limit == "tokens_per_day"
    assert day.retry_after == 12 * 3600
    usd = check_spend(alice, Spent(0, 1.0, 1.0), NOON)
    assert usd is not None and usd.limit == "usd_per_day"
    month = check_spend(alice, Spent(0, 0.5, 10.0), NOON)
    assert month is not None and month.limit == "usd_per_month"
    assert month.retry_after == 12 * 3600  # July 31st, noon: the month ends at midnight
    assert remaining_budget(alice, Spent(0, 0.25, 9.5)) == pytest.approx(0.5)
    assert remaining_budget(who(), Spent()) is None


def test_utc_boundaries() -> None:
    assert seconds_to_next_day(dt.datetime(2026, 2, 28, 23, 59, 30, tzinfo=dt.UTC)) == 30
    assert seconds_to_next_month(dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC)) == 3600
    assert seconds_to_next_month(dt.datetime(2026, 2, 1, tzinfo=dt.UTC)) == 28 * 86400


def test_models_and_agent_mode_are_refused_with_403() -> None:
    alice = who(models=("haiku",), agent=False)
    assert check_access(alice, ("haiku", "haiku"), agent=False) is None
    # Either of a request's names counts (what it asked for, what it resolved to).
    assert check_access(alice, ("claude-haiku-4-5", "haiku"), agent=False) is None
    model = check_access(alice, ("opus", "opus"), agent=False)
    assert model is not None and (model.status, model.limit) == (403, "models")
    agent = check_access(alice, ("haiku", "haiku"), agent=True)
    assert agent is not None and (agent.status, agent.limit) == (403, "agent")


# -- the accountant and its ledger


async def test_the_ledger_adds_runs_per_key_model_and_day_and_spend_counts_cache_writes(
    database: Database,
) -> None:
    now = [NOON]
    accountant = Accountant(
        KeyRing(), await Ledger.open(database), clock=lambda: 0.0, now=lambda: now[0]
    )
    alice = who(tokens_per_day=1000)
    run = await accountant.admit(alice, ("sonnet", "sonnet"), agent=False)
    run.add_usage(
        Usage(
            300, 100, cache_read_input_tokens=5000, cache_creation_input_tokens=200, cost_usd=0.25
        )
    )
    await run.finish()
    await run.finish()  # counted once
    failed = await accountant.admit(alice, ("sonnet", "sonnet"), agent=False)
    await failed.finish(ClawrapError("api_error", "boom"), upstream=True)
    assert await accountant.spent(alice) == Spent(600, 0.25, 0.25)
    run = await accountant.admit(alice, ("sonnet", "sonnet"), agent=False)
    run.add_usage(Usage(300, 100, cost_usd=0.5))
    await run.finish()
    with pytest.raises(ClawrapError) as refused:
        await accountant.admit(alice, ("sonnet", "sonnet"), agent=False)
    assert (refused.value.status, refused.value.code) == (429, "tokens_per_day")
    assert "tokens_per_day" in refused.value.message
    now[0] = NOON + dt.timedelta(days=1)  # a new UTC day
    await (await accountant.admit(alice, ("sonnet", "sonnet"), agent=False)).finish()
    rows = await accountant.ledger.rows()
    assert [(r.day, r.requests, r.input_tokens, r.errors) for r in rows] == [
        ("2026-07-31", 3, 600, 1),
        ("2026-08-01", 1, 0, 0),
    ]
    assert rows[0].cost_usd == pytest.approx(0.75)
    assert rows[0].cache_read_tokens == 5000 and rows[0].cache_write_tokens == 200
    assert await accountant.ledger.rows(key="bob") == []
    assert len(await accountant.ledger.rows(start="2026-08-01")) == 1
