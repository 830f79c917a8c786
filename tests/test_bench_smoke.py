"""The benchmark package imports, parses its arguments, and its clients read a stream exactly.

Benchmarks are never run here and no time is asserted: only that ``python -m bench`` would
start with the options it documents, and that what it checks replies against is right.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ lives beside tests/

from bench.__main__ import SCENARIOS, build_parser, server_settings
from bench._canned import serve_canned
from bench._client import expected_tokens, make_openai, stream_openai, stream_raw
from bench._stats import percentile, table
from clawrap.scripted._model import Reply


def test_defaults_run_every_scenario_against_a_fresh_clawrap() -> None:
    args = build_parser().parse_args([])
    assert args.base_url is None
    assert args.only == SCENARIOS
    assert args.model == "sonnet"
    assert server_settings(args) == {}


def test_another_server_is_named_with_base_url_and_its_scripted_model() -> None:
    args = build_parser().parse_args(
        ["--base-url", "http://127.0.0.1:9/v1", "--mock-url", "http://127.0.0.1:8",
         "--server-pid", "123", "--only", "stream,cost"]
    )  # fmt: skip
    assert (args.base_url, args.mock_url, args.server_pid) == (
        "http://127.0.0.1:9/v1",
        "http://127.0.0.1:8",
        123,
    )
    assert args.only == ("stream", "cost")


def test_unknown_scenarios_are_refused() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--only", "stream,nonsense"])


def test_pool_flags_become_clawrap_variables() -> None:
    args = build_parser().parse_args(["--max-concurrency", "16", "--pool-size", "4"])
    assert server_settings(args) == {"CLAWRAP_MAX_CONCURRENCY": "16", "CLAWRAP_POOL_SIZE": "4"}


def test_expected_text_is_what_the_scripted_model_sends_for_n_tokens() -> None:
    assert expected_tokens(7) == "".join(Reply(tokens=7).text_deltas())


def test_percentiles_interpolate_between_samples() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 90) == pytest.approx(9.0)


def test_tables_align_their_columns() -> None:
    lines = table("t", ["name", "n"], [["a", 1], ["bbb", 22]]).splitlines()
    assert lines[-2:] == ["a      1", "bbb   22"]


# openai's stream stops at [DONE] without closing its chain of async generators (its own,
# httpx's, httpcore's); trio warns as each is collected. That is the library's, and harmless.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object:pytest.PytestUnraisableExceptionWarning"
)
async def test_both_clients_read_the_canned_stream_exactly() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_canned, 12)
            base = f"http://127.0.0.1:{port}/v1"
            messages = [{"role": "user", "content": "hi"}]
            client = make_openai(base, "k")
            try:
                via_sdk = await stream_openai(client, "m", messages)
            finally:
                await client.close()
            via_raw = await stream_raw(base, "k", "m", messages)
            nursery.cancel_scope.cancel()
    for result in (via_sdk, via_raw):
        assert result.ok, result.error
        assert result.text == expected_tokens(12)
        assert result.text_chunks == 12
