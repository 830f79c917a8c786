"""Each turn reports its own cost, though the CLI's figure is its process's running total.

Real SDK and CLI against the scripted model: a pooled process reset by rewinding between
requests, and a parked one continuing a conversation, both serve several requests.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio

from clawrap.claude._backend import ClaudeBackend
from clawrap.core._config import Settings
from clawrap.core._events import Event, Usage
from clawrap.core._request import CompletionRequest, TextPart, Turn
from tests.procs import claude_children

if TYPE_CHECKING:
    from tests.conftest import RunningScriptedModel

pytestmark = pytest.mark.e2e

LIMIT = 60
PRICED = '[[mock:{"text": "hi", "input_tokens": 1000, "output_tokens": 100}]]'


async def _usage(backend: ClaudeBackend, turns: tuple[Turn, ...]) -> Usage:
    send, receive = trio.open_memory_channel[Event](math.inf)
    request = CompletionRequest(model="sonnet", requested_model="sonnet", turns=turns)
    with trio.fail_after(LIMIT):
        await backend.run(request, send, trio.Event())
    send.close()
    usages = [e async for e in receive if isinstance(e, Usage)]
    assert len(usages) == 1
    return usages[0]


@pytest.mark.parametrize("continued", [False, True])
async def test_every_turn_reports_its_own_cost(
    claude_env: dict[str, str],
    scripted_model: RunningScriptedModel,
    tmp_path: Path,
    continued: bool,
) -> None:
    settings = Settings(
        pool_size=1, pool_max=1, pool_parked=1 if continued else 0, upstream_retries=0
    )
    backend = ClaudeBackend(settings, cli_env=claude_env)
    costs: list[float | None] = []
    try:
        async with trio.open_nursery() as nursery:
            await backend.start(nursery)
            turns: tuple[Turn, ...] = ()
            for i in range(3):
                ask = Turn("user", (TextPart(f"question {i} {PRICED}"),))
                turns = (*turns, ask) if continued else (ask,)
                costs.append((await _usage(backend, turns)).cost_usd)
                turns = (*turns, Turn("assistant", (TextPart("hi"),)))
            status = backend.status()
            await backend.aclose()
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await backend.aclose()
    # One process served all three (pool_max 1): reset by rewinding, or continued.
    assert status["spawned"] == 1
    assert status["continued" if continued else "recycled"] == 2
    assert costs[0] is not None and costs[0] > 0
    assert costs == pytest.approx([costs[0]] * 3)
    assert claude_children() == []
