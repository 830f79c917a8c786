"""The changing-prompt scenario: each request with a system prompt no process has seen.

Editor plugins put the workspace's name, the date or a file list into the system prompt, so
consecutive requests rarely share one. One request after another, each with a new ~7 KB
prompt (:func:`bench._tool_loop.system_prompt` plus a line of its own), paced so that the pool
is at rest before each: per request the first text delta and the CLI processes clawrap
spawned meanwhile (``GET /v1/pool``), and how many warm processes it switched to the new
prompt instead (``switched``).
"""

from __future__ import annotations

from ._client import Timed, directive, stream_openai
from ._stats import Progress, ms, percentile, table
from ._target import Target
from ._tool_loop import system_prompt

REQUESTS = 10
TOKENS = 5


async def changing_prompts(target: Target) -> str:
    base = system_prompt()
    results: list[tuple[Timed, int | None, int | None]] = []
    progress = Progress("requests, each with a new system prompt", REQUESTS)
    for i in range(REQUESTS):
        await target.settle()
        before = await target.pool() or {}
        messages = [
            {"role": "system", "content": f"{base}\n\nWorkspace: project-{i} (opened {i} min ago)"},
            {"role": "user", "content": f"Prompt check {i}. {directive(TOKENS)}"},
        ]
        timed = await stream_openai(target.client, target.model, messages)
        after = await target.pool() or {}
        spawned = switched = None
        if "spawned" in before and "spawned" in after:
            spawned = after["spawned"] - before["spawned"]
            switched = after.get("switched", 0) - before.get("switched", 0)
        results.append((timed, spawned, switched))
        progress.step()
    progress.finish()
    firsts = [t.first for t, _, _ in results if t.first is not None]
    totals = [t.total for t, _, _ in results if t.total is not None]
    out = table(
        f"Changing system prompts: {REQUESTS} requests one after another, each with a new "
        f"{len(base) / 1000:.0f} KB system prompt",
        ["requests", "first delta p50 ms", "whole p50 ms", "spawned", "switched"],
        [
            [
                len(results),
                ms(percentile(firsts, 50)),
                ms(percentile(totals, 50)),
                sum(s or 0 for _, s, _ in results),
                sum(w or 0 for _, _, w in results),
            ]
        ],
    )
    out += "\nfirst delta of each, ms: " + " ".join(ms(t.first) for t, _, _ in results)
    errors = [t.error for t, _, _ in results if t.error]
    if errors:
        out += f"\nerrors: {errors[:3]}"
    return out
