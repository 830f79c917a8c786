"""The scripted model over HTTP, driven by the real ``anthropic`` client and the real CLI."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anthropic
import httpx
import pytest
import trio

from clawrap.scripted import _mock_upstream
from clawrap.scripted._mock_upstream import mock_upstream_main, serve_mock_upstream
from clawrap.scripted._model import Reply, ScriptedModel, ToolUse
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
    scripted_model.model.when("hello", Reply(text="ok"))
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


async def test_a_dropped_stream_cuts_the_connection_mid_body(
    scripted_model: RunningScriptedModel,
) -> None:
    scripted_model.model.when("hello", Reply(tokens=5, drop_after=2))
    body = {"model": "m", "max_tokens": 5, "stream": True, "messages": USER}
    seen = ""
    with trio.fail_after(10), pytest.raises(httpx.RemoteProtocolError):
        async with (
            httpx.AsyncClient() as http,
            http.stream("POST", f"{scripted_model.url}/v1/messages", json=body) as response,
        ):
            async for chunk in response.aiter_text():
                seen += chunk
    assert seen.count("text_delta") == 2
    assert "message_stop" not in seen


async def test_an_error_mid_stream_arrives_as_an_sse_error_event(
    scripted_model: RunningScriptedModel,
) -> None:
    scripted_model.model.when("hello", Reply(tokens=5, error_after=2, message="busy"))
    with pytest.raises(anthropic.APIStatusError) as caught:
        await in_thread(lambda: stream_final(scripted_model))
    assert "overloaded_error" in str(caught.value)


async def post(server: RunningScriptedModel, path: str, content: bytes) -> httpx.Response:
    with trio.fail_after(10):
        async with httpx.AsyncClient() as http:
            return await http.post(f"{server.url}{path}", content=content)


async def test_an_unknown_route_is_a_404_in_anthropics_shape(
    scripted_model: RunningScriptedModel,
) -> None:
    response = await post(scripted_model, "/v1/nothing", b"{}")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(
    "content", [b"{not json", b'"a string"', b'{"messages": 3}', b"[1, 2]", b"[" * 100_000]
)
async def test_a_malformed_body_is_a_400_in_anthropics_shape(
    scripted_model: RunningScriptedModel, content: bytes
) -> None:
    response = await post(scripted_model, "/v1/messages", content)
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_a_malformed_directive_is_a_400_naming_it(
    scripted_model: RunningScriptedModel,
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "[[mock:{oops}]]"}]}
    response = await post(scripted_model, "/v1/messages", json.dumps(body).encode())
    assert response.status_code == 400
    assert "[[mock:" in response.json()["error"]["message"]


async def test_a_huge_body_is_a_413(
    scripted_model: RunningScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_mock_upstream, "MAX_BODY", 1000)
    response = await post(scripted_model, "/v1/messages", b" " * 5000)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


async def test_count_tokens_answers_a_rough_count(scripted_model: RunningScriptedModel) -> None:
    def run() -> int:
        with client(scripted_model) as api:
            return api.messages.count_tokens(model="m", messages=USER).input_tokens

    assert await in_thread(run) > 0


async def test_rules_posted_over_http_script_later_replies(
    scripted_model: RunningScriptedModel,
) -> None:
    rule = {"marker": "hello", "replies": [{"text": "over the wire"}]}
    response = await post(scripted_model, "/_mock/rules", json.dumps(rule).encode())
    assert response.status_code == 200
    message = await in_thread(lambda: stream_final(scripted_model))
    assert message.content[0].text == "over the wire"  # type: ignore[union-attr]


async def test_a_malformed_posted_rule_is_a_400(scripted_model: RunningScriptedModel) -> None:
    rule = {"marker": "hello", "replies": [{"tokens": "many"}]}
    response = await post(scripted_model, "/_mock/rules", json.dumps(rule).encode())
    assert response.status_code == 400
    assert scripted_model.model.pick({"messages": USER}).text != "many"


async def test_recorded_requests_are_listed_and_cleared_over_http(
    scripted_model: RunningScriptedModel,
) -> None:
    scripted_model.model.when("hello", Reply(text="ok"))
    await in_thread(lambda: stream_final(scripted_model))
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=scripted_model.url) as http:
            listed = (await http.get("/_mock/requests")).json()
            cleared = (await http.delete("/_mock/requests")).json()
            after = (await http.get("/_mock/requests")).json()
    assert [r["body"]["messages"] for r in listed] == [USER]
    assert listed[0]["path"] == "/v1/messages"
    assert cleared == {"cleared": 1}
    assert after == []
    assert scripted_model.model.requests == []


async def test_a_stalled_json_reply_does_not_block_shutdown() -> None:
    model = ScriptedModel()
    model.when("hello", Reply(text="never", stall_after=0))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_mock_upstream, model)

            async def ask() -> None:
                async with httpx.AsyncClient() as http:
                    body = {"model": "m", "max_tokens": 5, "messages": USER}
                    await http.post(f"http://127.0.0.1:{port}/v1/messages", json=body)

            nursery.start_soon(ask)
            await model.wait_for_requests(1)
            nursery.cancel_scope.cancel()


STANDALONE = (
    "import sys; from clawrap.scripted._mock_upstream import mock_upstream_main as main; "
    "sys.exit(main(sys.argv[1:]))"
)
REPO = Path(__file__).resolve().parent.parent


async def test_the_standalone_server_answers_and_stops_on_sigterm() -> None:
    command = [sys.executable, "-c", STANDALONE, "--port", "0"]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                partial(trio.run_process, command, stdout=subprocess.PIPE, check=False, cwd=REPO)
            )
            assert process.stdout is not None
            line = b""
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(1)
            url = line.decode().split()[-1]
            async with httpx.AsyncClient() as http:
                body = {"model": "m", "messages": USER}
                reply = (await http.post(f"{url}/v1/messages", json=body)).json()
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
    assert "not Claude" in reply["content"][0]["text"]


def test_the_standalone_server_says_plainly_when_its_port_is_taken(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert mock_upstream_main(["--port", str(port)]) == 1
    assert "clawrap mock-upstream: Address already in use" in capsys.readouterr().err


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
