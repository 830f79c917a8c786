"""Behaviour scenarios: clients that go away, what one question costs upstream, a long chat.

These need more than a client can see: the scripted model's recorded requests and open streams,
clawrap's ``GET /v1/pool``, the server's ``claude`` processes. What the target cannot show is
reported as "n/a".
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import trio

from ._client import Messages, Timed, directive, expected_tokens, stream_openai
from ._stats import Progress, ms, table
from ._target import Target, body_bytes, message_posts

# -- clients dropped mid-reply ----------------------------------------------------------------


@dataclass
class Observation:
    busy: object = "n/a"  # clawrap's pool: processes serving a request or being reset
    warm: object = "n/a"  # clawrap's pool: idle processes ready for the next request
    cli: object = "n/a"  # claude processes under the server
    upstream_open: object = "n/a"  # streams the scripted model is still sending


async def observe(target: Target) -> Observation:
    seen = Observation()
    pool = await target.pool()
    if pool is not None:
        seen.busy, seen.warm = pool.get("busy", "?"), pool.get("warm", "?")
    if target.watcher is not None:
        seen.cli = target.watcher.snapshot().cli_count
    streams = await target.streams() if target.has_tally else None
    if streams is not None:
        seen.upstream_open = streams.get("open", "?")
    return seen


async def dropped_clients(target: Target, clients: int = 3) -> str:
    tokens, delay, read = 200, 0.05, 5
    messages = [{"role": "user", "content": f"Drop me. {directive(tokens, delay)}"}]
    await target.clear_streams()
    ready = 0
    all_ready, drop = trio.Event(), trio.Event()
    progress = Progress("clients reading before the drop", clients)

    async def pause() -> None:
        nonlocal ready
        ready += 1
        progress.step()
        if ready == clients:
            all_ready.set()
        await drop.wait()

    results: list[Timed] = []

    async def one() -> None:
        results.append(
            await stream_openai(
                target.client, target.model, messages, pause_after=read, pause=pause
            )
        )

    before = Observation()
    with trio.move_on_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(one)
            with trio.move_on_after(20):
                await all_ready.wait()
            before = await observe(target)
            drop.set()  # each client now closes its connection without reading further
    dropped_at = time.perf_counter()
    progress.finish()
    timeline = await _watch_after_drop(target, dropped_at)
    after = timeline.at_one_second
    streams = await target.streams() if target.has_tally else None
    rows = [
        ["before the drop", before.busy, before.warm, before.cli, before.upstream_open],
        ["1 s after the drop", after.busy, after.warm, after.cli, after.upstream_open],
    ]
    out = table(
        f"{clients} streaming clients dropped mid-reply ({tokens} tokens, {delay} s apart, "
        f"dropped after {read})",
        ["moment", "pool busy", "pool warm", "claude processes", "upstream streams open"],
        rows,
    )
    dropped = sum(1 for r in results if r.error == "dropped")
    out += f"\nclients that read {read} chunks and then closed: {dropped}/{clients}"
    if streams is not None:
        out += (
            f"\nscripted model: {streams.get('cut', '?')} of its streams were closed by the "
            f"caller before the end, {streams.get('completed', '?')} ran to the end; "
            + (
                f"no stream open {ms(timeline.upstream_closed)} ms after the drop"
                if timeline.upstream_closed is not None
                else f"streams still open {timeline.waited:.0f} s after the drop"
            )
        )
    else:
        out += "\nscripted model: n/a (needs the benchmark's own scripted model)"
    if timeline.pool_idle is not None:
        out += f"\npool busy count back to 0 {ms(timeline.pool_idle)} ms after the drop"
    return out


@dataclass
class Timeline:
    at_one_second: Observation
    upstream_closed: float | None = None
    pool_idle: float | None = None
    waited: float = 0.0


async def _watch_after_drop(target: Target, dropped_at: float, limit: float = 12.0) -> Timeline:
    """Poll until streams and pool are idle (or ``limit``); observe once at 1 s after the drop."""
    timeline = Timeline(Observation())
    taken = False
    while (elapsed := time.perf_counter() - dropped_at) < limit:
        if not taken and elapsed >= 1.0:
            timeline.at_one_second = await observe(target)
            taken = True
        if timeline.upstream_closed is None and target.has_tally:
            streams = await target.streams()
            if streams is not None and streams.get("open") == 0:
                timeline.upstream_closed = time.perf_counter() - dropped_at
        if timeline.pool_idle is None and target.has_pool:
            pool = await target.pool()
            if pool is not None and pool.get("busy") == 0:
                timeline.pool_idle = time.perf_counter() - dropped_at
        done_streams = timeline.upstream_closed is not None or not target.has_tally
        done_pool = timeline.pool_idle is not None or not target.has_pool
        if taken and done_streams and done_pool:
            break
        await trio.sleep(0.02)
    timeline.waited = time.perf_counter() - dropped_at
    return timeline


# -- what a one-line question costs upstream ---------------------------------------------------


async def upstream_cost(target: Target, completions: int = 3) -> str:
    if not target.mock_url:
        return "\n## Upstream cost\n\nskipped: needs the scripted model (--mock-url)"
    await target.clear_upstream()
    replies = []
    progress = Progress("one-line questions", completions)
    with trio.move_on_after(30):
        for i in range(completions):
            messages = [
                {"role": "user", "content": f"What is the capital of France? ({i}) {directive(5)}"}
            ]
            replies.append(await stream_openai(target.client, target.model, messages))
            progress.step()
    progress.finish()
    recorded = await target.upstream_requests() or []
    posts = message_posts(recorded)
    sizes = [body_bytes(r) for r in posts]
    done = sum(1 for r in replies if r.ok)
    rows: list[list[object]] = [
        ["completions", done],
        ["upstream requests, all", len(recorded)],
        ["upstream POST /v1/messages", len(posts)],
        ["upstream requests per completion", f"{len(recorded) / done:.2f}" if done else "-"],
        ["request body bytes (median)", int(statistics.median(sizes)) if sizes else "-"],
        ["request body bytes (min-max)", f"{min(sizes)}-{max(sizes)}" if sizes else "-"],
    ]
    if posts:
        body = posts[-1].get("body") or {}
        sent = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        system_entries = [m for m in sent if m.get("role") == "system"]
        rows.append(["tools sent", len(body.get("tools") or [])])
        rows.append(["system prompt bytes (top-level system)", _text_bytes(body.get("system"))])
        entry_bytes = sum(_text_bytes(m.get("content")) for m in system_entries)
        rows.append(["system-role entries in messages", f"{len(system_entries)} ({entry_bytes} B)"])
        rows.append(["user/assistant messages", len(sent) - len(system_entries)])
    return table("Upstream cost of a one-line question", ["figure", "value"], rows)


def _text_bytes(content: Any) -> int:
    """UTF-8 bytes of the text in a system prompt or message content (string or blocks)."""
    if isinstance(content, str):
        return len(content.encode())
    if isinstance(content, list):
        return sum(_text_bytes(b.get("text")) for b in content if isinstance(b, dict))
    return 0


# -- a conversation resent whole each turn -----------------------------------------------------


async def conversation(target: Target, turns: int = 10) -> str:
    tokens = 20
    messages: Messages = [{"role": "system", "content": "You are a helpful assistant."}]
    rows = []
    pool_before = await target.pool()
    progress = Progress("conversation turns", turns)
    with trio.move_on_after(60):
        for turn in range(1, turns + 1):
            messages.append(
                {"role": "user", "content": f"Turn {turn}: tell me more. {directive(tokens)}"}
            )
            await target.clear_upstream()
            reply = await stream_openai(target.client, target.model, messages)
            recorded = await target.upstream_requests()
            upstream: list[object] = ["n/a", "n/a", "n/a"]
            if recorded is not None:
                posts = message_posts(recorded)
                last = posts[-1].get("body") or {} if posts else {}
                upstream = [
                    len(posts),
                    len([m for m in last.get("messages") or [] if m.get("role") != "system"]),
                    body_bytes(posts[-1]) if posts else "-",
                ]
            rows.append(
                [
                    turn,
                    len(messages),
                    ms(reply.first),
                    ms(reply.total),
                    "yes" if reply.ok and reply.text == expected_tokens(tokens) else "NO",
                    *upstream,
                ]
            )
            progress.step()
            messages.append({"role": "assistant", "content": reply.text})
    progress.finish()
    pool_after = await target.pool()
    out = table(
        f"A {turns}-turn conversation, the whole history resent each turn ({tokens}-token replies)",
        [
            "turn",
            "messages sent",
            "first chunk ms",
            "whole ms",
            "exact",
            "upstream calls",
            "upstream messages",
            "upstream bytes",
        ],
        rows,
    )
    if pool_before is not None and pool_after is not None:
        spawned = pool_after.get("spawned", 0) - pool_before.get("spawned", 0)
        out += f"\nCLI processes spawned by clawrap during the {len(rows)} turns: {spawned}"
    return out
