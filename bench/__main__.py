"""``python -m bench``: start the scripted model and clawrap, run every scenario, print tables.

With ``--base-url`` it measures another OpenAI-compatible server instead (nothing is started);
``--mock-url`` adds the figures that need that server's scripted model, ``--server-pid`` the
memory and process figures. Progress goes to stderr, tables to stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata

import trio

from . import _behaviour, _latency, _prompts, _responses, _tool_loop
from ._client import stream_openai
from ._procs import Watcher
from ._stack import Stack, offline_env
from ._stats import emit, note
from ._target import Target

SCENARIOS = (
    "overhead",
    "stream",
    "floor",
    "load",
    "drop",
    "cost",
    "chat",
    "responses",
    "loop",
    "prompts",
)
WARM_LIMIT = 30.0
WARM_ROUNDS = 4
# clawrap settings the bench can pass, and their types.
SETTINGS: dict[str, type] = {
    "max-concurrency": int,
    "pool-size": int,
    "pool-max": int,
    "pool-parked": int,
    "tool-wait": int,
    "cli-path": str,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure clawrap (or another OpenAI-compatible server) end to end "
        "against a scripted model.",
    )
    parser.add_argument("--base-url", help="measure this server (its OpenAI base, ending in /v1)")
    parser.add_argument("--api-key", default="bench", help="key sent to the server")
    parser.add_argument("--model", default="sonnet", help="model named in every request")
    parser.add_argument(
        "--mock-url", help="with --base-url: the scripted model that server talks to"
    )
    parser.add_argument(
        "--server-pid", type=int, help="with --base-url: the server's pid (memory, processes)"
    )
    parser.add_argument(
        "--only",
        type=_scenario_list,
        default=SCENARIOS,
        help=f"comma-separated scenarios to run (default all: {','.join(SCENARIOS)})",
    )
    for name, kind in SETTINGS.items():
        parser.add_argument(
            f"--{name}",
            type=kind,
            help=f"clawrap's CLAWRAP_{name.upper().replace('-', '_')} (default: clawrap's own)",
        )
    return parser


def _scenario_list(raw: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {','.join(SCENARIOS)}")
    return names


def server_settings(args: argparse.Namespace) -> dict[str, str]:
    out = {}
    for name in (s.replace("-", "_") for s in SETTINGS):
        value = getattr(args, name)
        if value is not None:
            out[f"CLAWRAP_{name.upper()}"] = str(value)
    return out


def header(args: argparse.Namespace, target_label: str) -> str:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "?"

    load = os.getloadavg()
    return (
        f"# clawrap benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}\n\n"
        f"target: {target_label}\n"
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} at start; "
        f"Python {platform.python_version()}\n"
        f"clawrap {version('clawrap')}, claude-agent-sdk {version('claude-agent-sdk')}, "
        f"openai {version('openai')}, trio {version('trio')}"
    )


async def warm_up(target: Target) -> str:
    """Wait for the pool to have warm processes, then send a few untimed requests."""
    lines = []
    t0 = time.perf_counter()
    if target.has_pool:
        with trio.move_on_after(WARM_LIMIT):
            while True:
                pool = await target.pool() or {}
                if pool.get("warm", 0) >= 1 and pool.get("starting", 0) == 0:
                    break
                await trio.sleep(0.05)
        lines.append(f"pool ready {time.perf_counter() - t0:.2f} s after /health: {pool}")
    # Rounds of untimed requests until one round makes the pool start nothing new: the
    # pool adapts to demand, and its process starts must not land in the first scenario.
    for round_ in range(WARM_ROUNDS):
        before = (await target.pool() or {}).get("spawned")
        for i in range(3):
            messages = _latency.ask(f"Warm-up {round_}.{i}.", 5)
            await stream_openai(target.client, target.model, messages)
        await target.settle()
        if before is None or (await target.pool() or {}).get("spawned") == before:
            break
    final = await target.pool()
    if final is not None:
        lines.append(f"after {round_ + 1} warm-up round(s) of 3 requests: {final}")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    stack: Stack | None = None
    scratch = tempfile.mkdtemp(prefix="clawrap-bench-sdk-")
    target: Target | None = None
    shutdown: list[str] = []
    try:
        if args.base_url is None:
            stack = Stack(settings=server_settings(args))
            note("starting the scripted model and clawrap ...")
            await stack.start()
            target = Target(
                f"{stack.base_url}/v1", args.api_key, args.model, stack.mock_url, stack.watcher
            )
            label = f"clawrap serve at {stack.base_url} (started here)"
        else:
            watcher = Watcher(args.server_pid) if args.server_pid else None
            target = Target(args.base_url, args.api_key, args.model, args.mock_url, watcher)
            label = args.base_url
        if target.mock_url:
            config = os.path.join(scratch, "claude-config")
            os.mkdir(config)
            target.sdk_env, target.sdk_cwd = offline_env(target.mock_url, config), scratch
        await target.probe()
        emit(header(args, label))
        settings = server_settings(args)
        if stack is not None:
            emit(
                "startup: "
                + ", ".join(f"{k} {v:.2f} s" for k, v in stack.startup.items())
                + (f"; settings {settings}" if settings else "; clawrap's default settings")
            )
        note("warming up ...")
        emit(await warm_up(target))
        await run_scenarios(target, args.only)
        emit(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        with trio.CancelScope(shield=True):
            if target is not None:
                await target.aclose()
            if stack is not None:
                note("stopping ...")
                shutdown = await stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    if shutdown:
        emit("\n## Shutdown (SIGTERM)\n\n" + "\n".join(shutdown))
    return 0


async def run_scenarios(target: Target, only: Sequence[str]) -> None:
    figures = _latency.StreamingFigures()
    steps: dict[str, Callable[[], Awaitable[str]]] = {
        "overhead": lambda: _latency.client_overhead(),
        "stream": lambda: _latency.streaming(target, figures),
        "floor": lambda: _latency.sdk_floor(target),
        "load": lambda: _latency.load_scenarios(target),
        "drop": lambda: _behaviour.dropped_clients(target),
        "cost": lambda: _behaviour.upstream_cost(target),
        "chat": lambda: _behaviour.conversation(target),
        "responses": lambda: _responses.responses_scenarios(target),
        "loop": lambda: _tool_loop.tool_loop(target),
        "prompts": lambda: _prompts.changing_prompts(target),
    }
    for name in SCENARIOS:
        if name not in only:
            continue
        await target.settle()
        pool_before = await target.pool()
        t0 = time.perf_counter()
        try:
            emit(await steps[name]())
        except Exception as exc:  # one broken scenario must not hide the others' figures
            emit(f"\n## {name}\n\nFAILED: {type(exc).__name__}: {exc}")
        took = time.perf_counter() - t0
        pool = await target.pool()
        if pool is not None and pool_before is not None:
            spawned = pool.get("spawned", 0) - pool_before.get("spawned", 0)
            note(f"  ({name}: {took:.1f} s; clawrap spawned {spawned} CLI processes; pool {pool})")
        else:
            note(f"  ({name}: {took:.1f} s)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return trio.run(run, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
