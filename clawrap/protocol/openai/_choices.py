"""Several choices (``n`` > 1) of one chat completion: one stream or body from n runs (sans-IO).

Each choice is encoded by its own :class:`~clawrap.protocol.openai._encode.ChatStreamEncoder`
or :class:`~clawrap.protocol.openai._encode.ChatCollector` with its ``index``; all share
the completion's id, ``created`` and ``model``. The stream's usage chunk and ``[DONE]``
come once, after every choice has finished; usage is the sum over the runs.
"""

from __future__ import annotations

from typing import Any

from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event, Usage
from clawrap.protocol._sse import DONE, sse_comment, sse_data
from clawrap.protocol.openai._decode import ChatWireOptions
from clawrap.protocol.openai._encode import (
    ChatCollector,
    ChatStreamEncoder,
    error_object,
    usage_object,
)


def sum_usage(usages: list[Usage | None]) -> Usage | None:
    """The runs' usage added up (None when no run reported any)."""
    known = [u for u in usages if u is not None]
    if not known:
        return None
    costs = [u.cost_usd for u in known if u.cost_usd is not None]
    return Usage(
        input_tokens=sum(u.input_tokens for u in known),
        output_tokens=sum(u.output_tokens for u in known),
        cache_read_input_tokens=sum(u.cache_read_input_tokens for u in known),
        cache_creation_input_tokens=sum(u.cache_creation_input_tokens for u in known),
        cost_usd=sum(costs) if costs else None,
    )


class ChoicesStreamEncoder:
    """n choices in one SSE stream, each chunk carrying its choice's index."""

    def __init__(self, options: ChatWireOptions, n: int) -> None:
        self._options = options
        self.choices = [ChatStreamEncoder(options, i, terminal=False) for i in range(n)]
        self._done = False

    def start(self) -> bytes:
        return b"".join(choice.start() for choice in self.choices)

    def encode(self, index: int, event: Event) -> bytes:
        return b"" if self._done else self.choices[index].encode(event)

    def finish(self) -> bytes:
        if self._done:
            return b""
        out = b"".join(choice.finish() for choice in self.choices)
        self._done = True
        if self._options.include_usage:
            usage = sum_usage([choice.usage for choice in self.choices])
            out += sse_data(
                {
                    "id": self._options.completion_id,
                    "object": "chat.completion.chunk",
                    "created": self._options.created,
                    "model": self._options.model,
                    "choices": [],
                    "usage": usage_object(usage),
                }
            )
        return out + DONE

    def error(self, error: ClawrapError) -> bytes:
        if self._done:
            return b""
        self._done = True
        return sse_data({"error": error_object(error)}) + DONE

    def keepalive(self) -> bytes:
        return b"" if self._done else sse_comment("keepalive")


class ChoicesCollector:
    """n choices in one ``chat.completion`` body, usage summed."""

    def __init__(self, options: ChatWireOptions, n: int) -> None:
        self.choices = [ChatCollector(options, i) for i in range(n)]

    def add(self, index: int, event: Event) -> None:
        self.choices[index].add(event)

    def body(self) -> dict[str, Any]:
        bodies = [choice.body() for choice in self.choices]
        body = bodies[0]
        body["choices"] = [b["choices"][0] for b in bodies]
        body["usage"] = usage_object(sum_usage([choice.usage for choice in self.choices]))
        return body


__all__ = ["ChoicesCollector", "ChoicesStreamEncoder", "sum_usage"]
