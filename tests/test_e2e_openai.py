"""OpenAI Chat Completions end to end: openai-python -> clawrap -> SDK -> CLI -> scripted model.

Each test scripts the model with a marker of its own, drives the real ``openai`` client with
strict response validation, and checks what the client got and what reached the model. The
``clawrap_server`` fixture (tests/e2e.py) shuts the server down afterwards and asserts that no
CLI process is left.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
import trio
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap, in_thread, sse_data, wait_until
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from clawrap.scripted._model import Reply, ToolUse

pytestmark = [pytest.mark.e2e, SDK_READER_LEFT_OPEN]

Messages = list[dict[str, Any]]

# After clients drop, how long until no CLI generates for them (measured ~0.2 s; the reply
# would run for a minute). Spare time for a shared machine, well short of the reply's length.
DROP_LIMIT = 5.0


def ask(text: str) -> Messages:
    return [{"role": "user", "content": text}]


def stream_chunks(server: Clawrap, **kwargs: Any) -> list[ChatCompletionChunk]:
    with server.openai() as client:
        kwargs.setdefault("model", "sonnet")
        return list(client.chat.completions.create(stream=True, **kwargs))


def complete(server: Clawrap, **kwargs: Any) -> ChatCompletion:
    with server.openai() as client:
        kwargs.setdefault("model", "sonnet")
        return client.chat.completions.create(**kwargs)


def raw_stream_lines(server: Clawrap, **kwargs: Any) -> list[str]:
    """The SSE lines of a streamed completion, as sent."""
    with server.openai() as client:
        kwargs.setdefault("model", "sonnet")
        with client.chat.completions.with_streaming_response.create(
            stream=True, **kwargs
        ) as response:
            return list(response.iter_lines())


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# -- streaming text


async def test_a_50_token_reply_streams_as_50_content_chunks_then_stop_and_done(
    clawrap_server: Clawrap,
) -> None:
    reply = Reply(tokens=50)
    clawrap_server.model.when("FIFTY", reply)
    with trio.fail_after(TEST_LIMIT):
        lines = await in_thread(
            lambda: raw_stream_lines(clawrap_server, messages=ask("FIFTY please"))
        )
    data = sse_data(lines)
    assert data[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(d)) for d in data[:-1]]
    content = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert content == reply.text_deltas()
    assert sum(1 for c in chunks if c.choices[0].delta.role is not None) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({(c.id, c.created) for c in chunks}) == 1
    assert {(c.object, c.model) for c in chunks} == {("chat.completion.chunk", "sonnet")}


async def test_include_usage_adds_a_choiceless_chunk_with_the_models_token_counts(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("COUNTED", Reply(tokens=7, input_tokens=321, output_tokens=45))
    with trio.fail_after(TEST_LIMIT):
        chunks = await in_thread(
            lambda: stream_chunks(
                clawrap_server,
                messages=ask("COUNTED"),
                stream_options={"include_usage": True},
            )
        )
    *content, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (321, 45)
    assert last.usage.total_tokens == 366
    assert all(c.usage is None for c in content)
    assert content[-1].choices[0].finish_reason == "stop"


async def test_a_whole_completion_carries_the_text_and_the_models_token_counts(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when(
        "WHOLE", Reply(text="Paris is the capital.", input_tokens=120, output_tokens=6)
    )
    with trio.fail_after(TEST_LIMIT):
        completion = await in_thread(lambda: complete(clawrap_server, messages=ask("WHOLE?")))
    assert completion.object == "chat.completion"
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "Paris is the capital."
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (120, 6)
    assert completion.model == "sonnet"


async def test_system_and_developer_text_reach_the_models_system_prompt(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("PIRATE", Reply(text="Arr."))
    messages = [
        {"role": "system", "content": "Answer like a pirate."},
        {"role": "developer", "content": "Never mention treasure."},
        {"role": "user", "content": "PIRATE greeting"},
    ]
    with trio.fail_after(TEST_LIMIT):
        await in_thread(lambda: complete(clawrap_server, messages=messages))
    (upstream,) = clawrap_server.requests("PIRATE")
    assert "Answer like a pirate." in upstream.system_text
    assert "Never mention treasure." in upstream.system_text
    assert "Answer like a pirate." not in upstream.text


async def test_one_completion_makes_one_small_upstream_request(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("LEAN", Reply(text="Yes."))
    with trio.fail_after(TEST_LIMIT):
        await in_thread(lambda: complete(clawrap_server, messages=ask("LEAN: is the sky blue?")))
    (upstream,) = clawrap_server.model.requests
    assert "LEAN" in upstream.text
    assert len(json.dumps(upstream.body).encode()) < 3 * 1024


async def test_max_tokens_cuts_the_reply_with_finish_reason_length(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("LONG", Reply(tokens=50))
    with trio.fail_after(TEST_LIMIT):
        chunks = await in_thread(
            lambda: stream_chunks(clawrap_server, messages=ask("LONG"), max_tokens=5)
        )
    assert text_of(chunks) == "tok1 tok2 tok3 tok4 tok5"
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_a_stop_sequence_cuts_the_reply_before_it_with_finish_reason_stop(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("HALT", Reply(text="one two three END four five"))
    with trio.fail_after(TEST_LIMIT):
        chunks = await in_thread(
            lambda: stream_chunks(clawrap_server, messages=ask("HALT"), stop=["END"])
        )
    text = text_of(chunks)
    assert text.rstrip() == "one two three"
    assert "END" not in text and "four" not in text
    assert chunks[-1].choices[0].finish_reason == "stop"


# -- errors


async def test_an_unknown_model_is_a_404_model_not_found(clawrap_server: Clawrap) -> None:
    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.NotFoundError) as caught:
        await in_thread(lambda: complete(clawrap_server, model="gpt-9", messages=ask("hi")))
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert clawrap_server.model.requests == []


async def test_a_malformed_json_body_is_a_400_in_openais_shape(clawrap_server: Clawrap) -> None:
    def post() -> httpx.Response:
        return httpx.post(
            clawrap_server.url + "/v1/chat/completions",
            content=b'{"model": "sonnet", "messages": [',
            headers={"content-type": "application/json"},
            timeout=30,
        )

    with trio.fail_after(TEST_LIMIT):
        response = await in_thread(post)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert set(error) >= {"message", "type", "param", "code"}
    assert clawrap_server.model.requests == []


async def test_an_upstream_401_is_an_authentication_error(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("LOCKED", Reply(status=401))
    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.AuthenticationError) as caught:
        await in_thread(lambda: complete(clawrap_server, messages=ask("LOCKED")))
    assert caught.value.status_code == 401
    assert "scripted" not in caught.value.message  # the upstream's own text is not passed on


async def test_an_upstream_429_is_a_rate_limit_error_with_retry_after(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("BUSY", Reply(status=429, retry_after=7))
    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.RateLimitError) as caught:
        await in_thread(lambda: complete(clawrap_server, messages=ask("BUSY")))
    assert caught.value.status_code == 429
    assert float(caught.value.response.headers["retry-after"]) > 0


async def test_an_overloaded_upstream_is_a_503(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("CROWDED", Reply(status=529))
    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.InternalServerError) as caught:
        await in_thread(lambda: complete(clawrap_server, messages=ask("CROWDED")))
    assert caught.value.status_code == 503
    assert "retry-after" in caught.value.response.headers


async def test_an_upstream_connection_cut_mid_stream_raises_api_error_in_the_client(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("CUT", Reply(tokens=20, drop_after=5, delay=0.02))
    received: list[ChatCompletionChunk] = []

    def read() -> None:
        with clawrap_server.openai() as client:
            for chunk in client.chat.completions.create(
                model="sonnet", messages=ask("CUT"), stream=True
            ):
                received.append(chunk)

    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.APIError) as caught:
        await in_thread(read)
    assert not isinstance(caught.value, openai.APIStatusError)  # from the error event
    # What arrived before the cut was passed on (the last delta may die with the connection).
    assert text_of(received) in ("tok1 tok2 tok3 tok4", "tok1 tok2 tok3 tok4 tok5")


async def test_an_upstream_error_event_mid_stream_raises_api_error_in_the_client(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("BROKEN", Reply(tokens=20, error_after=3, delay=0.02))
    received: list[ChatCompletionChunk] = []

    def read() -> None:
        with clawrap_server.openai() as client:
            for chunk in client.chat.completions.create(
                model="sonnet", messages=ask("BROKEN"), stream=True
            ):
                received.append(chunk)

    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.APIError) as caught:
        await in_thread(read)
    assert not isinstance(caught.value, openai.APIStatusError)
    assert text_of(received) == "tok1 tok2 tok3"


async def test_three_clients_dropping_mid_reply_leave_no_cli_generating(
    clawrap_server: Clawrap,
) -> None:
    # A reply that would take a minute to finish: only stopping the CLI ends it sooner.
    clawrap_server.model.when("DRIP", Reply(tokens=1200, delay=0.05))

    def read_a_little_then_leave(n: int) -> int:
        with clawrap_server.openai() as client:
            stream = client.chat.completions.create(
                model="sonnet", messages=ask(f"DRIP {n}"), stream=True
            )
            seen = 0
            for chunk in stream:
                seen += bool(chunk.choices and chunk.choices[0].delta.content)
                if seen == 3:
                    break
            stream.close()
            return seen

    with trio.fail_after(TEST_LIMIT):
        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(in_thread, lambda n=n: read_a_little_then_leave(n))
        assert len(clawrap_server.requests("DRIP")) == 3
    with trio.fail_after(DROP_LIMIT):
        await wait_until(lambda: clawrap_server.upstream.open_responses == 0)
        await wait_until(lambda: clawrap_server.pool_status()["busy"] == 0)
        await wait_until(lambda: clawrap_server.stray_cli_pids() == [])
    status = await in_thread(lambda: httpx.get(clawrap_server.url + "/v1/pool", timeout=30).json())
    assert status["busy"] == 0
    assert len(clawrap_server.requests("DRIP")) == 3  # nothing was retried


# -- function calling

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
PARIS = ToolUse("get_weather", {"city": "Paris", "unit": "C"}, "toolu_paris")
ROME = ToolUse("get_weather", {"city": "Rome"}, "toolu_rome")


def calls_of(message: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, name, parsed arguments) of each tool call in a message."""
    return [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []
    ]


