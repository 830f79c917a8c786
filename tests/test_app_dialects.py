"""The app with the real OpenAI and Anthropic dialects, driven by the scripted backend."""

from __future__ import annotations

import json

import pytest
from asgi_fakes import call
from scripted_backend import ScriptedBackend

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Finished, TextDelta, Usage
from clawrap.http._app import App, create_app

HELLO = [TextDelta("Hel"), TextDelta("lo"), Usage(7, 2), Finished("end_turn")]
CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": CHAT["messages"]}


def real_app(backend: ScriptedBackend) -> App:
    return create_app(Settings(), backend)


def sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


async def test_openai_stream_has_chunks_usage_and_done() -> None:
    app = real_app(ScriptedBackend(HELLO))
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = await call(app, "POST", "/v1/chat/completions", json_body=body)
    assert response.status == 200
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2


async def test_openai_non_stream_is_a_chat_completion() -> None:
    app = real_app(ScriptedBackend(HELLO))
    body = (await call(app, "POST", "/v1/chat/completions", json_body=CHAT)).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Hello"
    assert body["choices"][0]["finish_reason"] == "stop"


async def test_openai_stop_sequence_is_enforced() -> None:
    script = [TextDelta("one two three"), Usage(1, 3), Finished("end_turn")]
    app = real_app(ScriptedBackend(script))
    body = (
        await call(app, "POST", "/v1/chat/completions", json_body={**CHAT, "stop": "two"})
    ).json()
    assert body["choices"][0]["message"]["content"] == "one "
    assert body["choices"][0]["finish_reason"] == "stop"


async def test_anthropic_stream_ends_with_message_stop() -> None:
    app = real_app(ScriptedBackend(HELLO))
    response = await call(app, "POST", "/v1/messages", json_body={**MESSAGES, "stream": True})
    events = [
        line[len("event: ") :] for line in response.text.splitlines() if line.startswith("event: ")
    ]
    assert events[0] == "message_start"
    assert events[-1] == "message_stop"


async def test_anthropic_non_stream_is_a_message() -> None:
    app = real_app(ScriptedBackend(HELLO))
    body = (await call(app, "POST", "/v1/messages", json_body=MESSAGES)).json()
    assert body["type"] == "message"
    assert body["content"] == [{"type": "text", "text": "Hello"}]
    assert body["usage"]["output_tokens"] == 2


async def test_an_anthropic_error_before_output_is_in_anthropic_shape() -> None:
    error = ClawrapError("overloaded", "Overloaded.", retry_after=5)
    app = real_app(ScriptedBackend(error=error, error_first=True))
    response = await call(app, "POST", "/v1/messages", json_body={**MESSAGES, "stream": True})
    assert response.status == 503
    assert response.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded."},
    }


async def test_an_openai_error_mid_stream_is_a_data_error_event() -> None:
    app = real_app(ScriptedBackend([TextDelta("x")], error=ClawrapError("api_error", "Broke.")))
    response = await call(app, "POST", "/v1/chat/completions", json_body={**CHAT, "stream": True})
    data = sse_data(response.text)
    assert any("error" in json.loads(d) for d in data if d != "[DONE]")


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/chat/completions", {"messages": "nope"}), ("/v1/messages", {"messages": "nope"})],
)
async def test_an_invalid_request_is_400_naming_the_field(
    path: str, body: dict[str, object]
) -> None:
    response = await call(real_app(ScriptedBackend(HELLO)), "POST", path, json_body=body)
    assert response.status == 400
    assert "messages" in response.text


async def test_count_tokens_answers_input_tokens() -> None:
    app = real_app(ScriptedBackend(HELLO))
    response = await call(app, "POST", "/v1/messages/count_tokens", json_body=MESSAGES)
    assert response.status == 200
    assert response.json()["input_tokens"] > 0
