"""Tool loops stay warm: a tool-result follow-up continues the CLI turn that asked for the calls.

Real client, real SDK and CLI, the scripted model. The process that streamed the tool calls is
parked with the calls open; the request carrying the results hands them over and the same CLI
turn goes on, with no process spawned. Anything else is served correctly from a transcript.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from e2e import TEST_LIMIT, Clawrap, in_thread
from pool_helpers import idle_processes

from clawrap.scripted._model import RecordedRequest, Reply, ToolUse

pytestmark = pytest.mark.e2e

Messages = list[dict[str, Any]]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _round(server: Clawrap, messages: Messages, results: dict[str, str]) -> Any:
    """One request; appends the reply and the results of its calls to ``messages``."""
    with server.openai() as client:
        reply = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
    message = reply.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    for call in [c for c in message.tool_calls or [] if c.id in results]:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": results[call.id]})
    return reply


async def _parked_open(server: Clawrap) -> None:
    pool = server.backend.pool
    with trio.fail_after(TEST_LIMIT):
        # (A new spawn key is also warmed in the background while its first request's
        # own process starts: wait for that start too, so later counts are the loop's.)
        await pool.wait_for(lambda: server.pool_status()["busy"] == 0)
        await pool.wait_for(lambda: server.pool_status()["starting"] == 0)
    assert any(p.open_calls for p in pool._parked.all())


def _blocks(request: RecordedRequest) -> list[dict[str, Any]]:
    return [
        b
        for m in request.body["messages"]
        if isinstance(m.get("content"), list)
        for b in m["content"]
        if isinstance(b, dict)
    ]


def _texts(request: RecordedRequest) -> list[str]:
    """Every text the model was shown in messages (tool results included), system entries aside."""
    out = []
    for m in request.body["messages"]:
        if m.get("role") == "system":
            continue
        content = m["content"]
        for b in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            if b.get("type") == "text":
                out.append(b["text"])
            elif b.get("type") == "tool_result":
                inner = b["content"]
                out += [inner] if isinstance(inner, str) else [x["text"] for x in inner]
    return out


async def test_rounds_after_the_first_spawn_nothing_and_resume_the_same_turn(
    clawrap_server: Clawrap,
) -> None:
    rounds = [ToolUse("get_weather", {"city": c}, f"toolu_{c}") for c in ("Paris", "Rome", "Oslo")]
    clawrap_server.model.when(
        "LOOP", *(Reply(tool_uses=[r]) for r in rounds), Reply(text="Oslo is coldest.")
    )
    results = {"toolu_Paris": "18C", "toolu_Rome": "24C", "toolu_Oslo": "-3C"}
    messages: Messages = [{"role": "user", "content": "LOOP: which city is coldest?"}]
    with trio.fail_after(TEST_LIMIT):
        await in_thread(lambda: _round(clawrap_server, messages, results))
        await _parked_open(clawrap_server)
        spawned = clawrap_server.pool_status()["spawned"]
        for _ in range(2):
            await in_thread(lambda: _round(clawrap_server, messages, results))
        # (Once the loop ends the process is parked as after any answer, and a warm
        # replacement may start in the background: counted before the last round.)
        assert clawrap_server.pool_status()["spawned"] == spawned
        reply = await in_thread(lambda: _round(clawrap_server, messages, results))
    assert reply.choices[0].message.content == "Oslo is coldest."
    assert clawrap_server.pool_status()["continued"] == 3
    upstream = clawrap_server.requests("LOOP")
    assert len(upstream) == 4
    last = upstream[-1]
    assert [b["id"] for b in _blocks(last) if b["type"] == "tool_use"] == [r.id for r in rounds]
    # Exactly the client's turns: its question and its three results, nothing added.
    assert _texts(last) == ["LOOP: which city is coldest?", "18C", "24C", "-3C"]


async def test_two_parallel_calls_answered_in_one_follow_up_resume_the_same_turn(
    clawrap_server: Clawrap,
) -> None:
    calls = [ToolUse("get_weather", {"city": c}, f"toolu_{c}") for c in ("Paris", "Rome")]
    clawrap_server.model.when("PAIR", Reply(tool_uses=calls), Reply(text="Rome is warmer."))
    results = {"toolu_Paris": "18C", "toolu_Rome": "24C"}
    messages: Messages = [{"role": "user", "content": "PAIR: which is warmer?"}]
    with trio.fail_after(TEST_LIMIT):
        first = await in_thread(lambda: _round(clawrap_server, messages, results))
        assert len(first.choices[0].message.tool_calls or []) == 2
        await _parked_open(clawrap_server)
        reply = await in_thread(lambda: _round(clawrap_server, messages, results))
    assert reply.choices[0].message.content == "Rome is warmer."
    assert clawrap_server.pool_status()["continued"] == 1
    last = clawrap_server.requests("PAIR")[-1]
    answered = {b["tool_use_id"]: b for b in _blocks(last) if b["type"] == "tool_result"}
    assert set(answered) == set(results)
    assert _texts(last) == ["PAIR: which is warmer?", "18C", "24C"]


@pytest.mark.clawrap(tool_wait=0.5)
async def test_a_client_that_never_sends_the_results_frees_the_process(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("GONE", Reply(tool_uses=[ToolUse("get_weather", {"city": "Oslo"})]))
    messages: Messages = [{"role": "user", "content": "GONE: weather?"}]
    with trio.fail_after(TEST_LIMIT):
        await in_thread(lambda: _round(clawrap_server, messages, {}))
        pool = clawrap_server.backend.pool
        await pool.wait_for(lambda: clawrap_server.pool_status()["abandoned"] == 1)
        await pool.wait_for(lambda: clawrap_server.pool_status()["busy"] == 0)
    assert clawrap_server.pool_status()["parked"] == 0
    assert not any(p.open_calls for p in idle_processes(pool))
    # The freed call never reached the model: one upstream request only.
    assert len(clawrap_server.requests("GONE")) == 1


async def test_a_follow_up_whose_history_differs_is_served_cold_and_correctly(
    clawrap_server: Clawrap,
) -> None:
    call = ToolUse("get_weather", {"city": "Paris"}, "toolu_Paris")
    clawrap_server.model.when("EDIT", Reply(tool_uses=[call]), Reply(text="Mild."))
    messages: Messages = [{"role": "user", "content": "EDIT: weather in Paris?"}]
    with trio.fail_after(TEST_LIMIT):
        await in_thread(lambda: _round(clawrap_server, messages, {"toolu_Paris": "18C"}))
        await _parked_open(clawrap_server)
        messages[0]["content"] = "EDIT: weather in Paris, please?"
        reply = await in_thread(lambda: _round(clawrap_server, messages, {}))
    assert reply.choices[0].message.content == "Mild."
    assert clawrap_server.pool_status()["continued"] == 0
    last = clawrap_server.requests("EDIT")[-1]
    # (A transcript-resumed tool turn may still get the CLI's own resumption line after it.)
    assert _texts(last)[:2] == ["EDIT: weather in Paris, please?", "18C"]
    assert json.dumps(last.body).count("toolu_Paris") == 2
