"""The tool-loop scenario: an IDE agent's loop, round by round, beside the warm SDK floor.

What an agent such as Cline sends: a ~7 KB system prompt, ten tools, and each round the whole
history again with the last tool's result appended. The scripted model answers every round with
a few words and one tool call, and the last round with words only (a ``[[mock:...]]`` directive
with ``then`` replies), so each round has a first text delta to time. Per round the table gives
that time, the CLI processes clawrap spawned (``GET /v1/pool``'s ``spawned``) and the turns it
continued on a parked process (``continued``). Each round is paired with one turn of a kept
``ClaudeSDKClient`` (:mod:`bench._sdk_floor`) run just before it, so both are measured at the
same moment of a machine whose load drifts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, cast

import openai

from . import _sdk_floor
from ._client import Timed, directive
from ._stats import Progress, ms, percentile, table
from ._target import Target

ROUNDS = 8
LOOPS = 3
TOKENS = 5
RESULT_LINES = 40  # of each tool result (~1.6 KB)


def _tool(name: str, description: str, **params: str) -> dict[str, Any]:
    properties = {p: {"type": "string", "description": d} for p, d in params.items()}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": list(params)},
        },
    }


TOOLS = [
    _tool("read_file", "Read a file of the workspace.", path="file path"),
    _tool("write_to_file", "Write a whole file.", path="file path", content="new content"),
    _tool("replace_in_file", "Edit a file by search and replace.", path="file", diff="blocks"),
    _tool("search_files", "Regex search in a directory.", path="directory", regex="pattern"),
    _tool("list_files", "List a directory.", path="directory", recursive="true or false"),
    _tool("list_code_definition_names", "Top-level definitions of a directory.", path="dir"),
    _tool("execute_command", "Run a shell command.", command="the command"),
    _tool("ask_followup_question", "Ask the user a question.", question="the question"),
    _tool("attempt_completion", "Present the result of the task.", result="the result"),
    _tool("browser_action", "Drive a browser.", action="launch, click, type or close"),
]


def system_prompt() -> str:
    """~7 KB of agent instructions, the same in every run."""
    rules = [
        f"{i}. When you use {t['function']['name']}, {t['function']['description'].lower()} "
        "Wait for the user's confirmation of the result before the next step; never assume "
        "the outcome of a tool use. Keep edits minimal, and say why each one is needed."
        for i, t in enumerate(TOOLS * 3, 1)
    ]
    return (
        "You are a highly skilled software engineer with extensive knowledge of many "
        "programming languages, frameworks, design patterns and best practices.\n\n"
        "TOOL USE\n\nYou have access to a set of tools that are executed upon the user's "
        "approval. You use one tool per message, and receive its result in the user's "
        "response.\n\nRULES\n\n" + "\n".join(rules)
    )


def _results(loop: int, round_: int) -> str:
    return "\n".join(
        f"{n:4d}  def step_{loop}_{round_}_{n}(value: int) -> int: return value + {n}"
        for n in range(RESULT_LINES)
    )


def _script(loop: int) -> str:
    """The directive of one loop: a tool call in each round but the last."""
    names = [t["function"]["name"] for t in TOOLS]
    calls = [
        {"tokens": TOKENS, "tool_uses": [{"name": names[r % 7], "input": {"path": f"f{r}.py"}}]}
        for r in range(ROUNDS - 1)
    ]
    first, *then = [*calls, {"tokens": TOKENS}]
    spec = first | {"then": then}
    return f"[[mock:{json.dumps(spec)}]]"


@dataclass
class Round:
    loop: int
    number: int  # 1-based
    timed: Timed
    spawned: int | None = None
    continued: int | None = None
    floor: float | None = None  # the paired warm SDK turn's first delta


@dataclass
class LoopRun:
    loop: int
    messages: list[dict[str, Any]] = field(default_factory=list)


async def stream_round(
    client: openai.AsyncOpenAI, model: str, messages: list[dict[str, Any]]
) -> tuple[Timed, dict[str, Any]]:
    """One streamed round; the assistant message it produced (with its tool calls)."""
    out = Timed()
    calls: dict[int, dict[str, Any]] = {}
    t0 = time.perf_counter()
    try:
        stream = await client.chat.completions.create(
            model=model, messages=cast(Any, messages), tools=cast(Any, TOOLS), stream=True
        )
        async with stream:
            async for chunk in stream:
                out.chunks += 1
                delta = chunk.choices[0].delta if chunk.choices else None
                if delta is None:
                    continue
                if delta.content:
                    if out.first is None:
                        out.first = time.perf_counter() - t0
                    out.text_chunks += 1
                    out.text += delta.content
                for call in delta.tool_calls or []:
                    slot = calls.setdefault(
                        call.index, {"id": "", "type": "function", "function": {}}
                    )
                    slot["id"] = call.id or slot["id"]
                    fn = slot["function"]
                    if call.function is not None:
                        fn["name"] = call.function.name or fn.get("name", "")
                        fn["arguments"] = fn.get("arguments", "") + (call.function.arguments or "")
        out.total = time.perf_counter() - t0
    except openai.APIError as exc:
        out.error = f"{type(exc).__name__}: {str(exc)[:120]}"
    message: dict[str, Any] = {"role": "assistant", "content": out.text or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return out, message


async def tool_loop(target: Target) -> str:
    if target.sdk_env is None or target.sdk_cwd is None:
        return "\n## Tool loop\n\nskipped: needs the scripted model (--mock-url)"
    options = _sdk_floor.sdk_options(target.sdk_env, target.sdk_cwd)
    floor_prompt = f"Floor check. {directive(TOKENS)}"
    system = system_prompt()
    # Loop 0 is untimed: the first request of a new spawn key starts its processes (and
    # the pool warms more of them), which is not what later loops of the same agent pay.
    runs = [LoopRun(n) for n in range(LOOPS + 1)]
    for run in runs:
        task = f"Task {run.loop}: refactor the step functions. {_script(run.loop)}"
        run.messages = [{"role": "system", "content": system}, {"role": "user", "content": task}]
    rounds: list[Round] = []
    progress = Progress("tool loop rounds, each after a warm SDK turn", LOOPS * ROUNDS)
    floor_turns: list[Timed] = []

    async def next_round(warm_up: bool = False) -> None:
        index = len(rounds)
        run = runs[0 if warm_up else index // ROUNDS + 1]
        before = await target.pool() or {}
        timed, reply = await stream_round(target.client, target.model, run.messages)
        after = await target.pool() or {}
        round_ = Round(run.loop, len(run.messages) // 2, timed)
        if "spawned" in before and "spawned" in after:
            round_.spawned = after["spawned"] - before["spawned"]
            round_.continued = after.get("continued", 0) - before.get("continued", 0)
        if not warm_up:
            rounds.append(round_)
        run.messages.append(reply)
        for call in reply.get("tool_calls", []):
            content = _results(run.loop, round_.number)
            run.messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        if round_.number == ROUNDS:
            await target.settle()  # the next loop starts with the pool at rest

    for _ in range(ROUNDS):
        await next_round(warm_up=True)
    floor_turns = await _sdk_floor.warm_turns(
        [floor_prompt] * (LOOPS * ROUNDS), options, progress, next_round
    )
    progress.finish()
    for round_, floor in zip(rounds, floor_turns, strict=False):
        round_.floor = floor.first
    return _report(rounds, floor_turns, len(system))


def _report(rounds: list[Round], floor_turns: list[Timed], system_chars: int) -> str:
    rows = []
    for number in range(1, ROUNDS + 1):
        these = [r for r in rounds if r.number == number]
        firsts = [r.timed.first for r in these if r.timed.first is not None]
        floors = [r.floor for r in these if r.floor is not None]
        spawned = [r.spawned for r in these if r.spawned is not None]
        continued = [r.continued for r in these if r.continued is not None]
        rows.append(
            [
                f"round {number}",
                "/".join(ms(r.timed.first) for r in these),
                ms(percentile(firsts, 50)),
                ms(percentile(floors, 50)),
                "/".join(map(str, spawned)) or "-",
                "/".join(map(str, continued)) or "-",
            ]
        )
    out = table(
        f"Tool loop: {LOOPS} loops of {ROUNDS} rounds (after one untimed), {system_chars} "
        f"chars of system prompt, {len(TOOLS)} tools, the whole history resent each round",
        ["round", "first delta ms, each loop", "p50", "warm SDK p50", "spawned", "continued"],
        rows,
    )
    later = [r for r in rounds if r.number >= 2]
    first = percentile([r.timed.first for r in later if r.timed.first is not None], 50)
    floor = percentile([f.first for f in floor_turns if f.first is not None], 50)
    spawns = sum(r.spawned or 0 for r in later)
    if first is not None and floor is not None:
        out += (
            f"\nrounds 2-{ROUNDS}: first delta median {ms(first)} ms; warm SDK floor median "
            f"{ms(floor)} ms (same run); difference {ms(first - floor)} ms; "
            f"{spawns} process(es) spawned over {len(later)} rounds"
        )
    errors = [r.timed.error for r in rounds if r.timed.error]
    errors += [f.error for f in floor_turns if f.error]
    if errors:
        out += f"\nerrors: {errors[:3]}"
    return out
