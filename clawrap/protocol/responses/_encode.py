"""Internal events -> Responses API output (sans-IO): SSE stream, JSON body, errors.

The stream follows what real clients require: ``response.created`` first, an
increasing ``sequence_number`` on every event, items as :mod:`._items` lays them
out, and a last ``response.completed`` (or ``response.incomplete`` when
``max_output_tokens`` cut the reply, or ``response.failed`` with an error code)
whose ``response`` holds every output item in full: openai-node replaces its
accumulated state with it, and openai-agents builds its result from it alone.
The collector runs the same item machine, so a JSON body equals the final
response of a stream.
"""

from __future__ import annotations

import time
from typing import Any

from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event, FinishReason, Usage
from clawrap.protocol._sse import sse_comment, sse_event
from clawrap.protocol.openai._encode import error_body
from clawrap.protocol.responses._decode import Outcome, ResponsesOptions
from clawrap.protocol.responses._items import OutputItems

# Error codes openai-python's ResponseError accepts; the rest are reported as server_error.
_FAILED_CODES = frozenset(
    {"server_error", "rate_limit_exceeded", "invalid_prompt", "invalid_image", "image_too_large"}
)
# Codes clients (Codex) act on, passed as they are.
_ACTIONABLE_CODES = frozenset({"context_length_exceeded", "insufficient_quota"})


def usage_object(usage: Usage | None) -> dict[str, Any]:
    """Responses API usage; cached and cache-writing input count as input tokens."""
    u = usage or Usage(input_tokens=0, output_tokens=0)
    total_in = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens
    return {
        "input_tokens": total_in,
        "input_tokens_details": {
            "cached_tokens": u.cache_read_input_tokens,
            "cache_write_tokens": u.cache_creation_input_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": total_in + u.output_tokens,
    }


def failure_code(error: ClawrapError) -> str:
    """``error.code`` of a ``response.failed``: what clients act on."""
    if error.code in _ACTIONABLE_CODES or error.code in _FAILED_CODES:
        return str(error.code)
    return "rate_limit_exceeded" if error.kind == "rate_limit" else "server_error"


def response_object(
    options: ResponsesOptions,
    status: str,
    output: list[dict[str, Any]],
    *,
    usage: dict[str, Any] | None = None,
    error: ClawrapError | None = None,
    incomplete: str | None = None,
) -> dict[str, Any]:
    """A ``Response`` object in ``status`` with ``output``."""
    echo = options.echo
    body: dict[str, Any] = {
        "id": options.response_id,
        "object": "response",
        "created_at": options.created_at,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": options.model,
        "output": output,
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": options.previous_response_id,
        "prompt_cache_key": echo.get("prompt_cache_key"),
        "reasoning": echo.get("reasoning", {"effort": None, "summary": None}),
        "safety_identifier": None,
        "service_tier": "default",
        "store": options.store,
        "temperature": echo.get("temperature"),
        "text": echo.get("text", {"format": {"type": "text"}}),
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools", []),
        "top_logprobs": 0,
        "top_p": echo.get("top_p"),
        "truncation": echo.get("truncation", "disabled"),
        "usage": usage,
        "user": echo.get("user"),
        "metadata": echo.get("metadata", {}),
    }
    if status in ("completed", "incomplete"):
        body["completed_at"] = int(time.time()) if status == "completed" else None
    if error is not None:
        body["error"] = {"code": failure_code(error), "message": error.message}
    if incomplete is not None:
        body["incomplete_details"] = {"reason": incomplete}
    return body


def _end(reason: FinishReason | None) -> tuple[str, str | None]:
    """(status, incomplete reason) for how the reply finished."""
    if reason == "max_tokens":
        return "incomplete", "max_output_tokens"
    if reason == "refusal":
        return "incomplete", "content_filter"
    return "completed", None


def final_response(items: OutputItems) -> dict[str, Any]:
    """The finished response of ``items`` (its open item closed first)."""
    items.close()
    status, incomplete = _end(items.finished.reason if items.finished else None)
    return response_object(
        items.options,
        status,
        [dict(i) for i in items.output],
        usage=usage_object(items.usage),
        incomplete=incomplete,
    )


def _report(items: OutputItems, response: dict[str, Any]) -> None:
    if items.options.on_complete is not None:
        full = tuple(
            i | {"encrypted_content": items.blocks[i["id"]]} if i["id"] in items.blocks else i
            for i in response["output"]
        )
        items.options.on_complete(Outcome(response, items.recorder.turn(), full))


class ResponsesStreamEncoder:
    """Internal events -> the Responses API event stream (SSE)."""

    def __init__(self, options: ResponsesOptions) -> None:
        self.options = options
        self.items = OutputItems(options)
        self._sequence = 0
        self._started = False
        self._done = False

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` numbered: the next ``sequence_number``."""
        event["sequence_number"] = self._sequence
        self._sequence += 1
        return event

    def _frame(self, events: list[dict[str, Any]]) -> bytes:
        return b"".join(sse_event(e["type"], self.event(e)) for e in events)

    def start_events(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        response = response_object(self.options, "in_progress", [])
        return [
            {"type": "response.created", "response": response},
            {"type": "response.in_progress", "response": dict(response)},
        ]

    def start(self) -> bytes:
        return self._frame(self.start_events())

    def encode(self, event: Event) -> bytes:
        if self._done:
            return b""
        return self._frame(self.start_events() + self.items.feed(event))

    def finish_events(self) -> list[dict[str, Any]]:
        if self._done:
            return []
        out = self.start_events() + self.items.close()
        self._done = True
        response = final_response(self.items)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        _report(self.items, response)
        return [*out, {"type": kind, "response": response}]

    def finish(self) -> bytes:
        return self._frame(self.finish_events())

    def error_events(self, error: ClawrapError) -> list[dict[str, Any]]:
        if self._done:
            return []
        out = self.start_events() + self.items.close()
        self._done = True
        output = [dict(i) for i in self.items.output]
        response = response_object(
            self.options, "failed", output, usage=usage_object(self.items.usage), error=error
        )
        return [*out, {"type": "response.failed", "response": response}]

    def error(self, error: ClawrapError) -> bytes:
        return self._frame(self.error_events(error))

    def keepalive(self) -> bytes:
        return b"" if self._done else sse_comment("keepalive")


class ResponsesCollector:
    """Internal events -> one ``Response`` body."""

    def __init__(self, options: ResponsesOptions) -> None:
        self.items = OutputItems(options)

    def add(self, event: Event) -> None:
        self.items.feed(event)

    def body(self) -> dict[str, Any]:
        response = final_response(self.items)
        _report(self.items, response)
        return response


__all__ = [
    "ResponsesCollector",
    "ResponsesStreamEncoder",
    "error_body",
    "failure_code",
    "final_response",
    "response_object",
    "usage_object",
]
