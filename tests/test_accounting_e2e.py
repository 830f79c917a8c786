"""Keys, limits, spend ceilings and the usage ledger with real clients, the real SDK and CLI.

Each server gets a keys file; openai-python and anthropic-python (strict response
validation) are the clients. The scripted model's replies carry token counts, and the
CLI prices them itself (the cost in the ledger is its figure).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import trio
from e2e import TEST_LIMIT, Clawrap, in_thread, serving_claude, start_upstream, wait_until

from clawrap.accounting._keys import add_key
from clawrap.accounting._limits import seconds_to_next_day
from clawrap.core._config import Settings
from clawrap.scripted._model import Reply, ToolUse

pytestmark = pytest.mark.e2e

# 1000 tokens in, 100 out: priced by the CLI at a few tenths of a cent.
PRICED = '[[mock:{"text": "priced reply", "input_tokens": 1000, "output_tokens": 100}]]'


class Team:
    def __init__(self, server: Clawrap, keys: dict[str, str]) -> None:
        self.server = server
        self.keys = keys

    def openai(self, name: str) -> openai.OpenAI:
        return self.server.openai(api_key=self.keys[name])

    def anthropic(self, name: str) -> anthropic.Anthropic:
        return self.server.anthropic(api_key=self.keys[name])

    def get(self, name: str, path: str, **params: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.keys[name]}"}
        return httpx.get(self.server.url + path, headers=headers, params=params, timeout=30)


def team_server(keys: dict[str, dict[str, Any]], **settings: Any) -> Callable[..., Any]:
    """A fixture: clawrap with a keys file holding ``keys`` (name -> limits)."""

    @pytest.fixture
    async def fixture(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Team]:
        path = tmp_path / "keys.toml"
        made = {name: add_key(path, name, **limits) for name, limits in keys.items()}
        root = tmp_path / "root"  # agent mode on, working in here
        root.mkdir()
        config = Settings(
            port=0,
            pool_size=settings.pop("pool_size", 1),
            upstream_retries=0,
            data_dir=tmp_path / "data",
            keys_file=str(path),
            agent_roots=(str(root.resolve()),),
            agent_allow_bypass=True,
            **settings,
        )
        with trio.fail_after(TEST_LIMIT):
            upstream = await start_upstream(nursery)
        async with serving_claude(nursery, tmp_path, upstream, config) as server:
            yield Team(server, made)

    return fixture


limited = team_server(
    {
        "rpm": {"requests_per_minute": 2},
        "tokens": {"tokens_per_day": 1500},
        "usd": {"usd_per_day": 0.005},
        "haiku-only": {"models": ("haiku",), "agent": False},
        "other": {"requests_per_minute": 2},
        "admin": {"admin": True},
    }
)


def ask_openai(team: Team, name: str, text: str, **extra: Any) -> openai.types.chat.ChatCompletion:
    extra.setdefault("model", "sonnet")
    with team.openai(name) as client:
        return client.chat.completions.create(messages=[{"role": "user", "content": text}], **extra)


def ask_anthropic(team: Team, name: str, text: str, **extra: Any) -> anthropic.types.Message:
    extra.setdefault("model", "sonnet")
    with team.anthropic(name) as client:
        return client.messages.create(
            max_tokens=100,
            messages=[{"role": "user", "content": text}],
            **extra,
        )


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("name", "limit", "allowed"),
    [("rpm", "requests_per_minute", 2), ("tokens", "tokens_per_day", 2), ("usd", "usd_per_day", 2)],
)
async def test_each_limit_refuses_at_the_right_request_with_429_and_retry_after(
    limited: Team, protocol: str, name: str, limit: str, allowed: int
) -> None:
    ask = ask_openai if protocol == "openai" else ask_anthropic
    # tokens: 1100 then 2200 (>= 1500); usd: 0.003 then 0.006 (>= 0.005): a run that starts
    # below a ceiling is not cut; the next one is refused. Every request is in one session.
    extra: dict[str, Any] = {"extra_body": {"session_id": f"ses-{protocol}-{name}"}}
    with trio.fail_after(TEST_LIMIT):
        for i in range(allowed):
            await in_thread(lambda i=i: ask(limited, name, f"turn {i} {PRICED}", **extra))
        error: type[Exception] = (
            openai.RateLimitError if protocol == "openai" else anthropic.RateLimitError
        )
        with pytest.raises(error) as caught:
            await in_thread(lambda: ask(limited, name, f"refused {PRICED}", **extra))
    refused = caught.value
    assert isinstance(refused, openai.APIStatusError | anthropic.APIStatusError)
    assert refused.status_code == 429
    retry_after = float(refused.response.headers["retry-after"])
    assert f"limit: {limit}" in refused.message
    if protocol == "openai":
        assert isinstance(refused, openai.RateLimitError) and refused.code == limit
    else:
        assert refused.body["type"] == "error"  # type: ignore[index]
        assert refused.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    if limit == "requests_per_minute":
        assert 0 < retry_after <= 60
    else:
        assert 0 < retry_after <= seconds_to_next_day(dt.datetime.now(dt.UTC)) + 1
    assert limited.server.requests("refused") == []  # nothing reached the model
    # Per key: another key (and the same limit) is untouched.
    assert (await in_thread(lambda: ask_openai(limited, "other", "fine"))).choices


async def test_models_and_agent_mode_a_key_may_not_use_are_403(limited: Team) -> None:
    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.PermissionDeniedError) as model:
        await in_thread(lambda: ask_openai(limited, "haiku-only", "opus please", model="opus"))
    assert model.value.code == "models"
    with pytest.raises(anthropic.PermissionDeniedError) as agent:
        await in_thread(
            lambda: ask_anthropic(
                limited,
                "haiku-only",
                "tools please",
                model="haiku",
                extra_body={"enable_tools": True},
            )
        )
    assert "limit: agent" in agent.value.message
    assert (await in_thread(lambda: ask_openai(limited, "haiku-only", "ok", model="haiku"))).choices


concurrent = team_server({"one": {"concurrent_runs": 1}, "admin": {"admin": True}})


async def test_concurrent_runs_refuse_a_second_run_while_the_first_streams(
    concurrent: Team,
) -> None:
    concurrent.server.model.when("HOLD", Reply(text="one two three", stall_after=1))
    first_chunk = trio.Event()
    leave = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def hold() -> None:
        with concurrent.openai("one") as client:
            stream = client.chat.completions.create(
                model="sonnet", messages=[{"role": "user", "content": "HOLD"}], stream=True
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    break
            trio.from_thread.run_sync(first_chunk.set, trio_token=token)
            trio.from_thread.run(leave.wait, trio_token=token)
            stream.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(in_thread, hold)
        with trio.fail_after(TEST_LIMIT):
            await first_chunk.wait()
            with pytest.raises(openai.RateLimitError) as caught:
                await in_thread(lambda: ask_openai(concurrent, "one", "second"))
            assert caught.value.code == "concurrent_runs"
            assert float(caught.value.response.headers["retry-after"]) > 0
            leave.set()
    # The first run ended when its client left: the key may run again.
    with trio.fail_after(TEST_LIMIT):
        await wait_until(lambda: not concurrent.server.backend.status()["busy"])
        assert (await in_thread(lambda: ask_openai(concurrent, "one", "third"))).choices


ledgered = team_server({"alice": {}, "bob": {}, "admin": {"admin": True}})


async def test_the_ledger_totals_equal_the_usage_the_responses_reported(ledgered: Team) -> None:
    reported = {"alice": [0, 0], "bob": [0, 0]}

    def load() -> None:
        for i in range(3):
            for name in ("alice", "bob"):
                answer = ask_openai(ledgered, name, f"q{i} {PRICED}")
                assert answer.usage is not None
                reported[name][0] += answer.usage.prompt_tokens
                reported[name][1] += answer.usage.completion_tokens
        with ledgered.openai("alice") as client:
            stream = client.chat.completions.create(
                model="haiku",
                messages=[{"role": "user", "content": f"streamed {PRICED}"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            usage = [c.usage for c in stream if c.usage is not None][-1]
            reported["alice"][0] += usage.prompt_tokens
            reported["alice"][1] += usage.completion_tokens
        with ledgered.anthropic("bob") as client:
            with client.messages.stream(
                model="sonnet", max_tokens=50, messages=[{"role": "user", "content": PRICED}]
            ) as stream:
                final = stream.get_final_message()
            reported["bob"][0] += final.usage.input_tokens
            reported["bob"][1] += final.usage.output_tokens

    with trio.fail_after(TEST_LIMIT):
        await in_thread(load)
    everyone = (await in_thread(lambda: ledgered.get("admin", "/v1/usage"))).json()
    for name in ("alice", "bob"):
        mine = (await in_thread(lambda name=name: ledgered.get(name, "/v1/usage"))).json()
        assert {row["key"] for row in mine["data"]} == {name}
        assert [mine["total"]["input_tokens"], mine["total"]["output_tokens"]] == reported[name]
        assert mine["total"]["requests"] == 4
        assert mine["total"]["cost_usd"] > 0
        filtered = (
            await in_thread(lambda name=name: ledgered.get("admin", "/v1/usage", key=name))
        ).json()
        assert filtered["total"] == mine["total"]
    assert {r["model"] for r in everyone["data"] if r["key"] == "alice"} == {"sonnet", "haiku"}
    assert everyone["total"]["input_tokens"] == reported["alice"][0] + reported["bob"][0]
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert {r["date"] for r in everyone["data"]} == {today}
    # A key that is not an admin reads only its own usage.
    other = await in_thread(lambda: ledgered.get("alice", "/v1/usage", key="bob"))
    assert other.status_code == 403 and other.json()["error"]["code"] == "not_admin"
    bad = await in_thread(lambda: ledgered.get("admin", "/v1/usage", start="yesterday"))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "start"
    later = await in_thread(lambda: ledgered.get("admin", "/v1/usage", start="2999-01-01"))
    assert later.json()["data"] == []


budgeted = team_server({"spender": {"usd_per_day": 0.5}}, pool_size=0)
# Each model turn of the run: 200k tokens in, 2k out, priced by the CLI at ~$0.42.
COSTLY = {"input_tokens": 200_000, "output_tokens": 2_000}


async def test_an_agent_run_over_its_budget_stops_at_the_next_turn_with_an_error_event(
    budgeted: Team, tmp_path: Path
) -> None:
    root = (tmp_path / "root").resolve()
    budgeted.server.model.when(
        "AGENT-SPEND",
        Reply(
            tool_uses=[ToolUse("Bash", {"command": "touch first", "description": "1"})], **COSTLY
        ),
        Reply(
            tool_uses=[ToolUse("Bash", {"command": "touch second", "description": "2"})], **COSTLY
        ),
        Reply(text="never reached"),
    )

    def run() -> tuple[list[Any], BaseException | None]:
        chunks: list[Any] = []
        with budgeted.openai("spender") as client:
            stream = client.chat.completions.create(
                model="sonnet",
                messages=[{"role": "user", "content": "AGENT-SPEND"}],
                stream=True,
                extra_headers={
                    "X-Claude-Cwd": str(root),
                    "X-Claude-Allowed-Tools": "Bash(touch:*)",
                },
            )
            try:
                chunks.extend(stream)
            except openai.APIError as exc:
                return chunks, exc
        return chunks, None

    with trio.fail_after(TEST_LIMIT):
        chunks, error = await in_thread(run)
    # The first turn ($0.42 of $0.50) ran its tool; the second crossed the budget and the run
    # stopped there: no third model turn (the CLI may have started that turn's tool as it
    # streamed, but the model never saw its result). The stream ends with an error event.
    assert (root / "first").exists()
    assert len(budgeted.server.requests("AGENT-SPEND")) == 2
    assert isinstance(error, openai.APIError) and "spend" in error.message
    assert all(c.choices[0].finish_reason is None for c in chunks if c.choices)
    assert budgeted.server.stray_cli_pids() == []
    assert budgeted.server.backend.pool.dedicated.active == set()
    usage = (await in_thread(lambda: budgeted.get("spender", "/v1/usage"))).json()["total"]
    assert usage["cost_usd"] == pytest.approx(0.84, rel=0.05) and usage["errors"] == 1
    with pytest.raises(openai.RateLimitError) as refused:
        await in_thread(lambda: ask_openai(budgeted, "spender", "one more"))
    assert refused.value.code == "usd_per_day"
