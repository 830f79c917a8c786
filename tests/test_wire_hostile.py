"""The server on a real socket under hostile or careless clients: framing, closing, slowness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from scripted_backend import ScriptedBackend
from wire import CHAT as CHAT_BODY
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


# -- framing --------------------------------------------------------------------------------


async def test_an_http_2_0_request_line_is_505(wire: Wire) -> None:
    with trio.fail_after(LIMIT):
        response = await wire.exchange(post(version="HTTP/2.0"))
    assert status_of(response) == 505
    assert wire.backend.runs == 0


async def test_a_request_framed_by_both_length_and_chunks_is_answered_then_closed(
    wire: Wire,
) -> None:
    body = CHAT_BODY
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    request = post(body=chunked, headers={"Transfer-Encoding": "chunked", "Content-Length": "5"})
    with trio.fail_after(LIMIT):
        # A second request follows on the same connection; it must not be answered.
        response = await wire.exchange(request + post())
    assert status_of(response) == 200
    assert response.count(b"HTTP/1.1 ") == 1
    assert b"connection: close" in response.lower()


@pytest.mark.parametrize(
    "host", ["127.0.0.1:80@evil.example", "127.0.0.1/x", "127.0.0.1 evil.example", "::1"]
)
async def test_a_malformed_host_is_refused(wire: Wire, host: str) -> None:
    with trio.fail_after(LIMIT):
        response = await wire.exchange(post(headers={"Host": host, "Connection": "close"}))
    assert status_of(response) == 400
    assert b"invalid_host" in response
    assert wire.backend.runs == 0


@pytest.mark.parametrize("size", [70 * 1024, 120 * 1024])
async def test_a_header_block_over_64_kib_is_431(wire: Wire, size: int) -> None:
    padding = {f"X-Pad-{i}": "p" * 1000 for i in range(size // 1024)}
    with trio.fail_after(LIMIT):
        response = await wire.exchange(post(headers=padding))
    assert status_of(response) == 431
    assert wire.backend.runs == 0


async def test_a_header_block_under_64_kib_is_served(wire: Wire) -> None:
    padding = {f"X-Pad-{i}": "p" * 1000 for i in range(50)}
    with trio.fail_after(LIMIT):
        response = await wire.exchange(post(headers={**padding, "Connection": "close"}))
    assert status_of(response) == 200


# -- slow clients ------------------------------------------------------------------------------


async def test_a_body_that_does_not_arrive_in_time_is_408_and_the_connection_closed(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with wire_server(nursery, tmp_path, ScriptedBackend(HELLO), body_timeout=0.5) as wire:
        with trio.fail_after(LIMIT):
            stream = await wire.connect()
            async with stream:
                request = post()
                await stream.send_all(request[:-10])  # the body's last bytes never come
                response = await read_to_eof(stream)
    assert status_of(response) == 408
    assert b"CLAWRAP_BODY_TIMEOUT" in response
    assert wire.backend.runs == 0


async def test_headers_that_do_not_arrive_in_time_end_the_connection(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with wire_server(nursery, tmp_path, ScriptedBackend(HELLO), header_timeout=0.5) as wire:
        with trio.fail_after(LIMIT):
            stream = await wire.connect()
            async with stream:
                await stream.send_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                response = await read_to_eof(stream)
    assert response == b""


async def test_clients_leaving_as_a_413_is_written_cause_no_traceback(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A 21 MiB body is refused on its declared length; the client reads the first bytes of
    # the answer and closes. hypercorn then closes its end from its reading task while the
    # app may still be writing the answer's body: two tasks on one stream.
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {21 * 1024 * 1024}\r\n\r\n"
    ).encode()
    async with wire_server(nursery, tmp_path, ScriptedBackend(HELLO)) as wire:
        with trio.fail_after(LIMIT * 3):
            for _ in range(200):
                stream = await wire.connect()
                async with stream:
                    await stream.send_all(head + b"x" * 200_000)
                    assert status_of(await stream.receive_some(12)) == 413
    assert "BusyResourceError" not in caplog.text
    assert "Traceback" not in caplog.text


async def test_connections_past_the_bound_are_answered_503_and_closed(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with wire_server(nursery, tmp_path, ScriptedBackend(HELLO), max_connections=3) as wire:
        with trio.fail_after(LIMIT):
            held = [await wire.connect() for _ in range(3)]
            # The three are served: each answers a request and stays open (keep-alive).
            for stream in held:
                await stream.send_all(post())
                assert status_of(await stream.receive_some()) == 200
            refused = await wire.exchange(post())
            assert status_of(refused) == 503
            assert b"CLAWRAP_MAX_CONNECTIONS" in refused
            await held.pop().aclose()
            await wait_for_room(wire)
            for stream in held:
                await stream.aclose()


async def wait_for_room(wire: Wire) -> None:
    """Until a new connection is served again (the server notices a close asynchronously)."""
    while status_of(await wire.exchange(post(headers={"Connection": "close"}))) != 200:
        await trio.lowlevel.checkpoint()
