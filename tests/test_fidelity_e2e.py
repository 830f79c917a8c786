"""What reaches the model is the client's conversation and nothing else.

Real clients drive clawrap, the real SDK and CLI talk to the scripted model, and each test
reads the scripted model's record of the upstream request: every text block in ``messages``
must be one the client sent (system text goes to ``system``), with no ``{"role": "system"}``
entry, no environment description and no line the CLI made up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from e2e import (
    SDK_READER_LEFT_OPEN,
    TEST_LIMIT,
    Clawrap,
    in_thread,
    serving_claude,
    start_upstream,
)

from clawrap.core._config import Settings
from clawrap.scripted._model import RecordedRequest, Reply, ToolUse

pytestmark = [pytest.mark.e2e, SDK_READER_LEFT_OPEN]

WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def upstream_texts(request: RecordedRequest) -> list[tuple[str, str]]:
    """(role, text) of every text block in the upstream ``messages``, tool results' included."""
    out: list[tuple[str, str]] = []
    for message in request.body["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for block in blocks:
            if block.get("type") == "text":
                out.append((message["role"], block["text"]))
            elif block.get("type") == "tool_result":
                inner = block.get("content")
                inner = [{"type": "text", "text": inner}] if isinstance(inner, str) else inner
                out.extend((message["role"], b["text"]) for b in inner or [] if "text" in b)
    return out


def assert_only_client_text(request: RecordedRequest, sent: list[tuple[str, str]]) -> None:
    roles = [m["role"] for m in request.body["messages"]]
    assert "system" not in roles, request.body["messages"]
    assert upstream_texts(request) == sent
    assert "# Environment" not in str(request.body["messages"])


async def test_a_history_with_a_system_prompt_reaches_the_model_as_sent(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("FID3", Reply(text="Third answer."))
    messages = [
        {"role": "user", "content": "First question FID3"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Second question"},
        {"role": "assistant", "content": "Second answer."},
        {"role": "user", "content": "Third question"},
    ]

    def call() -> str:
        with clawrap_server.anthropic() as client:
            reply = client.messages.create(
                model="sonnet", max_tokens=256, system="Answer briefly.", messages=messages
            )
        return reply.content[0].text  # type: ignore[union-attr]

    assert await in_thread(call) == "Third answer."
    (upstream,) = clawrap_server.requests("FID3")
    assert_only_client_text(upstream, [(m["role"], m["content"]) for m in messages])
    assert "Answer briefly." in upstream.system_text


async def test_a_tool_round_reaches_the_model_as_sent(clawrap_server: Clawrap) -> None:
    call = ToolUse("get_weather", {"city": "Paris"}, "toolu_fid")
    clawrap_server.model.when("FIDTOOL", Reply(text="Checking.", tool_uses=(call,)))
    ask = {"role": "user", "content": "Weather in Paris? FIDTOOL"}

    def first() -> list[dict[str, Any]]:
        with clawrap_server.anthropic() as client:
            reply = client.messages.create(
                model="sonnet", max_tokens=256, tools=[WEATHER_TOOL], messages=[ask]
            )
        assert reply.stop_reason == "tool_use"
        return [b.model_dump(exclude_none=True) for b in reply.content]

    content = await in_thread(first)
    clawrap_server.model.clear_requests()
    clawrap_server.model.clear_rules()
    clawrap_server.model.when("FIDTOOL", Reply(text="It is sunny."))
    results = {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_fid", "content": "sunny, 24 C"},
            {"type": "text", "text": "Answer in one word."},
        ],
    }

    def second() -> str:
        with clawrap_server.anthropic() as client:
            reply = client.messages.create(
                model="sonnet",
                max_tokens=256,
                tools=[WEATHER_TOOL],
                messages=[ask, {"role": "assistant", "content": content}, results],
            )
        return reply.content[0].text  # type: ignore[union-attr]

    assert await in_thread(second) == "It is sunny."
    (upstream,) = clawrap_server.requests("FIDTOOL")
    assert_only_client_text(
        upstream,
        [
            ("user", ask["content"]),
            ("assistant", "Checking."),
            ("user", "sunny, 24 C"),
            ("user", "Answer in one word."),
        ],
    )
    kinds = [[b["type"] for b in m["content"]] for m in upstream.body["messages"][1:]]
    assert kinds == [["text", "tool_use"], ["tool_result", "text"]]


async def test_messages_streams_pass_upstream_deltas_through_as_they_come(
    clawrap_server: Clawrap,
) -> None:
    deltas = ["w0 ", "w1 ", " w2\n", "\n"]
    clawrap_server.model.when("FIDDELTA", Reply(deltas=deltas))

    def call() -> list[str]:
        with (
            clawrap_server.anthropic() as client,
            client.messages.stream(
                model="sonnet", max_tokens=256, messages=[{"role": "user", "content": "FIDDELTA"}]
            ) as events,
        ):
            return [
                e.delta.text
                for e in events
                if e.type == "content_block_delta" and e.delta.type == "text_delta"
            ]

    assert await in_thread(call) == deltas


async def test_message_start_carries_the_upstreams_input_token_count(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("FIDTOKENS", Reply(text="Counted.", input_tokens=1234))

    def call() -> int:
        with (
            clawrap_server.anthropic() as client,
            client.messages.stream(
                model="sonnet", max_tokens=64, messages=[{"role": "user", "content": "FIDTOKENS"}]
            ) as events,
        ):
            starts = [e for e in events if e.type == "message_start"]
        return starts[0].message.usage.input_tokens

    assert await in_thread(call) == 1234


async def test_with_an_oauth_token_the_model_still_sees_only_the_client_conversation(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # CLAUDE_CODE_OAUTH_TOKEN (what `claude setup-token` prints) is the subscription
    # login a server uses; bare mode gets it as a bearer token with the OAuth beta.
    token = "sk-ant-oat01-scripted-0123456789"
    env = {"ANTHROPIC_API_KEY": "", "CLAUDE_CODE_OAUTH_TOKEN": token}
    settings = Settings(port=0, pool_size=1, upstream_retries=0, data_dir=tmp_path / "data")
    with trio.fail_after(TEST_LIMIT):
        upstream = await start_upstream(nursery)
    async with serving_claude(nursery, tmp_path, upstream, settings, env) as server:
        server.model.when("FIDOAUTH", Reply(text="Signed in."))
        messages = [
            {"role": "user", "content": "Hello FIDOAUTH"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "Who am I?"},
        ]

        def call() -> str:
            with server.anthropic() as client:
                reply = client.messages.create(
                    model="sonnet", max_tokens=64, system="Be brief.", messages=messages
                )
            return reply.content[0].text  # type: ignore[union-attr]

        assert await in_thread(call) == "Signed in."
        (upstream_request,) = server.requests("FIDOAUTH")
    assert_only_client_text(upstream_request, [(m["role"], m["content"]) for m in messages])
    headers = upstream_request.headers
    assert headers["authorization"] == f"Bearer {token}"
    assert "x-api-key" not in headers
    assert "oauth-2025-04-20" in headers["anthropic-beta"].split(",")
