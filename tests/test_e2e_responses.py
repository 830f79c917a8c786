"""The OpenAI Responses API end to end: openai-python -> clawrap -> SDK -> CLI -> scripted model.

Every client validates what it gets against its own models (strict mode). The
``clawrap_server`` fixture (tests/e2e.py) shuts the server down afterwards and asserts
that no CLI process is left.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
import trio
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap, in_thread, wait_until
from openai.types.responses import Response
from pydantic import BaseModel

from clawrap.core._request import ThinkingPart
from clawrap.protocol.responses._reasoning import decode_thinking
from clawrap.scripted._model import Reply, ToolUse

pytestmark = [pytest.mark.e2e, SDK_READER_LEFT_OPEN]

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
PARIS = ToolUse("get_weather", {"city": "Paris"}, "toolu_resp_paris")
ROME = ToolUse("get_weather", {"city": "Rome"}, "toolu_resp_rome")
DROP_LIMIT = 5.0  # a loaded 2-core machine misses 1.5 s; the dropped reply would run a minute


def create(server: Clawrap, **kwargs: Any) -> Response:
    with server.openai() as client:
        kwargs.setdefault("model", "sonnet")
        return client.responses.create(**kwargs)


async def test_create_answers_with_the_text_and_usage(clawrap_server: Clawrap) -> None:
    reply = Reply(text="Hello from the script.", input_tokens=12, output_tokens=5)
    clawrap_server.model.when("RESPTEXT", reply)
    with trio.fail_after(TEST_LIMIT):
        response = await in_thread(
            lambda: create(clawrap_server, input="RESPTEXT please", instructions="Be brief.")
        )
    assert response.status == "completed"
    assert response.output_text == "Hello from the script."
    assert response.usage is not None and response.usage.output_tokens == 5
    [upstream] = clawrap_server.requests("RESPTEXT")
    assert "Be brief." in upstream.system_text


async def test_stream_events_come_in_order_and_the_final_response_is_whole(
    clawrap_server: Clawrap,
) -> None:
    reply = Reply(tokens=20)
    clawrap_server.model.when("RESPSTREAM", reply)

    def run() -> tuple[list[str], list[str], Response]:
        with (
            clawrap_server.openai() as client,
            client.responses.stream(model="sonnet", input="RESPSTREAM") as stream,
        ):
            types, deltas = [], []
            for event in stream:
                types.append(event.type)
                if event.type == "response.output_text.delta":
                    deltas.append(event.delta)
            return types, deltas, stream.get_final_response()

    with trio.fail_after(TEST_LIMIT):
        types, deltas, final = await in_thread(run)
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert types.index("response.output_item.added") < types.index("response.content_part.added")
    assert deltas == reply.text_deltas()
    assert final.output_text == "".join(reply.text_deltas())


class Capital(BaseModel):
    country: str
    capital: str


async def test_parse_validates_the_json_into_a_pydantic_model(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("RESPPARSE", Reply(text='{"country": "France", "capital": "Paris"}'))

    def run() -> Any:
        with clawrap_server.openai() as client:
            return client.responses.parse(model="sonnet", input="RESPPARSE", text_format=Capital)

    with trio.fail_after(TEST_LIMIT):
        parsed = await in_thread(run)
    assert parsed.output_parsed == Capital(country="France", capital="Paris")
    [upstream] = clawrap_server.requests("RESPPARSE")
    assert "capital" in json.dumps(upstream.body)


async def test_two_parallel_calls_answered_statelessly_by_resending_the_input(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("RESPCALLS", Reply(tool_uses=[PARIS, ROME]))
    clawrap_server.model.when("sunny in Paris", Reply(text="Paris is sunny, Rome rainy."))
    first_input: list[Any] = [{"role": "user", "content": "RESPCALLS weather?"}]
    with trio.fail_after(TEST_LIMIT):
        first = await in_thread(
            lambda: create(clawrap_server, input=first_input, tools=[WEATHER], store=False)
        )
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        (PARIS.id, "get_weather", PARIS.input),
        (ROME.id, "get_weather", ROME.input),
    ]
    assert len({c.id for c in calls}) == 2
    second_input = [
        *first_input,
        *[c.model_dump(exclude_none=True) for c in calls],
        {"type": "function_call_output", "call_id": PARIS.id, "output": "sunny in Paris"},
        {"type": "function_call_output", "call_id": ROME.id, "output": "rainy in Rome"},
    ]
    with trio.fail_after(TEST_LIMIT):
        second = await in_thread(
            lambda: create(clawrap_server, input=second_input, tools=[WEATHER], store=False)
        )
    assert second.output_text == "Paris is sunny, Rome rainy."
    upstream = clawrap_server.requests("sunny in Paris")[-1]
    results = [
        b
        for m in upstream.body["messages"]
        for b in (m["content"] if isinstance(m["content"], list) else [])
        if b.get("type") == "tool_result"
    ]
    assert [r["tool_use_id"] for r in results] == [PARIS.id, ROME.id]


async def test_a_call_answered_through_previous_response_id(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("RESPPREV", Reply(tool_uses=[PARIS]))
    clawrap_server.model.when("cloudy in Paris", Reply(text="It is cloudy."))
    with trio.fail_after(TEST_LIMIT):
        first = await in_thread(
            lambda: create(clawrap_server, input="RESPPREV weather?", tools=[WEATHER])
        )
        [call] = [i for i in first.output if i.type == "function_call"]
        output = {"type": "function_call_output", "call_id": call.call_id,
                  "output": "cloudy in Paris"}  # fmt: skip
        second = await in_thread(
            lambda: create(
                clawrap_server, input=[output], previous_response_id=first.id, tools=[WEATHER]
            )
        )
    assert second.output_text == "It is cloudy."
    assert second.previous_response_id == first.id
    upstream = clawrap_server.requests("cloudy in Paris")[-1]
    assert "RESPPREV weather?" in upstream.text


async def test_retrieve_input_items_delete_and_unknown_ids(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("RESPSTORE", Reply(text="Stored."))

    def run() -> tuple[Any, ...]:
        with clawrap_server.openai() as client:
            made = client.responses.create(model="sonnet", input="RESPSTORE me")
            got = client.responses.retrieve(made.id)
            items = client.responses.input_items.list(made.id)
            deleted = client.responses.delete(made.id)
            with pytest.raises(openai.NotFoundError) as gone:
                client.responses.retrieve(made.id)
            with pytest.raises(openai.NotFoundError) as unknown:
                client.responses.create(model="sonnet", input="again", previous_response_id=made.id)
            return made, got, items, deleted, gone.value, unknown.value

    with trio.fail_after(TEST_LIMIT):
        made, got, items, deleted, gone, unknown = await in_thread(run)
    assert got.id == made.id and got.output_text == "Stored."
    assert [i.type for i in items.data] == ["message"]
    assert deleted is None or getattr(deleted, "deleted", True)
    assert gone.status_code == 404
    assert unknown.status_code == 404
    assert unknown.body["param"] == "previous_response_id"  # type: ignore[index]


async def test_hosted_tools_are_left_out_and_named_in_a_header(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("RESPHOSTED", Reply(text="ok"))
    body = {
        "model": "sonnet",
        "input": "RESPHOSTED",
        "tools": [WEATHER, {"type": "web_search"}],
    }
    async with httpx.AsyncClient(base_url=clawrap_server.url, timeout=TEST_LIMIT) as client:
        response = await client.post("/v1/responses", json=body)
        refused = await client.post(
            "/v1/responses", json={**body, "tool_choice": {"type": "web_search"}}
        )
    assert response.status_code == 200
    assert response.headers["x-clawrap-ignored-tools"] == "web_search"
    [upstream] = clawrap_server.requests("RESPHOSTED")
    assert [t["name"] for t in upstream.body["tools"] if "web" in t["name"]] == []
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "tool_choice"


async def test_a_dropped_stream_stops_the_upstream_generation(clawrap_server: Clawrap) -> None:
    # A reply that would take a minute to finish: only stopping the CLI ends it sooner.
    clawrap_server.model.when("RESPDROP", Reply(tokens=1200, delay=0.05))

    def read_a_little_then_leave() -> int:
        with clawrap_server.openai() as client:
            stream = client.responses.create(model="sonnet", input="RESPDROP", stream=True)
            seen = 0
            for event in stream:
                seen += event.type == "response.output_text.delta"
                if seen == 3:
                    break
            stream.close()
            return seen

    with trio.fail_after(TEST_LIMIT):
        assert await in_thread(read_a_little_then_leave) == 3
    with trio.fail_after(DROP_LIMIT):
        await wait_until(lambda: clawrap_server.upstream.open_responses == 0)
        await wait_until(lambda: clawrap_server.pool_status()["busy"] == 0)
        await wait_until(lambda: clawrap_server.stray_cli_pids() == [])


async def test_a_previous_response_id_chain_goes_on_on_the_live_process(
    clawrap_server: Clawrap,
) -> None:
    def run() -> list[Response]:
        out: list[Response] = []
        with clawrap_server.openai() as client:
            previous = None
            for n in range(4):
                directive = json.dumps({"text": f"Answer {n}."})
                out.append(
                    client.responses.create(
                        model="sonnet",
                        instructions="Count.",
                        input=f"RESPCHAIN {n} [[mock:{directive}]]",
                        previous_response_id=previous,
                    )
                )
                previous = out[-1].id
        return out

    with trio.fail_after(TEST_LIMIT):
        responses = await in_thread(run)
    assert [r.output_text for r in responses] == [f"Answer {n}." for n in range(4)]
    assert clawrap_server.pool_status()["continued"] == 3
    last = clawrap_server.requests("RESPCHAIN 3")[-1]
    assert "RESPCHAIN 0" in last.text  # the whole conversation reached the model


async def test_thinking_comes_back_as_a_reasoning_item_and_is_accepted_back(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when(
        "RESPTHINK", Reply(thinking="Paris first.", signature="c2lnLXBhcmlz", tool_uses=[PARIS])
    )
    clawrap_server.model.when("AND TOMORROW", Reply(text="Mild."))
    first_input: list[Any] = [{"role": "user", "content": "RESPTHINK weather?"}]
    options: dict[str, Any] = {
        "tools": [WEATHER],
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "reasoning": {"summary": "auto"},
        # thinking on, so the CLI keeps thinking blocks in the conversation it sends
        "extra_body": {"claude": {"thinking": "enabled"}},
    }
    with trio.fail_after(TEST_LIMIT):
        first = await in_thread(lambda: create(clawrap_server, input=first_input, **options))
    reasoning = [i for i in first.output if i.type == "reasoning"]
    assert [s.text for r in reasoning for s in r.summary] == ["Paris first."]
    assert reasoning[0].encrypted_content is not None
    thought = decode_thinking(reasoning[0].encrypted_content)
    assert thought == ThinkingPart("Paris first.", "c2lnLXBhcmlz")
    [call] = [i for i in first.output if i.type == "function_call"]
    second_input = [
        *first_input,
        *[i.model_dump(exclude_none=True) for i in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "mild in Paris"},
        {"role": "user", "content": "AND TOMORROW?"},
    ]
    with trio.fail_after(TEST_LIMIT):
        second = await in_thread(lambda: create(clawrap_server, input=second_input, **options))
    assert second.output_text == "Mild."
    # The reasoning item sent back was accepted as the signed thinking block it carries (the
    # CLI decides whether an earlier turn's thinking goes upstream; see the decoder's tests).
    assert len(clawrap_server.requests("AND TOMORROW")) == 1


async def test_cancel_stops_a_running_response(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("RESPCANCEL", Reply(tokens=1200, delay=0.05))
    started, ids = trio.Event(), []

    def read_until_cancelled(token: trio.lowlevel.TrioToken) -> list[str]:
        types = []
        with clawrap_server.openai() as client:
            stream = client.responses.create(model="sonnet", input="RESPCANCEL", stream=True)
            try:
                for event in stream:
                    types.append(event.type)
                    if event.type == "response.created":
                        ids.append(event.response.id)
                        trio.from_thread.run_sync(started.set, trio_token=token)
            except (openai.APIError, httpx.HTTPError):
                types.append("broken")
        return types

    token = trio.lowlevel.current_trio_token()
    async with trio.open_nursery() as nursery:
        result: list[list[str]] = []

        async def reader() -> None:
            result.append(await in_thread(lambda: read_until_cancelled(token)))

        nursery.start_soon(reader)
        with trio.fail_after(TEST_LIMIT):
            await started.wait()
            async with httpx.AsyncClient(base_url=clawrap_server.url) as client:
                cancelled = await client.post(f"/v1/responses/{ids[0]}/cancel")
                again = await client.post(f"/v1/responses/{ids[0]}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert again.status_code == 404
    assert "response.completed" not in result[0]
    with trio.fail_after(DROP_LIMIT):
        await wait_until(lambda: clawrap_server.upstream.open_responses == 0)
        await wait_until(lambda: clawrap_server.stray_cli_pids() == [])
