"""Latency scenarios: the client's own cost, one streamed reply, the bare SDK floor, and load.

Each scenario returns the text it prints (tables) and the figures later scenarios compare with.
Every loop is bounded in count and in time; a scenario that runs out of time reports how far
it got.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import trio

from . import _sdk_floor
from ._canned import serve_canned
from ._client import (
    Messages,
    Timed,
    directive,
    expected_tokens,
    make_openai,
    stream_openai,
    stream_raw,
)
from ._procs import Peak, Snapshot, sample_until_cancelled
from ._stats import Progress, mb, ms, percentile, table
from ._target import Target


def ask(text: str, tokens: int, delay: float = 0.0) -> Messages:
    return [{"role": "user", "content": f"{text} {directive(tokens, delay)}"}]


def exact(results: Sequence[Timed], tokens: int) -> int:
    want = expected_tokens(tokens)
    return sum(1 for r in results if r.ok and r.text == want)


def p(results: Sequence[Timed], attr: str, q: float) -> float | None:
    values = [getattr(r, attr) for r in results if r.ok and getattr(r, attr) is not None]
    return percentile(values, q)


async def repeat(
    name: str, count: int, limit: float, one: Callable[[int], Awaitable[Timed]]
) -> list[Timed]:
    """Run ``one(i)`` up to ``count`` times, one after another, for at most ``limit`` seconds."""
    progress = Progress(name, count)
    results: list[Timed] = []
    with trio.move_on_after(limit) as scope:
        for i in range(count):
            results.append(await one(i))
            progress.step()
    progress.finish("(time limit reached)" if scope.cancelled_caught else "")
    return results


# -- the client's own cost ---------------------------------------------------------------------


async def client_overhead(reps: int = 20, tokens: int = 50) -> str:
    """The openai SDK and raw h11, both against a canned stream served in this process."""
    messages = ask("canned", tokens)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_canned, tokens)
        base = f"http://127.0.0.1:{port}/v1"
        client = make_openai(base, "canned")
        try:
            sdk = await repeat(
                "client overhead, openai",
                reps,
                20,
                lambda _: stream_openai(client, "canned", messages),
            )
        finally:
            await client.close()
        raw = await repeat(
            "client overhead, raw h11",
            reps,
            20,
            lambda _: stream_raw(base, "canned", "canned", messages),
        )
        nursery.cancel_scope.cancel()
    rows = [
        [*_row("openai AsyncOpenAI (kept connection)", sdk, tokens), ms(p(sdk, "total", 90))],
        [*_row("raw h11 (new connection)", raw, tokens), ms(p(raw, "total", 90))],
    ]
    return table(
        f"Client overhead: a canned {tokens}-chunk stream served in-process, no server work",
        [*HEADERS, "whole p90 ms"],
        rows,
    )


HEADERS = ["client", "reps", "text chunks", "exact", "first chunk p50 ms", "whole p50 ms"]


def _row(label: str, results: Sequence[Timed], tokens: int) -> list[object]:
    ok = [r for r in results if r.ok]
    chunks = sorted({r.text_chunks for r in ok})
    return [
        label,
        len(results),
        "/".join(map(str, chunks)) or "-",
        f"{exact(results, tokens)}/{len(results)}",
        ms(p(results, "first", 50)),
        ms(p(results, "total", 50)),
    ]


# -- one streamed reply ------------------------------------------------------------------------


@dataclass
class StreamingFigures:
    first_p50: float | None = None
    paced_first_p50: float | None = None


async def streaming(target: Target, figures: StreamingFigures) -> str:
    tokens = 50
    counter = iter(range(10_000))

    def question() -> Messages:
        return ask(f"Streaming check {next(counter)}.", tokens)

    # The two clients alternate, so neither gets the quieter moments of the machine.
    plain: list[Timed] = []
    raw: list[Timed] = []

    async def both(_: int) -> Timed:
        plain.append(await stream_openai(target.client, target.model, question()))
        raw.append(await stream_raw(target.base_url, target.api_key, target.model, question()))
        return raw[-1]

    await repeat("stream 50 tokens, openai and raw h11 in turn", 10, 40, both)
    paced_messages = ask("Paced streaming check.", tokens, 0.04)
    paced = await repeat(
        "stream 50 tokens paced 0.04 s",
        3,
        30,
        lambda _: stream_openai(target.client, target.model, paced_messages),
    )
    figures.first_p50 = p(plain, "first", 50)
    figures.paced_first_p50 = p(paced, "first", 50)
    rows = [
        [*_row("50 tokens, no delay (openai)", plain, tokens), _all_chunks(plain)],
        [*_row("50 tokens, no delay (raw h11)", raw, tokens), _all_chunks(raw)],
        [*_row("50 tokens, 0.04 s apart (openai)", paced, tokens), _all_chunks(paced)],
    ]
    out = table(
        "Streaming one reply",
        [
            "reply",
            "reps",
            "text chunks",
            "exact",
            "first chunk p50 ms",
            "whole p50 ms",
            "all chunks",
        ],
        rows,
    )
    errors = [r.error for r in plain + raw + paced if r.error]
    if errors:
        out += f"\nerrors: {errors[:3]}"
    paced_whole = p(paced, "total", 50)
    if figures.first_p50 and figures.paced_first_p50 and paced_whole:
        streamed = figures.paced_first_p50 < 0.25 * paced_whole
        out += (
            f"\nfirst chunk of the paced reply {ms(figures.paced_first_p50)} ms vs unpaced "
            f"{ms(figures.first_p50)} ms, while the paced reply takes {ms(paced_whole)} ms: "
            + ("streamed as it is made" if streamed else "BUFFERED: the first chunk waits")
        )
    return out


def _all_chunks(results: Sequence[Timed]) -> str:
    return "/".join(map(str, sorted({r.chunks for r in results if r.ok}))) or "-"


# -- the bare SDK floor ------------------------------------------------------------------------


async def sdk_floor(target: Target) -> str:
    """Cold ``query()`` runs, then warm SDK turns each paired with clawrap requests."""
    if target.sdk_env is None or target.sdk_cwd is None:
        return "\n## Bare SDK floor\n\nskipped: needs the scripted model (--mock-url)"
    tokens, pairs = 50, 8
    options = _sdk_floor.sdk_options(target.sdk_env, target.sdk_cwd)
    prompt = f"Floor check. {directive(tokens)}"
    cold = await repeat(
        "bare SDK, cold query()", 3, 45, lambda _: _sdk_floor.cold_query(prompt, options)
    )
    # Each warm SDK turn is followed at once by the same request through the server, so the
    # two are compared at the same moment of a machine whose load drifts.
    served_raw: list[Timed] = []
    served_sdk: list[Timed] = []
    counter = iter(range(10_000))

    async def through_server() -> None:
        question = ask(f"Paired check {next(counter)}.", tokens)
        served_raw.append(await stream_raw(target.base_url, target.api_key, target.model, question))
        served_sdk.append(await stream_openai(target.client, target.model, question))

    progress = Progress("bare SDK warm turns, each paired with clawrap", pairs)
    warm: list[Timed] = []
    with trio.move_on_after(60):
        warm = await _sdk_floor.warm_turns([prompt] * pairs, options, progress, through_server)
    progress.finish()
    runs = [
        ("cold query(): a new CLI process", cold),
        ("warm ClaudeSDKClient, /clear between", warm),
        ("clawrap, raw h11, right after each warm turn", served_raw),
        ("clawrap, openai, right after each warm turn", served_sdk),
    ]
    rows = [[*_row(label, res, tokens), ms(_min_first(res))] for label, res in runs]
    out = table(
        "Bare SDK floor (same scripted model, no server; under trio) and clawrap beside it",
        ["path", *HEADERS[1:], "first min ms"],
        rows,
    )
    diffs = [
        s.first - w.first
        for w, s in zip(warm, served_raw, strict=False)
        if w.first is not None and s.first is not None
    ]
    if diffs:
        out += (
            f"\nclawrap (raw h11) first chunk minus the warm SDK's first text delta, paired: "
            f"median {ms(percentile(diffs, 50))} ms over {len(diffs)} pairs"
        )
    errors = [r.error for _, res in runs for r in res if r.error]
    if errors:
        out += f"\nerrors: {errors[:3]}"
    return out


def _min_first(results: Sequence[Timed]) -> float | None:
    return min((r.first for r in results if r.first is not None), default=None)


# -- load ---------------------------------------------------------------------------------------

ADAPT_ROUNDS = 3


@dataclass
class LoadRun:
    label: str
    planned: int
    results: list[Timed] = field(default_factory=list)
    elapsed: float = 0.0
    timed_out: bool = False
    # CPU seconds spent during the run by: the server, its CLI processes, this client.
    cpu: tuple[float, float, float] | None = None


def _cpu_now(target: Target) -> tuple[float, float, float] | None:
    if target.watcher is None:
        return None
    times = os.times()
    return (*target.watcher.cpu(), times.user + times.system)


async def load(target: Target, label: str, total: int, clients: int, limit: float) -> LoadRun:
    tokens = 5
    run = LoadRun(label, total)
    progress = Progress(label, total)
    numbers = iter(range(total))

    async def worker() -> None:
        for i in numbers:  # shared: each request number is taken by exactly one worker
            messages = ask(f"Load request {i}.", tokens)
            run.results.append(await stream_openai(target.client, target.model, messages))
            progress.step()

    cpu_before = _cpu_now(target)
    t0 = time.perf_counter()
    with trio.move_on_after(limit) as scope:
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(worker)
    run.elapsed = time.perf_counter() - t0
    cpu_after = _cpu_now(target)
    if cpu_before is not None and cpu_after is not None:
        run.cpu = (
            cpu_after[0] - cpu_before[0],
            cpu_after[1] - cpu_before[1],
            cpu_after[2] - cpu_before[2],
        )
    run.timed_out = scope.cancelled_caught
    progress.finish("(time limit reached)" if run.timed_out else "")
    return run


def load_row(run: LoadRun) -> list[object]:
    ok = [r for r in run.results if r.ok]
    errors = len(run.results) - len(ok)
    done = f"{len(run.results)}/{run.planned}" + (" (timeout)" if run.timed_out else "")
    return [
        run.label,
        done,
        errors,
        len(ok) - exact(ok, 5),
        ms(p(ok, "first", 50)),
        ms(p(ok, "first", 90)),
        ms(p(ok, "total", 50)),
        ms(p(ok, "total", 90)),
        f"{len(ok) / run.elapsed:.1f}" if run.elapsed else "-",
    ]


async def adapt(target: Target, clients: int) -> str:
    """Untimed rounds at ``clients`` concurrency until one makes the pool start nothing.

    The pool sizes itself to the concurrency it sees (a process started takes ~0.5 s of
    CPU): the measured run that follows shows the steady state, and this line the cost
    of getting there.
    """
    notes = []
    for _ in range(ADAPT_ROUNDS):
        before = (await target.pool() or {}).get("spawned")
        run = await load(target, f"{clients} clients, untimed", 10 * clients, clients, 40)
        await target.settle()
        spawned = (await target.pool() or {}).get("spawned")
        started = spawned - before if spawned is not None and before is not None else None
        ok = sum(1 for r in run.results if r.ok)
        rate = f"{ok / run.elapsed:.1f} req/s" if run.elapsed else "-"
        notes.append(f"{ok} requests, {rate}, {started} process(es) started")
        if not started:
            break
    return f"before {clients} clients: " + "; ".join(notes)


async def load_scenarios(target: Target) -> str:
    adapting = []
    runs = [await load(target, "sequential", 30, 1, 40)]
    await target.settle()
    adapting.append(await adapt(target, 4))
    runs.append(await load(target, "4 clients", 200, 4, 40))
    await target.settle()
    adapting.append(await adapt(target, 16))
    idle = target.watcher.snapshot() if target.watcher else None
    pool_before = await target.pool()
    peak = Peak()
    async with trio.open_nursery() as nursery:
        if target.watcher is not None:
            nursery.start_soon(sample_until_cancelled, target.watcher, peak)
        runs.append(await load(target, "16 clients", 200, 16, 40))
        nursery.cancel_scope.cancel()
    pool_after = await target.pool()
    errors = [r.error for run in runs for r in run.results if r.error]
    out = table(
        "Load: short replies (5 tokens, no delay), streamed with the openai client",
        [
            "clients",
            "done",
            "errors",
            "inexact",
            "first p50 ms",
            "first p90 ms",
            "whole p50 ms",
            "whole p90 ms",
            "req/s",
        ],
        [load_row(run) for run in runs],
    )
    if errors:
        out += f"\nerrors (first 3 of {len(errors)}): {errors[:3]}"
    out += "\nthe pool adapting (untimed, before the timed runs):\n"
    out += "".join(f"  {line}\n" for line in adapting)
    out += "\n" + cpu_table(runs)
    out += "\n" + memory_table(idle, peak, target.watcher is not None)
    out += f"\n/v1/pool before 16 clients: {pool_before}\n/v1/pool after 16 clients:  {pool_after}"
    return out


def cpu_table(runs: Sequence[LoadRun]) -> str:
    """Where the CPU of a request goes: on a small machine, this is what bounds req/s."""
    rows = []
    for run in runs:
        if run.cpu is None or not run.results:
            continue
        n = len(run.results)
        server, clis, client = (1000 * c / n for c in run.cpu)
        rows.append([run.label, f"{server:.1f}", f"{clis:.1f}", f"{client:.1f}"])
        rows[-1].append(f"{server + clis + client:.1f}")
    if not rows:
        return ""
    title = "CPU per request (ms, from /proc; this client runs on the same machine)"
    return table(title, ["clients", "server", "CLI processes", "this client", "total"], rows)


def memory_table(idle: Snapshot | None, peak: Peak, available: bool) -> str:
    if not available or idle is None:
        return "\n## Memory\n\nskipped: the server's pid is unknown"
    return table(
        f"Memory (RSS from /proc; peak over {peak.samples} samples during the 16-client run)",
        ["process", "idle before MB", "peak MB"],
        [
            ["clawrap server", mb(idle.server_rss_kb), mb(peak.server_rss_kb)],
            [
                f"claude CLI processes, total ({idle.cli_count} idle, peak {peak.cli_count})",
                mb(idle.cli_rss_kb),
                mb(peak.cli_rss_kb),
            ],
        ],
    )
