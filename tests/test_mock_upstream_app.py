"""The scripted model's ASGI app called directly: pacing, stalls and drops on a virtual clock."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from clawrap.scripted._mock_upstream import MockUpstreamApp
from clawrap.scripted._model import Reply, ScriptedModel

Message = dict[str, Any]


class Exchange:
    """One request to the app: what it sent back, and when (on trio's clock)."""

    def __init__(self, body: Any) -> None:
        self.request = json.dumps(body).encode()
        self.sent: list[tuple[float, Message]] = []
        self.client_gone = trio.Event()
        self._read = False

    async def receive(self) -> Message:
        if not self._read:
            self._read = True
            return {"type": "http.request", "body": self.request, "more_body": False}
        await self.client_gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append((trio.current_time(), message))

    @property
    def chunks(self) -> list[tuple[float, bytes]]:
        return [(t, m["body"]) for t, m in self.sent if m["type"] == "http.response.body"]

    @property
    def finished(self) -> bool:
        return any(
            m["type"] == "http.response.body" and not m.get("more_body", False)
            for _, m in self.sent
        )

    def delta_times(self) -> list[float]:
        return [t for t, body in self.chunks if b"content_block_delta" in body]


def scope(path: str = "/v1/messages") -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": []}


def streaming(text: str = "hello") -> dict[str, Any]:
    return {"model": "m", "stream": True, "messages": [{"role": "user", "content": text}]}


async def test_deltas_are_paced_by_first_delay_then_delay(autojump_clock: Any) -> None:
    model = ScriptedModel()
    model.when("hello", Reply(tokens=3, first_delay=1.0, delay=0.25))
    exchange = Exchange(streaming())
    start = trio.current_time()
    await MockUpstreamApp(model)(scope(), exchange.receive, exchange.send)
    assert [t - start for t in exchange.delta_times()] == pytest.approx([1.0, 1.25, 1.5])
    assert exchange.finished


async def test_a_stalled_stream_hangs_until_the_client_leaves(autojump_clock: Any) -> None:
    model = ScriptedModel()
    model.when("hello", Reply(tokens=5, stall_after=2))
    exchange = Exchange(streaming())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(MockUpstreamApp(model), scope(), exchange.receive, exchange.send)
        await trio.sleep(3600)
        assert len(exchange.delta_times()) == 2
        assert not exchange.finished
        exchange.client_gone.set()
    assert len(exchange.delta_times()) == 2
    assert not exchange.finished


async def test_a_dropped_stream_ends_without_finishing_the_body() -> None:
    model = ScriptedModel()
    model.when("hello", Reply(tokens=5, drop_after=3))
    exchange = Exchange(streaming())
    with trio.fail_after(5):
        await MockUpstreamApp(model)(scope(), exchange.receive, exchange.send)
    assert len(exchange.delta_times()) == 3
    assert not exchange.finished


async def test_a_paced_json_reply_waits_as_long_as_its_stream_would(autojump_clock: Any) -> None:
    model = ScriptedModel()
    model.when("hello", Reply(tokens=5, first_delay=2.0, delay=0.5))
    exchange = Exchange({"model": "m", "messages": [{"role": "user", "content": "hello"}]})
    start = trio.current_time()
    await MockUpstreamApp(model)(scope(), exchange.receive, exchange.send)
    ((sent_at, body),) = exchange.chunks
    assert sent_at - start == pytest.approx(4.0)
    assert json.loads(body)["content"][0]["text"] == "tok1 tok2 tok3 tok4 tok5"


async def test_the_app_answers_lifespan_startup_and_shutdown() -> None:
    events = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Message] = []

    async def receive() -> Message:
        return next(events)

    async def send(message: Message) -> None:
        sent.append(message)

    with trio.fail_after(5):
        await MockUpstreamApp(ScriptedModel())({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
