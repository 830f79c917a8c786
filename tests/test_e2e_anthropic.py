"""Anthropic Messages end to end: anthropic-python -> clawrap -> SDK -> CLI -> scripted model.

Each test scripts the model with a marker of its own and drives the real ``anthropic`` client
with strict response validation. The ``clawrap_server`` fixture (tests/e2e.py) shuts the
server down afterwards and asserts that no CLI process is left.
"""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
import trio
from anthropic.types import Message
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap, in_thread, wait_until

from clawrap.scripted._model import Reply, ToolUse, render_message

pytestmark = [pytest.mark.e2e, SDK_READER_LEFT_OPEN]

# After a client drops, how long until no CLI generates for it (measured ~0.2 s; the reply
# would run for a minute). Spare time for a shared machine, well short of the reply's length.
DROP_LIMIT = 1.5

WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
THINKING = {"type": "enabled", "budget_tokens": 1024}


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def create(server: Clawrap, marker: str, **kwargs: Any) -> Message:
    kwargs.setdefault("max_tokens", 4096)
    with server.anthropic() as client:
        return client.messages.create(model="sonnet", messages=ask(marker), **kwargs)


def stream(server: Clawrap, marker: str, **kwargs: Any) -> Message:
    """``get_final_message()`` of the SDK's ``messages.stream()``, after reading every event."""
    kwargs.setdefault("max_tokens", 4096)
    with (
        server.anthropic() as client,
        client.messages.stream(model="sonnet", messages=ask(marker), **kwargs) as events,
    ):
        for _ in events:
            pass
        return events.get_final_message()


def produced(reply: Reply) -> list[dict[str, Any]]:
    """The content blocks the scripted model produced for ``reply``."""
    return list(render_message(reply, {})["content"])


def content_of(message: Message) -> list[dict[str, Any]]:
    return [block.model_dump(exclude_none=True) for block in message.content]


# -- replies


async def test_create_returns_the_models_text(clawrap_server: Clawrap) -> None:
    reply = Reply(text="Bonjour from the model.", input_tokens=80, output_tokens=5)
    clawrap_server.model.when("CREATE", reply)
    with trio.fail_after(TEST_LIMIT):
        message = await in_thread(lambda: create(clawrap_server, "CREATE"))
    assert content_of(message) == produced(reply)
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (80, 5)
    assert message.model == "sonnet"


async def test_stream_final_message_equals_the_models_text(clawrap_server: Clawrap) -> None:
    reply = Reply(tokens=30, input_tokens=90, output_tokens=30)
    clawrap_server.model.when("STREAMED", reply)
    with trio.fail_after(TEST_LIMIT):
        message = await in_thread(lambda: stream(clawrap_server, "STREAMED"))
    assert content_of(message) == produced(reply)
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (90, 30)


async def test_create_returns_a_tool_use_block_with_the_exact_input(
    clawrap_server: Clawrap,
) -> None:
    reply = Reply(
        text="Let me check.",
        tool_uses=[ToolUse("get_weather", {"city": "Paris", "days": 3}, "toolu_create")],
    )
    clawrap_server.model.when("TOOLCREATE", reply)
    with trio.fail_after(TEST_LIMIT):
        message = await in_thread(
            lambda: create(clawrap_server, "TOOLCREATE", tools=[WEATHER_TOOL])
        )
    assert content_of(message) == produced(reply)
    assert message.stop_reason == "tool_use"


async def test_stream_final_message_has_parallel_tool_use_blocks_with_the_exact_inputs(
    clawrap_server: Clawrap,
) -> None:
    reply = Reply(
        tool_uses=[
            ToolUse("get_weather", {"city": "Paris", "days": 3}, "toolu_s1"),
            ToolUse("get_weather", {"city": "Rome"}, "toolu_s2"),
        ]
    )
    clawrap_server.model.when("TOOLSTREAM", reply)
    with trio.fail_after(TEST_LIMIT):
        message = await in_thread(
            lambda: stream(clawrap_server, "TOOLSTREAM", tools=[WEATHER_TOOL])
        )
    # The model's turn had no text: an empty text block is not invented.
    assert content_of(message) == [b for b in produced(reply) if b["type"] == "tool_use"]
    assert message.stop_reason == "tool_use"


async def test_create_returns_thinking_with_its_signature(clawrap_server: Clawrap) -> None:
    reply = Reply(thinking="The user wants a number.", signature="c2lnbmVkLWNyZWF0ZQ==", text="7")
    clawrap_server.model.when("THINKCREATE", reply)
    with trio.fail_after(TEST_LIMIT):
        message = await in_thread(lambda: create(clawrap_server, "THINKCREATE", thinking=THINKING))
    assert content_of(message) == produced(reply)
    (upstream,) = clawrap_server.requests("THINKCREATE")
    assert upstream.body["thinking"]["type"] in ("enabled", "adaptive")


