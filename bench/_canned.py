"""A canned OpenAI-style stream served in-process: the floor of what a client can measure.

It answers every ``POST .../chat/completions`` at once with the same pre-encoded SSE stream
(a role chunk, ``n`` text chunks ``tok1 tok2 ...``, a finish chunk, ``[DONE]``), so timing a
client against it shows the client's own cost per request and per chunk.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import h11
import trio

from ._client import expected_tokens


def canned_stream(tokens: int) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {
            "id": "chatcmpl-canned",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "canned",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    pieces = expected_tokens(tokens).replace(" ", "\0 ").split("\0")
    return [
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": p}) for p in pieces),
        chunk({}, "stop"),
        b"data: [DONE]\n\n",
    ]


async def _handle(stream: trio.SocketStream, events: list[bytes]) -> None:
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                if not data:
                    return
            elif isinstance(event, h11.EndOfMessage):
                headers = [("content-type", "text/event-stream"), ("transfer-encoding", "chunked")]
                await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)))
                for raw in events:  # one write per chunk, as a streaming server does
                    await stream.send_all(conn.send(h11.Data(data=raw)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return


async def serve_canned(
    tokens: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the canned stream on a free loopback port until cancelled; reports the port."""
    events = canned_stream(tokens)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port: int = listeners[0].socket.getsockname()[1]

    async def handler(stream: trio.SocketStream) -> None:
        # A client that goes away mid-answer needs nothing more.
        with contextlib.suppress(trio.BrokenResourceError, h11.RemoteProtocolError):
            await _handle(stream, events)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(port)
