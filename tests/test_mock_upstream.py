"""The scripted model over HTTP, driven by the real ``anthropic`` client and the real CLI."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anthropic
import httpx
import pytest
import trio

from clawrap._mock_upstream import serve_mock_upstream
from clawrap._scripted_model import Reply, ScriptedModel, ToolUse
from tests.procs import claude_children

if TYPE_CHECKING:
    from tests.conftest import RunningScriptedModel

T = TypeVar("T")

USER: Any = [{"role": "user", "content": "hello there"}]


def client(server: RunningScriptedModel) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-scripted", max_retries=0)


async def in_thread(fn: Callable[[], T]) -> T:
    with trio.fail_after(30):
        return await trio.to_thread.run_sync(fn)


def stream_final(server: RunningScriptedModel, **kwargs: Any) -> anthropic.types.Message:
    params: dict[str, Any] = {"model": "claude-scripted", "max_tokens": 100, "messages": USER}
    params.update(kwargs)
    with client(server) as api, api.messages.stream(**params) as stream:
        return stream.get_final_message()


async def test_a_json_request_gets_the_scripted_text(
    scripted_model: RunningScriptedModel,
) -> None:
    scripted_model.model.when("hello", Reply(text="Hi from the script."))

    def run() -> anthropic.types.Message:
        with client(scripted_model) as api:
            return api.messages.create(model="claude-scripted", max_tokens=100, messages=USER)

    message = await in_thread(run)
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hi from the script."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.model == "claude-scripted"


async def test_a_streamed_reply_arrives_as_one_delta_per_token(
    scripted_model: RunningScriptedModel,
) -> None:
    scripted_model.model.when("hello", Reply(tokens=50))

    def run() -> list[str]:
        params: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": USER}
        with client(scripted_model) as api, api.messages.stream(**params) as stream:
            return list(stream.text_stream)

    deltas = await in_thread(run)
    assert len(deltas) == 50
    assert "".join(deltas) == " ".join(f"tok{i}" for i in range(1, 51))


async def test_a_streamed_tool_call_uses_the_full_mcp_name_and_parses(
    scripted_model: RunningScriptedModel,
) -> None:
    scripted_model.model.when(
        "hello", Reply(text="Checking.", tool_uses=[ToolUse("get_weather", {"city": "Paris"})])
    )
    tools: Any = [{"name": "mcp__clawrap__get_weather", "input_schema": {"type": "object"}}]
    message = await in_thread(lambda: stream_final(scripted_model, tools=tools))
    assert message.stop_reason == "tool_use"
    text, tool = message.content
    assert text.type == "text" and text.text == "Checking."
    assert tool.type == "tool_use"
    assert tool.name == "mcp__clawrap__get_weather"
    assert tool.input == {"city": "Paris"}


async def test_replies_for_a_marker_are_used_in_turn_and_the_last_repeats(
    scripted_model: RunningScriptedModel,
) -> None:
    scripted_model.model.when("hello", Reply(text="one"), Reply(text="two"))
    texts = []
    for _ in range(3):
        message = await in_thread(lambda: stream_final(scripted_model))
        texts.append(message.content[0].text)  # type: ignore[union-attr]
    assert texts == ["one", "two", "two"]


async def test_an_inline_directive_scripts_the_reply_through_any_client(
    scripted_model: RunningScriptedModel,
) -> None:
    messages: Any = [
        {"role": "user", "content": 'go [[mock:{"text": "directed", "thinking": "hmm"}]]'}
    ]
    message = await in_thread(lambda: stream_final(scripted_model, messages=messages))
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[1].text == "directed"  # type: ignore[union-attr]


async def test_every_request_is_recorded_with_its_body_and_headers(
    scripted_model: RunningScriptedModel,
) -> None:
    await in_thread(lambda: stream_final(scripted_model, system="SYSTEM-MARKER"))
    with trio.fail_after(5):
        (request,) = await scripted_model.model.wait_for_requests(1)
    assert request.method == "POST"
    assert request.path == "/v1/messages"
    assert request.body["stream"] is True
    assert request.system_text == "SYSTEM-MARKER"
    assert request.headers["content-type"] == "application/json"
    assert scripted_model.model.requests_matching("hello there") == [request]


@pytest.mark.parametrize(
    ("status", "error_type", "exception"),
    [
        (401, "authentication_error", anthropic.AuthenticationError),
        (429, "rate_limit_error", anthropic.RateLimitError),
        (500, "api_error", anthropic.InternalServerError),
        (529, "overloaded_error", anthropic.APIStatusError),
    ],
)
async def test_a_scripted_failure_is_an_http_error_in_anthropics_shape(
    scripted_model: RunningScriptedModel,
    status: int,
    error_type: str,
    exception: type[anthropic.APIStatusError],
) -> None:
    scripted_model.model.when("hello", Reply(status=status, message="scripted failure"))
    with pytest.raises(exception) as caught:
        await in_thread(lambda: stream_final(scripted_model))
    assert caught.value.status_code == status
    assert caught.value.body == {
        "type": "error",
        "error": {"type": error_type, "message": "scripted failure"},
    }


async def test_a_rate_limit_carries_retry_after(scripted_model: RunningScriptedModel) -> None:
    scripted_model.model.when("hello", Reply(status=429, retry_after=7))
    with pytest.raises(anthropic.RateLimitError) as caught:
        await in_thread(lambda: stream_final(scripted_model))
    assert caught.value.response.headers["retry-after"] == "7"


async def test_a_stalled_stream_does_not_block_shutdown() -> None:
    model = ScriptedModel()
    model.when("hello", Reply(tokens=5, stall_after=2))
    got_two = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_mock_upstream, model)

            async def read_until_stall() -> None:
                body = {"model": "m", "max_tokens": 5, "stream": True, "messages": USER}
                async with (
                    httpx.AsyncClient() as http,
                    http.stream(
                        "POST", f"http://127.0.0.1:{port}/v1/messages", json=body
                    ) as response,
                ):
                    seen = ""
                    async for chunk in response.aiter_text():
                        seen += chunk
                        if seen.count("text_delta") == 2:
                            got_two.set()

            nursery.start_soon(read_until_stall)
            await got_two.wait()
            nursery.cancel_scope.cancel()
    assert got_two.is_set()


@pytest.mark.e2e
async def test_the_real_cli_streams_the_scripted_text_and_sends_the_system_prompt(
    scripted_model: RunningScriptedModel, claude_env: dict[str, str]
) -> None:
    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ResultMessage
    from claude_agent_sdk.types import StreamEvent

    scripted_model.model.when("ping", Reply(deltas=["Scripted", " pong", " arrives."]))
    options = ClaudeAgentOptions(
        tools=[],
        setting_sources=[],
        system_prompt="SYSTEM-PROMPT-MARKER-7731",
        include_partial_messages=True,
        env=claude_env,
    )
    sdk = ClaudeSDKClient(options)
    messages = sdk.receive_messages()
    deltas: list[str] = []
    try:
        with trio.fail_after(60):
            await sdk.connect()
            await sdk.query("ping")
            async for message in messages:
                if isinstance(message, ResultMessage):
                    break
                if isinstance(message, StreamEvent):
                    event = message.event
                    if event.get("type") == "content_block_delta":
                        delta = event["delta"]
                        if delta.get("type") == "text_delta":
                            deltas.append(delta["text"])
    finally:
        with trio.CancelScope(shield=True):
            await sdk.disconnect()
            # Disconnecting ends the message stream: draining it finishes the SDK's nested
            # generators here rather than leaving them to the garbage collector.
            with contextlib.suppress(Exception):
                async for _ in messages:
                    pass
    assert deltas == ["Scripted", " pong", " arrives."]
    (request,) = scripted_model.model.requests_matching("ping")
    assert "SYSTEM-PROMPT-MARKER-7731" in request.system_text
    assert claude_children() == []
