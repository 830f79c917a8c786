"""The Responses API's WebSocket mode, driven with trio-websocket against the real server."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap, wait_until
from trio_websocket import (
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
    wrap_client_stream,
)

from clawrap.scripted._model import Reply

pytestmark = [pytest.mark.e2e, SDK_READER_LEFT_OPEN]

DROP_LIMIT = 5.0  # a loaded 2-core machine misses 1.5 s; the dropped reply would run a minute


def ws_url(server: Clawrap) -> str:
    return server.url.replace("http://", "ws://") + "/v1/responses"


async def refusal(server: Clawrap, headers: list[tuple[str, str]]) -> ConnectionRejected:
    """The server's refusal of a handshake (on a stream this test closes itself: the client
    library leaves its own open when a handshake is refused)."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        with pytest.RaisesGroup(ConnectionRejected, allow_unwrapped=True) as caught:
            async with trio.open_nursery() as nursery:
                await wrap_client_stream(
                    nursery, stream, host, "/v1/responses", extra_headers=headers
                )
    rejected = (
        caught.value.exceptions[0] if isinstance(caught.value, BaseExceptionGroup) else caught.value
    )
    assert isinstance(rejected, ConnectionRejected)
    return rejected


async def create(ws: WebSocketConnection, **fields: Any) -> list[dict[str, Any]]:
    """Send one response.create and read its events up to the last."""
    await ws.send_message(json.dumps({"type": "response.create", "model": "sonnet", **fields}))
    events: list[dict[str, Any]] = []
    while True:
        events.append(json.loads(await ws.get_message()))
        if events[-1]["type"] in ("response.completed", "response.failed", "error"):
            return events


async def test_two_responses_on_one_socket_continue_without_storing(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("WSONE", Reply(text="First answer."))
    clawrap_server.model.when("WSTWO", Reply(text="Second answer."))
    with trio.fail_after(TEST_LIMIT):
        async with open_websocket_url(ws_url(clawrap_server)) as ws:
            first = await create(ws, input="WSONE", store=False, instructions="Short.")
            response_id = first[-1]["response"]["id"]
            second = await create(
                ws,
                input=[{"role": "user", "content": "WSTWO"}],
                previous_response_id=response_id,
                store=False,
                instructions="Short.",
            )
    assert [e["type"] for e in first][:2] == ["response.created", "response.in_progress"]
    assert [e["sequence_number"] for e in first] == list(range(len(first)))
    assert first[-1]["response"]["output"][0]["content"][0]["text"] == "First answer."
    assert second[-1]["type"] == "response.completed"
    assert second[-1]["response"]["previous_response_id"] == response_id
    upstream = clawrap_server.requests("WSTWO")[-1]
    assert "WSONE" in upstream.text and "First answer." in upstream.text
    assert clawrap_server.pool_status()["continued"] == 1  # warm, on the parked process


async def test_errors_come_as_error_messages_and_the_socket_stays_open(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("WSAFTER", Reply(text="Still here."))
    with trio.fail_after(TEST_LIMIT):
        async with open_websocket_url(ws_url(clawrap_server)) as ws:
            await ws.send_message("not json")
            bad = json.loads(await ws.get_message())
            unknown = await create(ws, input="x", previous_response_id="resp_unknown")
            after = await create(ws, input="WSAFTER")
    assert bad["type"] == "error" and bad["status"] == 400
    assert unknown[-1]["status"] == 404
    assert unknown[-1]["error"]["param"] == "previous_response_id"
    assert after[-1]["type"] == "response.completed"


@pytest.mark.clawrap(api_key="sekrit")
async def test_a_socket_needs_the_key_and_a_foreign_origin_is_refused_before_upgrade(
    clawrap_server: Clawrap,
) -> None:
    url = ws_url(clawrap_server)
    key = ("Authorization", "Bearer sekrit")
    with trio.fail_after(TEST_LIMIT):
        no_key = await refusal(clawrap_server, [])
        foreign = await refusal(clawrap_server, [key, ("Origin", "https://evil.example")])
        async with open_websocket_url(url, extra_headers=[key]) as ws:
            events = await create(ws, input="hello")
    assert no_key.status_code == 401
    assert foreign.status_code == 403
    assert b"origin" in (foreign.body or b"")
    assert events[-1]["type"] == "response.completed"


async def test_closing_the_socket_mid_response_stops_the_upstream_generation(
    clawrap_server: Clawrap,
) -> None:
    # A reply that would take a minute to finish: only stopping the CLI ends it sooner.
    clawrap_server.model.when("WSDROP", Reply(tokens=1200, delay=0.05))
    with trio.fail_after(TEST_LIMIT):
        async with open_websocket_url(ws_url(clawrap_server)) as ws:
            message = {"type": "response.create", "model": "sonnet", "input": "WSDROP"}
            await ws.send_message(json.dumps(message))
            seen = 0
            while seen < 3:
                event = json.loads(await ws.get_message())
                seen += event["type"] == "response.output_text.delta"
    with trio.fail_after(DROP_LIMIT):
        await wait_until(lambda: clawrap_server.upstream.open_responses == 0)
        await wait_until(lambda: clawrap_server.pool_status()["busy"] == 0)
        await wait_until(lambda: clawrap_server.stray_cli_pids() == [])


async def test_a_warm_up_without_generation_is_continued_with_the_new_items(
    clawrap_server: Clawrap,
) -> None:
    clawrap_server.model.when("WSWARM", Reply(text="Warmed."))
    developer = {"role": "developer", "content": "You are terse."}
    with trio.fail_after(TEST_LIMIT):
        async with open_websocket_url(ws_url(clawrap_server)) as ws:
            warm = await create(ws, input=[developer], store=False, generate=False)
            answer = await create(
                ws,
                input=[{"role": "user", "content": "WSWARM"}],
                previous_response_id=warm[-1]["response"]["id"],
                store=False,
            )
    assert warm[-1]["type"] == "response.completed"
    assert warm[-1]["response"]["output"] == []
    assert answer[-1]["response"]["output"][0]["content"][0]["text"] == "Warmed."
    [upstream] = clawrap_server.requests("WSWARM")
    assert "You are terse." in upstream.system_text
    # The warm-up reached no model: the one request with its system text is the answer's.
    assert len(clawrap_server.model.requests_matching("You are terse.")) == 1