async def test_stream_final_message_has_thinking_with_its_signature(
    clawrap_server: Clawrap,
) -> None:
    reply = Reply(thinking="Two and two.", signature="c2lnbmVkLXN0cmVhbQ==", text="Four.")
    clawrap_server.model.when("THINKSTREAM", reply)
    with trio.fail_after(TEST_LIMIT):
        message = await in_thread(lambda: stream(clawrap_server, "THINKSTREAM", thinking=THINKING))
    assert content_of(message) == produced(reply)


async def test_a_stop_sequence_ends_the_reply_with_stop_reason_stop_sequence(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("SEQUENCE", Reply(text="alpha beta ### gamma delta"))
    with trio.fail_after(TEST_LIMIT):
        message = await in_thread(
            lambda: stream(clawrap_server, "SEQUENCE", stop_sequences=["###"])
        )
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "###"
    (block,) = message.content
    assert block.type == "text" and block.text.rstrip() == "alpha beta"


# -- errors


async def test_an_upstream_401_is_an_authentication_error(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("DENIED", Reply(status=401))
    with trio.fail_after(TEST_LIMIT), pytest.raises(anthropic.AuthenticationError) as caught:
        await in_thread(lambda: create(clawrap_server, "DENIED"))
    assert caught.value.status_code == 401
    assert error_type(caught.value) == "authentication_error"


async def test_an_overloaded_upstream_is_an_overloaded_error(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("SWAMPED", Reply(status=529))
    with trio.fail_after(TEST_LIMIT), pytest.raises(anthropic.APIStatusError) as caught:
        await in_thread(lambda: create(clawrap_server, "SWAMPED"))
    assert caught.value.status_code in (503, 529)
    assert error_type(caught.value) == "overloaded_error"


async def test_an_unknown_model_is_a_not_found_error(clawrap_server: Clawrap) -> None:
    def call() -> Message:
        with clawrap_server.anthropic() as client:
            return client.messages.create(model="gpt-9", max_tokens=10, messages=ask("hi"))

    with trio.fail_after(TEST_LIMIT), pytest.raises(anthropic.NotFoundError) as caught:
        await in_thread(call)
    assert error_type(caught.value) == "not_found_error"
    assert clawrap_server.model.requests == []


async def test_an_upstream_failure_mid_stream_raises_from_the_error_event(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("FALTER", Reply(tokens=20, error_after=3, delay=0.02))
    texts: list[str] = []

    def read() -> None:
        with (
            clawrap_server.anthropic() as client,
            client.messages.stream(model="sonnet", max_tokens=4096, messages=ask("FALTER")) as s,
        ):
            texts.extend(s.text_stream)

    with trio.fail_after(TEST_LIMIT), pytest.raises(anthropic.APIStatusError) as caught:
        await in_thread(read)
    assert caught.value.status_code == 200  # raised from the stream's error event
    assert error_type(caught.value) in ("overloaded_error", "api_error")
    assert "".join(texts) == "tok1 tok2 tok3"


def error_type(error: anthropic.APIStatusError) -> str:
    body = error.body
    assert isinstance(body, dict) and body.get("type") == "error"
    return str(body["error"]["type"])


# -- a client leaving, and auth


async def test_a_streaming_client_that_drops_leaves_no_cli_generating(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("TRICKLE", Reply(tokens=1200, delay=0.05))

    def read_a_little_then_leave() -> int:
        deltas = 0
        with (
            clawrap_server.anthropic() as client,
            client.messages.stream(model="sonnet", max_tokens=4096, messages=ask("TRICKLE")) as s,
        ):
            for event in s:
                deltas += event.type == "content_block_delta"
                if deltas == 3:
                    break
        return deltas

    with trio.fail_after(TEST_LIMIT):
        assert await in_thread(read_a_little_then_leave) == 3
    with trio.fail_after(DROP_LIMIT):
        await wait_until(lambda: clawrap_server.upstream.open_responses == 0)
        await wait_until(lambda: clawrap_server.pool_status()["busy"] == 0)
        await wait_until(lambda: clawrap_server.stray_cli_pids() == [])
    assert len(clawrap_server.requests("TRICKLE")) == 1


@pytest.mark.clawrap(api_key="sk-clawrap-test")
async def test_the_servers_api_key_is_accepted_in_x_api_key(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("KEYED", Reply(text="Welcome."))

    def call(key: str) -> Message:
        with clawrap_server.anthropic(api_key=key) as client:
            return client.messages.create(model="sonnet", max_tokens=100, messages=ask("KEYED"))

    with trio.fail_after(TEST_LIMIT):
        with pytest.raises(anthropic.AuthenticationError):
            await in_thread(lambda: call("sk-wrong"))
        assert clawrap_server.model.requests == []
        message = await in_thread(lambda: call("sk-clawrap-test"))
    assert content_of(message) == [{"type": "text", "text": "Welcome."}]
