"""``n`` > 1 end to end: parallel runs, choices by index, streamed with indices, usage summed.

Driven by the openai package in strict mode, through the real SDK and CLI.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import trio
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap, in_thread

pytestmark = [pytest.mark.e2e, SDK_READER_LEFT_OPEN]

PROMPT = 'CHOICES [[mock:{"tokens": 3}]]'


def messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT}]


@pytest.mark.clawrap(pool_size=2)
async def test_n_two_not_streamed(clawrap_server: Clawrap) -> None:
    def run() -> tuple[object, object]:
        with clawrap_server.openai() as client:
            one = client.chat.completions.create(model="sonnet", messages=messages())  # type: ignore[arg-type]
            two = client.chat.completions.create(model="sonnet", messages=messages(), n=2)  # type: ignore[arg-type]
        return one, two

    with trio.fail_after(TEST_LIMIT):
        one, two = await in_thread(run)
    assert [c.index for c in two.choices] == [0, 1]  # type: ignore[attr-defined]
    for choice in two.choices:  # type: ignore[attr-defined]
        assert choice.message.content == "tok1 tok2 tok3"
        assert choice.finish_reason == "stop"
    assert two.usage.completion_tokens == 2 * one.usage.completion_tokens  # type: ignore[attr-defined]
    assert two.usage.prompt_tokens == 2 * one.usage.prompt_tokens  # type: ignore[attr-defined]
    assert len(clawrap_server.requests("CHOICES")) == 3


@pytest.mark.clawrap(pool_size=2)
async def test_n_two_streamed_with_indices_and_summed_usage(clawrap_server: Clawrap) -> None:
    def run() -> tuple[dict[int, str], dict[int, str | None], object, int]:
        text: dict[int, str] = defaultdict(str)
        finish: dict[int, str | None] = {}
        usage = None
        chunks = 0
        with clawrap_server.openai() as client:
            stream = client.chat.completions.create(
                model="sonnet",
                messages=messages(),  # type: ignore[arg-type]
                n=2,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                chunks += 1
                if chunk.usage is not None:
                    assert chunk.choices == []
                    usage = chunk.usage
                for choice in chunk.choices:
                    text[choice.index] += choice.delta.content or ""
                    if choice.finish_reason is not None:
                        finish[choice.index] = choice.finish_reason
        return text, finish, usage, chunks

    with trio.fail_after(TEST_LIMIT):
        text, finish, usage, chunks = await in_thread(run)
    assert chunks >= 2 * 3 + 1  # a chunk per token per choice, and the usage
    assert dict(text) == {0: "tok1 tok2 tok3", 1: "tok1 tok2 tok3"}
    assert finish == {0: "stop", 1: "stop"}
    assert usage is not None and usage.completion_tokens == 6  # type: ignore[attr-defined]
    assert len(clawrap_server.requests("CHOICES")) == 2


async def test_n_above_the_cap_is_a_400(clawrap_server: Clawrap) -> None:
    import openai

    def run() -> None:
        with clawrap_server.openai() as client:
            client.chat.completions.create(model="sonnet", messages=messages(), n=9)  # type: ignore[arg-type]

    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.BadRequestError) as caught:
        await in_thread(run)
    assert caught.value.response.json()["error"]["param"] == "n"
    assert clawrap_server.requests("CHOICES") == []