def scripted(*uses: ToolUse) -> list[tuple[str | None, str, dict[str, Any]]]:
    return [(u.id, u.name, u.input) for u in uses]


def helper_stream(server: Clawrap, marker: str) -> ChatCompletion:
    """The final completion of openai-python's ``chat.completions.stream()`` helper."""
    with (
        server.openai() as client,
        client.chat.completions.stream(
            model="sonnet", messages=ask(marker), tools=[WEATHER_TOOL]
        ) as stream,
    ):
        for _ in stream:
            pass
        return stream.get_final_completion()


async def test_one_tool_call_comes_back_through_the_stream_helper(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("ONECALL", Reply(tool_uses=[PARIS]))
    with trio.fail_after(TEST_LIMIT):
        final = await in_thread(lambda: helper_stream(clawrap_server, "ONECALL"))
    (choice,) = final.choices
    assert calls_of(choice.message) == scripted(PARIS)
    assert choice.finish_reason == "tool_calls"


async def test_two_parallel_tool_calls_come_back_through_the_stream_helper(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("TWOCALLS", Reply(text="Checking both.", tool_uses=[PARIS, ROME]))
    with trio.fail_after(TEST_LIMIT):
        final = await in_thread(lambda: helper_stream(clawrap_server, "TWOCALLS"))
    (choice,) = final.choices
    assert calls_of(choice.message) == scripted(PARIS, ROME)
    assert choice.message.content == "Checking both."
    assert choice.finish_reason == "tool_calls"


async def test_streamed_tool_call_deltas_name_each_call_once_then_stream_its_arguments(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("RAWCALLS", Reply(tool_uses=[PARIS, ROME]))
    with trio.fail_after(TEST_LIMIT):
        chunks = await in_thread(
            lambda: stream_chunks(clawrap_server, messages=ask("RAWCALLS"), tools=[WEATHER_TOOL])
        )
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            assert delta.function is not None
            if delta.index not in calls:
                assert delta.id is not None and delta.function.name is not None
                calls[delta.index] = {"id": delta.id, "name": delta.function.name, "args": ""}
            else:
                assert delta.id is None and delta.function.name is None
            calls[delta.index]["args"] += delta.function.arguments or ""
    got = [(c["id"], c["name"], json.loads(c["args"])) for _, c in sorted(calls.items())]
    assert got == scripted(PARIS, ROME)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_a_whole_completion_carries_parallel_tool_calls(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("WHOLECALLS", Reply(tool_uses=[PARIS, ROME]))
    with trio.fail_after(TEST_LIMIT):
        completion = await in_thread(
            lambda: complete(clawrap_server, messages=ask("WHOLECALLS"), tools=[WEATHER_TOOL])
        )
    (choice,) = completion.choices
    assert calls_of(choice.message) == scripted(PARIS, ROME)
    assert choice.finish_reason == "tool_calls"


class Forecast(BaseModel):
    city: str
    temperature: int
    sunny: bool


FORECAST = '{"city": "Paris", "temperature": 18, "sunny": true}'


def parse(server: Clawrap, marker: str) -> Any:
    with server.openai() as client:
        completion = client.chat.completions.parse(
            model="sonnet", messages=ask(marker), response_format=Forecast
        )
    return completion.choices[0].message.parsed


async def test_parse_returns_the_pydantic_object_from_the_models_json(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("FORECAST", Reply(text=FORECAST))
    with trio.fail_after(TEST_LIMIT):
        parsed = await in_thread(lambda: parse(clawrap_server, "FORECAST"))
    assert parsed == Forecast(city="Paris", temperature=18, sunny=True)


async def test_parse_still_works_when_the_model_fences_its_json(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("FENCED", Reply(text=f"```json\n{FORECAST}\n```"))
    with trio.fail_after(TEST_LIMIT):
        parsed = await in_thread(lambda: parse(clawrap_server, "FENCED"))
    assert parsed == Forecast(city="Paris", temperature=18, sunny=True)


async def test_parse_tells_the_model_the_json_schema_to_answer_with(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("SCHEMA", Reply(text=FORECAST))
    with trio.fail_after(TEST_LIMIT):
        await in_thread(lambda: parse(clawrap_server, "SCHEMA"))
    (upstream,) = clawrap_server.requests("SCHEMA")
    assert "JSON" in upstream.system_text
    for name in Forecast.model_fields:
        assert f'"{name}"' in upstream.system_text


async def test_a_three_round_tool_conversation_shows_the_model_every_earlier_call_and_result(
    clawrap_server: Clawrap,
) -> None:
    rounds = [
        ToolUse("get_weather", {"city": "Paris"}, "toolu_round1"),
        ToolUse("get_weather", {"city": "Rome"}, "toolu_round2"),
        ToolUse("get_weather", {"city": "Oslo"}, "toolu_round3"),
    ]
    clawrap_server.model.when(
        "ROUNDS", *(Reply(tool_uses=[r]) for r in rounds), Reply(text="Oslo is coldest.")
    )
    results = {"toolu_round1": "18C", "toolu_round2": "24C", "toolu_round3": "-3C"}

    def converse() -> list[ChatCompletion]:
        messages: Messages = ask("ROUNDS: which city is coldest?")
        replies = []
        with clawrap_server.openai() as client:
            for _ in range(4):
                reply = client.chat.completions.create(
                    model="sonnet", messages=messages, tools=[WEATHER_TOOL]
                )
                replies.append(reply)
                message = reply.choices[0].message
                if not message.tool_calls:
                    break
                messages.append(message.model_dump(exclude_none=True))
                for call in message.tool_calls:
                    messages.append(
                        {"role": "tool", "tool_call_id": call.id, "content": results[call.id]}
                    )
        return replies

    with trio.fail_after(TEST_LIMIT):
        replies = await in_thread(converse)
    assert [calls_of(r.choices[0].message) for r in replies[:3]] == [scripted(r) for r in rounds]
    assert replies[3].choices[0].message.content == "Oslo is coldest."
    upstream = clawrap_server.requests("ROUNDS")
    assert len(upstream) == 4
    for n, request in enumerate(upstream):
        blocks = [b for m in request.body["messages"] for b in _blocks(m)]
        uses = [b["id"] for b in blocks if b["type"] == "tool_use"]
        answered = {b["tool_use_id"]: _result_text(b) for b in blocks if b["type"] == "tool_result"}
        assert uses == [r.id for r in rounds[:n]]
        assert answered == {r.id: results[r.id] for r in rounds[:n] if r.id}


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [])


PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def test_an_image_data_uri_reaches_the_model_as_an_image_block(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("PICTURE", Reply(text="A dot."))
    content = [
        {"type": "text", "text": "PICTURE: what is this?"},
        {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
        },
    ]
    with trio.fail_after(TEST_LIMIT):
        await in_thread(
            lambda: complete(clawrap_server, messages=[{"role": "user", "content": content}])
        )
    (upstream,) = clawrap_server.requests("PICTURE")
    last_user = [m for m in upstream.body["messages"] if m["role"] == "user"][-1]
    images = [b for b in _blocks(last_user) if b["type"] == "image"]
    assert [i["source"] for i in images] == [
        {"type": "base64", "media_type": "image/png", "data": PNG}
    ]


async def test_a_four_turn_history_reaches_the_model_as_separate_messages_with_their_roles(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("TURN FIVE", Reply(text="Five."))
    sent = [
        ("user", "turn one"),
        ("assistant", "turn two"),
        ("user", "turn three"),
        ("assistant", "turn four"),
        ("user", "TURN FIVE"),
    ]
    messages = [{"role": role, "content": text} for role, text in sent]
    with trio.fail_after(TEST_LIMIT):
        await in_thread(lambda: complete(clawrap_server, messages=messages))
    (upstream,) = clawrap_server.requests("TURN FIVE")
    turns = [m for m in upstream.body["messages"] if m["role"] in ("user", "assistant")]
    assert [m["role"] for m in turns] == [role for role, _ in sent]
    for message, (_, text) in zip(turns, sent, strict=True):
        content = message["content"]
        texts = [content] if isinstance(content, str) else [b.get("text", "") for b in content]
        assert any(text in t for t in texts)


@pytest.mark.clawrap(pool_max=1)  # one CLI process at most: the second request must reuse it
async def test_a_process_reused_after_a_client_dropped_carries_none_of_its_conversation(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("ABANDONED", Reply(tokens=1200, delay=0.05))
    clawrap_server.model.when("FRESH", Reply(text="Clean slate."))

    def leave_early() -> None:
        with clawrap_server.openai() as client:
            stream = client.chat.completions.create(
                model="sonnet", messages=ask("ABANDONED"), stream=True
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    break
            stream.close()

    with trio.fail_after(TEST_LIMIT):
        await in_thread(leave_early)
        await wait_until(lambda: clawrap_server.pool_status()["busy"] == 0)
        spawned = clawrap_server.pool_status()["spawned"]
        completion = await in_thread(lambda: complete(clawrap_server, messages=ask("FRESH")))
    assert completion.choices[0].message.content == "Clean slate."
    assert clawrap_server.pool_status()["spawned"] == spawned  # the reset process answered
    (upstream,) = clawrap_server.requests("FRESH")
    assert "ABANDONED" not in upstream.text
    assert [m["role"] for m in upstream.body["messages"] if m["role"] != "system"] == ["user"]
