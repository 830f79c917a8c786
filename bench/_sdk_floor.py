"""The bare SDK floor: what claude-agent-sdk alone costs against the same scripted model.

Two ways to get a reply with no server in between, run under trio like clawrap itself:
a cold ``query()`` (a new CLI process per request) and a warm ``ClaudeSDKClient`` (connected
beforehand, ``/clear`` between turns, untimed). Both with ``tools=[]``, ``setting_sources=[]``,
``include_partial_messages=True`` and the benchmark's offline environment. Whatever clawrap adds
on top of the warm figure is its own cost.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, query
from claude_agent_sdk.types import StreamEvent

from ._client import Timed

RUN_LIMIT = 30.0  # seconds for any one run


def sdk_options(env: dict[str, str], cwd: str) -> ClaudeAgentOptions:
    return ClaudeAgentOptions(
        tools=[],
        setting_sources=[],
        include_partial_messages=True,
        system_prompt="You are a helpful assistant.",
        env=env,
        cwd=cwd,
    )


def _text_delta(message: Any) -> str | None:
    if not isinstance(message, StreamEvent):
        return None
    event = message.event
    delta = event.get("delta") if event.get("type") == "content_block_delta" else None
    if isinstance(delta, dict) and delta.get("type") == "text_delta":
        text = delta.get("text")
        return text if isinstance(text, str) else ""
    return None


def _take(message: Any, out: Timed, t0: float) -> None:
    piece = _text_delta(message)
    if piece is not None:
        if out.first is None:
            out.first = time.perf_counter() - t0
        out.text_chunks += 1
        out.text += piece


async def cold_query(prompt: str, options: ClaudeAgentOptions) -> Timed:
    """One ``query()``: a CLI process started, used once, and ended."""
    out = Timed()
    t0 = time.perf_counter()
    try:
        with trio.fail_after(RUN_LIMIT):
            async for message in query(prompt=prompt, options=options):
                _take(message, out, t0)
        out.total = time.perf_counter() - t0
    except Exception as exc:  # a failed run is a figure to report
        out.error = f"{type(exc).__name__}: {str(exc)[:120]}"
    return out


async def warm_turns(
    prompts: list[str],
    options: ClaudeAgentOptions,
    progress: Any,
    between: Callable[[], Awaitable[None]] | None = None,
) -> list[Timed]:
    """One connected client; for each prompt: ``/clear`` (untimed), then a timed turn, then
    ``between()`` (so other measurements can be paired with each turn, moment for moment)."""
    results: list[Timed] = []
    client = ClaudeSDKClient(options)
    try:
        with trio.fail_after(RUN_LIMIT):
            await client.connect()
        for prompt in prompts:
            with trio.fail_after(RUN_LIMIT):
                await client.query("/clear")
                async for _ in client.receive_response():
                    pass
                out = Timed()
                t0 = time.perf_counter()
                await client.query(prompt)
                async for message in client.receive_response():
                    _take(message, out, t0)
                out.total = time.perf_counter() - t0
            results.append(out)
            if between is not None:
                await between()
            progress.step()
    except Exception as exc:
        results.append(Timed(error=f"{type(exc).__name__}: {str(exc)[:120]}"))
    finally:
        # The SDK shields its own bounded teardown; never abandon it half-way.
        with trio.CancelScope(shield=True):
            await client.disconnect()
    return results
