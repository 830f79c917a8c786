"""The OpenAI Agents SDK with its default model class (OpenAIResponsesModel) against clawrap.

The SDK runs on asyncio, so each run happens in a worker thread with its own event loop; its
model is named explicitly (its default is an OpenAI id) and trace export is off (it would try
to reach OpenAI).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import trio
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap
from openai import AsyncOpenAI

from clawrap.scripted._model import Reply, ToolUse

pytestmark = [pytest.mark.e2e, SDK_READER_LEFT_OPEN]

CALL = ToolUse("get_weather", {"city": "Oslo"}, "toolu_agents_oslo")


def agent(server: Clawrap, cities: list[str]) -> tuple[Agent[Any], AsyncOpenAI]:
    set_tracing_disabled(True)

    @function_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        cities.append(city)
        return f"snowy in {city}"

    client = AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    model = OpenAIResponsesModel(model="sonnet", openai_client=client)
    return Agent(name="forecaster", instructions="Answer briefly.", tools=[get_weather],
                 model=model), client  # fmt: skip


async def test_runner_run_calls_a_function_tool_then_answers(clawrap_server: Clawrap) -> None:
    clawrap_server.model.when("AGENTRUN", Reply(tool_uses=[CALL]))
    clawrap_server.model.when("snowy in Oslo", Reply(text="Oslo is snowy."))
    cities: list[str] = []

    async def run() -> Any:
        forecaster, client = agent(clawrap_server, cities)
        async with client:
            return await Runner.run(forecaster, "AGENTRUN weather in Oslo?")

    with trio.fail_after(TEST_LIMIT):
        result = await trio.to_thread.run_sync(lambda: asyncio.run(run()))
    assert cities == ["Oslo"]
    assert result.final_output == "Oslo is snowy."
    [upstream] = clawrap_server.requests("snowy in Oslo")
    assert "Answer briefly." in upstream.system_text


async def test_run_streamed_yields_text_deltas_and_the_final_output(
    clawrap_server: Clawrap,
) -> None:
    reply = Reply(tokens=10)
    clawrap_server.model.when("AGENTSTREAM", reply)
    cities: list[str] = []

    async def run() -> tuple[list[str], Any]:
        forecaster, client = agent(clawrap_server, cities)
        deltas: list[str] = []
        async with client:
            result = Runner.run_streamed(forecaster, "AGENTSTREAM")
            async for event in result.stream_events():
                data = getattr(event, "data", None)
                if getattr(data, "type", None) == "response.output_text.delta":
                    deltas.append(data.delta)  # type: ignore[union-attr]
        return deltas, result.final_output

    with trio.fail_after(TEST_LIMIT):
        deltas, final = await trio.to_thread.run_sync(lambda: asyncio.run(run()))
    assert deltas == reply.text_deltas()
    assert final == "".join(reply.text_deltas())
    assert cities == []
