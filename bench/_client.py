"""Streaming chat completion clients, timed: the ``openai`` SDK, and raw h11 over trio sockets.

The ``openai`` client (``AsyncOpenAI``, which runs under trio through httpx and anyio) is what
IDE tools use, so it is what every scenario measures with. The raw h11 client exists to check
that the SDK adds little of its own: both are timed against a canned in-process stream
(:mod:`bench._canned`) and against clawrap.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import h11
import openai
import trio

Messages = list[dict[str, Any]]


@dataclass
class Timed:
    """One streamed reply. Times are seconds from just before the request was sent."""

    first: float | None = None  # first chunk carrying text
    total: float | None = None  # last byte of the stream
    chunks: int = 0  # every chunk parsed
    text_chunks: int = 0  # chunks carrying text
    text: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.total is not None


def expected_tokens(n: int) -> str:
    """The scripted model's exact text for ``{"tokens": n}`` (see ``Reply.text_deltas``)."""
    return " ".join(f"tok{i}" for i in range(1, n + 1))


def directive(tokens: int, delay: float = 0.0) -> str:
    spec: dict[str, Any] = {"tokens": tokens}
    if delay:
        spec["delay"] = delay
    return f"[[mock:{json.dumps(spec)}]]"


def make_openai(base_url: str, api_key: str) -> openai.AsyncOpenAI:
    # No retries: a failure is a figure to report, not something to hide.
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60.0)


async def stream_openai(
    client: openai.AsyncOpenAI,
    model: str,
    messages: Messages,
    *,
    pause_after: int | None = None,
    pause: Callable[[], Awaitable[None]] | None = None,
) -> Timed:
    """Stream one reply. With ``pause_after``, after that many text chunks await ``pause()`` and
    then close the stream without reading the rest (a client that goes away mid-reply)."""
    out = Timed()
    t0 = time.perf_counter()
    try:
        stream = await client.chat.completions.create(
            model=model,
            messages=cast(Any, messages),  # plain dicts, as JSON clients send them
            stream=True,
        )
        async with stream:
            async for chunk in stream:
                out.chunks += 1
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    if out.first is None:
                        out.first = time.perf_counter() - t0
                    out.text_chunks += 1
                    out.text += piece
                    if pause_after is not None and out.text_chunks >= pause_after:
                        if pause is not None:
                            await pause()
                        out.error = "dropped"
                        return out  # leaving `async with` closes the connection
        out.total = time.perf_counter() - t0
    except openai.APIError as exc:
        out.error = f"{type(exc).__name__}: {str(exc)[:120]}"
    return out


async def stream_raw(base_url: str, api_key: str, model: str, messages: Messages) -> Timed:
    """The same request over a fresh TCP connection with h11: no client library at all."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = json.dumps({"model": model, "messages": messages, "stream": True}).encode()
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="POST",
        target=parts.path.rstrip("/") + "/chat/completions",
        headers=[
            ("host", f"{host}:{port}"),
            ("content-type", "application/json"),
            ("authorization", f"Bearer {api_key}"),
            ("content-length", str(len(body))),
            ("connection", "close"),
        ],
    )
    out = Timed()
    t0 = time.perf_counter()
    try:
        await _exchange_raw(host, port, conn, request, body, out, t0)
    except (OSError, trio.BrokenResourceError, h11.ProtocolError, ValueError) as exc:
        out.error = f"{type(exc).__name__}: {str(exc)[:120]}"
        return out
    if out.error is None:
        out.total = time.perf_counter() - t0
    return out


async def _exchange_raw(
    host: str,
    port: int,
    conn: h11.Connection,
    request: h11.Request,
    body: bytes,
    out: Timed,
    t0: float,
) -> None:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(conn.send(request) + conn.send(h11.Data(data=body)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        buffer = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
                continue
            if isinstance(event, h11.Response) and event.status_code != 200:
                out.error = f"HTTP {event.status_code}"
            elif isinstance(event, h11.Data):
                buffer += event.data
                *events, buffer = buffer.split(b"\n\n")
                for raw in events:
                    _take_sse(raw, out, t0)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return


def _take_sse(raw: bytes, out: Timed, t0: float) -> None:
    for line in raw.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        chunk = json.loads(data)
        out.chunks += 1
        choices = chunk.get("choices") or []
        piece = choices[0].get("delta", {}).get("content") if choices else None
        if piece:
            if out.first is None:
                out.first = time.perf_counter() - t0
            out.text_chunks += 1
            out.text += piece
