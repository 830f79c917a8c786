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
from e2e import TEST_LIMIT, Clawrap, in_thread, sse_data, wait_until
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from clawrap._scripted_model import Reply

pytestmark = pytest.mark.e2e

Messages = list[dict[str, Any]]

# After clients drop, how long until no CLI generates for them (measured ~0.2 s; the reply
# would run for a minute). Spare time for a shared machine, well short of the reply's length.
DROP_LIMIT = 1.5


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
