"""Structured output end to end: real clients -> clawrap -> SDK -> CLI -> scripted model.

A JSON answer the client asked for (``response_format`` / ``output_format``) reaches it as
produced, and one that is not what it asked for becomes an error, never made-up content:
a 502 ``invalid_json_output`` before any output, the stream's error event after it.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
import trio
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap, in_thread, sse_data
from pydantic import BaseModel

from clawrap.scripted._model import Reply

pytestmark = [pytest.mark.e2e, SDK_READER_LEFT_OPEN]


class Forecast(BaseModel):
    city: str
    temperature: int
    sunny: bool


FORECAST = Forecast(city="Paris", temperature=18, sunny=True)
VALID = '{"city": "Paris", "temperature": 18, "sunny": true}'
MISSING_FIELD = '{"city": "Paris", "temperature": 18}'


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def parse(server: Clawrap, marker: str, **kwargs: Any) -> Any:
    with server.openai() as client:
        return client.chat.completions.parse(
            model="sonnet", messages=ask(marker), response_format=Forecast, **kwargs
        )


def stream_parse(server: Clawrap, marker: str, contents: list[str]) -> Any:
    """The final parsed completion of a streamed ``.parse``; ``contents`` gets each delta."""
    with (
        server.openai() as client,
        client.chat.completions.stream(
            model="sonnet", messages=ask(marker), response_format=Forecast
        ) as stream,
    ):
        for event in stream:
            if event.type == "content.delta":
                contents.append(event.delta)
        return stream.get_final_completion()


def error_code(error: openai.APIError) -> Any:
    body = error.body
    return body.get("code") if isinstance(body, dict) else None


# -- OpenAI, not streamed


async def test_parse_of_a_valid_answer_returns_the_object(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("VALIDWHOLE", Reply(text=VALID))
    with trio.fail_after(TEST_LIMIT):
        completion = await in_thread(lambda: parse(clawrap_server, "VALIDWHOLE"))
    assert completion.choices[0].message.parsed == FORECAST


async def test_parse_of_an_answer_missing_a_field_gets_a_502_not_content(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("MISSINGWHOLE", Reply(text=MISSING_FIELD))
    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.InternalServerError) as caught:
        await in_thread(lambda: parse(clawrap_server, "MISSINGWHOLE"))
    assert caught.value.status_code == 502
    assert error_code(caught.value) == "invalid_json_output"
    assert "'sunny' is a required property" in caught.value.message
    assert len(clawrap_server.requests("MISSINGWHOLE")) == 1  # one upstream call, no retries


async def test_prose_instead_of_json_object_gets_a_502(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("PROSEWHOLE", Reply(text="Sure, it is sunny in Paris."))

    def create() -> Any:
        with clawrap_server.openai() as client:
            return client.chat.completions.create(
                model="sonnet",
                messages=ask("PROSEWHOLE"),
                response_format={"type": "json_object"},
            )

    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.InternalServerError) as caught:
        await in_thread(create)
    assert error_code(caught.value) == "invalid_json_output"
    assert "not valid JSON" in caught.value.message


async def test_a_json_answer_cut_by_max_tokens_is_reported_as_length(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("CUTWHOLE", Reply(text=VALID))
    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.LengthFinishReasonError):
        await in_thread(lambda: parse(clawrap_server, "CUTWHOLE", max_completion_tokens=2))


async def test_a_schema_with_a_remote_reference_is_a_400_before_any_model_call(
    clawrap_server: Clawrap,
) -> None:
    schema = {"type": "object", "properties": {"x": {"$ref": "http://127.0.0.1:9/x.json"}}}

    def create() -> Any:
        with clawrap_server.openai() as client:
            return client.chat.completions.create(
                model="sonnet",
                messages=ask("REMOTEREF"),
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "X", "schema": schema},
                },
            )

    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.BadRequestError) as caught:
        await in_thread(create)
    assert error_code(caught.value) == "invalid_json_schema"
    assert clawrap_server.requests("REMOTEREF") == []


# -- OpenAI, streamed


async def test_a_streamed_valid_answer_arrives_in_pieces_and_parses(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("VALIDSTREAM", Reply(text=VALID))
    contents: list[str] = []
    with trio.fail_after(TEST_LIMIT):
        completion = await in_thread(lambda: stream_parse(clawrap_server, "VALIDSTREAM", contents))
    assert completion.choices[0].message.parsed == FORECAST
    assert len(contents) > 1  # streamed as the model produced it, not held to the end
    assert "".join(contents) == VALID


async def test_a_streamed_invalid_answer_ends_with_the_error_event_not_a_finish(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("MISSINGSTREAM", Reply(text=MISSING_FIELD))

    def lines() -> list[str]:
        with (
            clawrap_server.openai() as client,
            client.chat.completions.with_streaming_response.create(
                model="sonnet",
                messages=ask("MISSINGSTREAM"),
                stream=True,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "Forecast", "schema": Forecast.model_json_schema()},
                },
            ) as response,
        ):
            return list(response.iter_lines())

    with trio.fail_after(TEST_LIMIT):
        data = sse_data(await in_thread(lines))
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert (error["type"], error["code"]) == ("api_error", "invalid_json_output")
    chunks = [json.loads(d) for d in data[:-2]]
    assert not any(c["choices"] and c["choices"][0]["finish_reason"] for c in chunks)
    sent = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
    assert sent == MISSING_FIELD  # what was sent stays sent; nothing is added to it


async def test_a_streamed_parse_of_an_invalid_answer_raises_in_the_client(
    clawrap_server: Clawrap,
) -> None:
    # JSON that parses as it streams (openai-python gives up on prose by itself, as it
    # parses partial JSON), but lacks a required field.
    clawrap_server.model.when("MISSINGPARSE", Reply(text=MISSING_FIELD))
    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.APIError) as caught:
        await in_thread(lambda: stream_parse(clawrap_server, "MISSINGPARSE", []))
    assert "does not follow the requested response format" in caught.value.message


# -- Anthropic output_format


def anthropic_parse(server: Clawrap, marker: str) -> Any:
    with server.anthropic() as client:
        return client.messages.parse(
            model="sonnet", max_tokens=1024, messages=ask(marker), output_format=Forecast
        )


async def test_anthropic_parse_of_a_valid_answer_returns_the_object(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("ANTVALID", Reply(text=VALID))
    with trio.fail_after(TEST_LIMIT):
        message = await in_thread(lambda: anthropic_parse(clawrap_server, "ANTVALID"))
    assert message.parsed_output == FORECAST


async def test_anthropic_parse_of_an_invalid_answer_gets_an_api_error(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("ANTMISSING", Reply(text=MISSING_FIELD))
    with trio.fail_after(TEST_LIMIT), pytest.raises(anthropic.APIStatusError) as caught:
        await in_thread(lambda: anthropic_parse(clawrap_server, "ANTMISSING"))
    assert caught.value.status_code == 502
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "api_error"
