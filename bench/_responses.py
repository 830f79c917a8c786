"""Responses API scenarios: first token next to chat completions, a previous_response_id chain,
and how soon a dropped stream or a closed WebSocket stops the upstream generation.

The first-token comparison alternates the two APIs request by request, so neither gets the
quieter moments of the machine. The chain continues each response with only the new input and
counts the CLI processes clawrap spawned after its first turn (the pool's own counter).
"""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import trio
from trio_websocket import open_websocket_url

from ._behaviour import _watch_after_drop
from ._client import Messages, Timed, directive, expected_tokens, stream_openai
from ._stats import Progress, ms, percentile, table
from ._target import Target

REPS = 20
TOKENS = 50


async def stream_response(
    client: openai.AsyncOpenAI,
    model: str,
    input_: Any,
    *,
    previous: str | None = None,
    pause_after: int | None = None,
) -> tuple[Timed, str | None]:
    """Stream one Responses API reply; returns the timing and the response id."""
    out = Timed()
    response_id: str | None = None
    t0 = time.perf_counter()
    try:
        extra: dict[str, Any] = {"previous_response_id": previous} if previous else {}
        stream = await client.responses.create(model=model, input=input_, stream=True, **extra)
        async with stream:
            async for event in stream:
                out.chunks += 1
                if event.type == "response.output_text.delta":
                    if out.first is None:
                        out.first = time.perf_counter() - t0
                    out.text_chunks += 1
                    out.text += event.delta
                    if pause_after is not None and out.text_chunks >= pause_after:
                        out.error = "dropped"
                        return out, response_id
                elif event.type == "response.completed":
                    response_id = event.response.id
        out.total = time.perf_counter() - t0
    except openai.APIError as exc:
        out.error = f"{type(exc).__name__}: {str(exc)[:120]}"
    return out, response_id


async def first_token(target: Target) -> str:
    counter = iter(range(10_000))
    chat: list[Timed] = []
    responses: list[Timed] = []
    progress = Progress("first token, chat completions and responses in turn", REPS)
    with trio.move_on_after(90):
        for _ in range(REPS):
            question = f"First token check {next(counter)}. {directive(TOKENS)}"
            messages: Messages = [{"role": "user", "content": question}]
            chat.append(await stream_openai(target.client, target.model, messages))
            question = f"First token check {next(counter)}. {directive(TOKENS)}"
            timed, _ = await stream_response(target.client, target.model, question)
            responses.append(timed)
            progress.step()
    progress.finish()
    want = expected_tokens(TOKENS)
    rows = []
    for label, results in (("chat completions", chat), ("responses", responses)):
        firsts = [r.first for r in results if r.ok and r.first is not None]
        totals = [r.total for r in results if r.ok and r.total is not None]
        rows.append(
            [
                label,
                len(results),
                f"{sum(r.ok and r.text == want for r in results)}/{len(results)}",
                ms(percentile(firsts, 50)),
                ms(percentile(firsts, 90)),
                ms(percentile(totals, 50)),
            ]
        )
    out = table(
        f"First token: Responses API next to chat completions ({TOKENS} tokens, alternating)",
        ["API", "reps", "exact", "first p50 ms", "first p90 ms", "whole p50 ms"],
        rows,
    )
    a = percentile([r.first for r in chat if r.ok and r.first is not None], 50)
    b = percentile([r.first for r in responses if r.ok and r.first is not None], 50)
    if a is not None and b is not None:
        out += f"\nmedian first token, responses minus chat completions: {(b - a) * 1000:+.1f} ms"
    return out


async def chain(target: Target, turns: int = 10) -> str:
    tokens = 20
    rows = []
    previous: str | None = None
    spawned_after_first: int | None = None
    continued_before = (await target.pool() or {}).get("continued")
    progress = Progress("previous_response_id chain", turns)
    with trio.move_on_after(90):
        for turn in range(1, turns + 1):
            question = f"Chain turn {turn}: more. {directive(tokens)}"
            timed, previous = await stream_response(
                target.client, target.model, question, previous=previous
            )
            pool = await target.pool() or {}
            if turn == 1:
                spawned_after_first = pool.get("spawned")
            exact = timed.ok and timed.text == expected_tokens(tokens)
            rows.append([turn, ms(timed.first), ms(timed.total), "yes" if exact else "NO"])
            progress.step()
            if previous is None:
                break
    progress.finish()
    out = table(
        f"A {turns}-turn previous_response_id chain, only the new input sent ({tokens} tokens)",
        ["turn", "first chunk ms", "whole ms", "exact"],
        rows,
    )
    after = await target.pool()
    if after is not None and spawned_after_first is not None:
        spawned = after.get("spawned", 0) - spawned_after_first
        continued = after.get("continued", 0) - (continued_before or 0)
        out += (
            f"\nCLI processes spawned after turn 1: {spawned}; turns continued on a live "
            f"process: {continued} of {len(rows) - 1}"
        )
    return out


async def drops(target: Target) -> str:
    """How soon the upstream stream ends after a dropped HTTP stream and a closed socket."""
    if not target.has_tally:
        return "\n## Responses API drops\n\nn/a (needs the benchmark's own scripted model)"
    rows = []
    question = f"Drop me. {directive(400, 0.05)}"
    # HTTP: read five deltas, then close the connection.
    await target.clear_streams()
    await stream_response(target.client, target.model, question, pause_after=5)
    timeline = await _watch_after_drop(target, time.perf_counter())
    rows.append(["HTTP stream dropped", ms(timeline.upstream_closed), ms(timeline.pool_idle)])
    # WebSocket: read five deltas, then close the socket.
    await target.clear_streams()
    url = target.base_url.replace("http://", "ws://") + "/responses"
    headers = [(b"Authorization", f"Bearer {target.api_key}".encode())]
    with trio.move_on_after(30):
        async with open_websocket_url(url, extra_headers=headers) as ws:
            create = {"type": "response.create", "model": target.model, "input": question}
            await ws.send_message(json.dumps(create))
            seen = 0
            while seen < 5:
                event = json.loads(await ws.get_message())
                seen += event.get("type") == "response.output_text.delta"
    timeline = await _watch_after_drop(target, time.perf_counter())
    rows.append(["WebSocket closed", ms(timeline.upstream_closed), ms(timeline.pool_idle)])
    return table(
        "Responses API: a client leaving mid-reply (400 tokens 0.05 s apart, left after 5)",
        ["client", "upstream stream closed after ms", "pool idle after ms"],
        rows,
    )


async def responses_scenarios(target: Target) -> str:
    return "\n".join([await first_token(target), await chain(target), await drops(target)])


__all__ = ["chain", "drops", "first_token", "responses_scenarios", "stream_response"]
