"""System prompts far over Linux's 128 KiB limit on one command-line argument reach the model.

Real SDK and CLI against the scripted model: each surface's system field, and a
``json_schema`` folded into the system prompt, at 200 KiB.
"""

from __future__ import annotations

import pytest
import trio
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap, in_thread

from clawrap.scripted._model import Reply

pytestmark = [pytest.mark.e2e, SDK_READER_LEFT_OPEN]

BIG = 200 * 1024


def big_text(marker: str) -> str:
    return marker + " " + ("lorem ipsum " * (BIG // 12))


def system_of(server: Clawrap, marker: str) -> str:
    [request] = [r for r in server.model.requests if marker in r.system_text]
    return request.system_text


async def test_an_openai_system_prompt_of_200_kib_reaches_the_model(
    clawrap_server: Clawrap,
) -> None:
    client = clawrap_server.openai()
    system = big_text("OPENAI-BIG-SYSTEM")
    with trio.fail_after(TEST_LIMIT):
        reply = await in_thread(
            lambda: client.chat.completions.create(
                model="sonnet",
                messages=[{"role": "system", "content": system}, {"role": "user", "content": "hi"}],
            )
        )
    assert reply.choices[0].finish_reason == "stop"
    assert system in system_of(clawrap_server, "OPENAI-BIG-SYSTEM")


async def test_an_anthropic_system_prompt_of_200_kib_reaches_the_model(
    clawrap_server: Clawrap,
) -> None:
    client = clawrap_server.anthropic()
    system = big_text("ANTHROPIC-BIG-SYSTEM")
    with trio.fail_after(TEST_LIMIT):
        reply = await in_thread(
            lambda: client.messages.create(
                model="sonnet",
                max_tokens=100,
                system=[{"type": "text", "text": system}],
                messages=[{"role": "user", "content": "hi"}],
            )
        )
    assert reply.stop_reason == "end_turn"
    assert system in system_of(clawrap_server, "ANTHROPIC-BIG-SYSTEM")


async def test_a_json_schema_of_200_kib_reaches_the_model(clawrap_server: Clawrap) -> None:
    client = clawrap_server.openai()
    properties = {f"field_{i}": {"type": "string", "description": "x" * 90} for i in range(1800)}
    schema = {"type": "object", "description": "SCHEMA-BIG", "properties": properties}
    clawrap_server.model.when("fill it", Reply(text='{"field_0": "a"}'))
    with trio.fail_after(TEST_LIMIT):
        reply = await in_thread(
            lambda: client.chat.completions.create(
                model="sonnet",
                messages=[{"role": "user", "content": "fill it"}],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "big", "schema": schema},
                },
            )
        )
    assert reply.choices[0].message.content == '{"field_0": "a"}'
    assert "field_1799" in system_of(clawrap_server, "SCHEMA-BIG")
