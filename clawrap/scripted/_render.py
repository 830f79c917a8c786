"""A scripted reply as the Messages API puts it on the wire (sans-IO).

:func:`render_message` gives a non-streaming response body, :func:`render_stream` the SSE events
from ``message_start`` to ``message_stop`` (text, thinking and tool input streamed in pieces),
:func:`render_error` Anthropic's error shape. Both renderings carry the same content.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from clawrap.protocol._sse import sse_event
from clawrap.scripted._reply import Reply, split_words

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def estimate_tokens(body: Any) -> int:
    """A rough input token count: about four characters per token."""
    parts = [body.get(k) for k in ("system", "messages", "tools")] if isinstance(body, dict) else []
    return max(1, len(json.dumps(parts, ensure_ascii=False, default=str)) // 4)


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One Messages API stream event."""

    type: str
    data: dict[str, Any]

    @property
    def is_delta(self) -> bool:
        return self.type == "content_block_delta"

    def encode(self) -> bytes:
        return sse_event(self.type, self.data)


def new_message_id() -> str:
    return f"msg_scripted_{uuid.uuid4().hex[:24]}"


def resolve_tool_name(name: str, body: Any) -> str:
    """The request's full tool name for ``name`` (``mcp__server__name``), else ``name``."""
    tools = body.get("tools") if isinstance(body, dict) else None
    names = [t.get("name") for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    if name in names:
        return name
    for candidate in names:
        if isinstance(candidate, str) and candidate.endswith(f"__{name}"):
            return candidate
    return name


def split_json(text: str, pieces: int = 3) -> list[str]:
    """``text`` cut into up to ``pieces`` chunks, as the API streams tool input."""
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _blocks(reply: Reply, body: Any) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each content block as (its final form, its deltas)."""
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if reply.thinking is not None:
        parts = split_words(reply.thinking)
        deltas = [{"type": "thinking_delta", "thinking": p} for p in parts]
        deltas.append({"type": "signature_delta", "signature": reply.signature})
        final = {"type": "thinking", "thinking": reply.thinking, "signature": reply.signature}
        blocks.append((final, deltas))
    text_parts = reply.text_deltas()
    if text_parts or not reply.tool_uses:
        deltas = [{"type": "text_delta", "text": p} for p in text_parts]
        blocks.append(({"type": "text", "text": "".join(text_parts)}, deltas))
    for tool in reply.tool_uses:
        tool_id = tool.id or f"toolu_scripted_{uuid.uuid4().hex[:20]}"
        name = resolve_tool_name(tool.name, body)
        raw = json.dumps(tool.input, ensure_ascii=False)
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in split_json(raw)]
        blocks.append(
            ({"type": "tool_use", "id": tool_id, "name": name, "input": tool.input}, deltas)
        )
    return blocks


def _usage(reply: Reply, body: Any, blocks: list[Any]) -> tuple[int, int]:
    counted = sum(1 for _, ds in blocks for d in ds if d["type"] != "signature_delta")
    input_tokens = reply.input_tokens if reply.input_tokens is not None else estimate_tokens(body)
    output = reply.output_tokens if reply.output_tokens is not None else counted
    return input_tokens, output


def _stop_reason(reply: Reply) -> str:
    return reply.stop_reason or ("tool_use" if reply.tool_uses else "end_turn")


def _model_name(body: Any) -> str:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else "claude-scripted"


def render_message(reply: Reply, body: Any, message_id: str | None = None) -> dict[str, Any]:
    """The reply as a non-streaming Messages API response body."""
    blocks = _blocks(reply, body)
    input_tokens, output_tokens = _usage(reply, body, blocks)
    return {
        "id": message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": _model_name(body),
        "content": [final for final, _ in blocks],
        "stop_reason": _stop_reason(reply),
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def render_stream(reply: Reply, body: Any, message_id: str | None = None) -> list[SseEvent]:
    """The reply as the Messages API stream events, message_start to message_stop."""
    blocks = _blocks(reply, body)
    input_tokens, output_tokens = _usage(reply, body, blocks)
    start = render_message(reply, body, message_id)
    start.update(content=[], stop_reason=None)
    start["usage"] = {"input_tokens": input_tokens, "output_tokens": 1}
    events = [SseEvent("message_start", {"type": "message_start", "message": start})]
    for index, (final, deltas) in enumerate(blocks):
        opening = dict(final)
        if final["type"] == "text":
            opening["text"] = ""
        elif final["type"] == "thinking":
            opening.update(thinking="", signature="")
        else:
            opening["input"] = {}
        events.append(
            SseEvent(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        for delta in deltas:
            events.append(
                SseEvent(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(
            SseEvent("content_block_stop", {"type": "content_block_stop", "index": index})
        )
    events.append(
        SseEvent(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    events.append(SseEvent("message_stop", {"type": "message_stop"}))
    return events


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """Anthropic's error shape."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def render_error(reply: Reply) -> dict[str, Any]:
    """The error body for a failing reply (HTTP error or mid-stream ``error`` event)."""
    status = reply.status if reply.is_error else 529
    error_type = reply.error_type or _ERROR_TYPES.get(status, "api_error")
    return error_body(error_type, reply.message or f"scripted {error_type}")


__all__ = [
    "SseEvent",
    "error_body",
    "estimate_tokens",
    "new_message_id",
    "render_error",
    "render_message",
    "render_stream",
    "resolve_tool_name",
    "split_json",
]
