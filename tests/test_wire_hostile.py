"""The server on a real socket under hostile or careless clients: framing, closing, slowness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from scripted_backend import ScriptedBackend
from wire import Wire, open_files, post, read_to_eof, status_of, wire_server

from clawrap.core._events import Finished, TextDelta, Usage

HELLO = [TextDelta("Hello"), TextDelta(" there"), Usage(5, 2), Finished("end_turn")]
LIMIT = 10.0


@pytest.fixture
async def wire(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Wire]:
    async with wire_server(nursery, tmp_path, ScriptedBackend(HELLO)) as server:
        yield server


@pytest.mark.parametrize("stream", [False, True])
async def test_a_completion_on_connection_close_ends_with_the_socket_closed(
    wire: Wire, stream: bool
) -> None:
    body = b'{"model":"sonnet","stream":%s,"messages":[{"role":"user","content":"hi"}]}' % (
        b"true" if stream else b"false"
    )
    with trio.fail_after(LIMIT):
        response = await wire.exchange(post(body=body, headers={"Connection": "close"}))
    assert status_of(response) == 200
    assert b"Hello" in response


async def test_a_completion_over_http_1_0_ends_with_the_socket_closed(wire: Wire) -> None:
    with trio.fail_after(LIMIT):
        response = await wire.exchange(post(version="HTTP/1.0"))
    assert status_of(response) == 200
    assert b"Hello there" in response


async def test_a_keep_alive_connection_serves_a_second_completion(wire: Wire) -> None:
    with trio.fail_after(LIMIT):
        stream = await wire.connect()
        async with stream:
            await stream.send_all(post() + post(headers={"Connection": "close"}))
            response = await read_to_eof(stream)
    assert response.count(b"HTTP/1.1 200") == 2


async def test_completions_on_connection_close_leave_no_open_files(wire: Wire) -> None:
    request = post(headers={"Connection": "close"})
    with trio.fail_after(LIMIT * 3):
        await wire.exchange(request)  # the first request opens what the server keeps open
        before = open_files()
        for _ in range(200):
            await wire.exchange(request)
        after = open_files()
    assert after <= before
