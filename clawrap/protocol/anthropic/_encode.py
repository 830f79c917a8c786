"""Internal events -> Anthropic Messages API output (sans-IO): SSE stream, JSON body, errors.

The internal stream has implicit content blocks; :class:`_Blocks` turns it into
Anthropic's explicit ``content_block_start`` / ``content_block_delta`` /
``content_block_stop`` events. The stream encoder frames those events as SSE;
the collector applies the very same events the way a client would, so a JSON
body always equals what a client accumulates from the stream.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from typing import Any

from clawrap.core._errors import ClawrapError, ErrorKind
from clawrap.core._events import (
    AgentProgress,
    Event,
    Finished,
    FinishReason,
    InputTokens,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from clawrap.core._request import CompletionRequest
from clawrap.protocol._sse import sse_event

STOP_REASONS: dict[FinishReason, str] = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_calls": "tool_use",
    "refusal": "refusal",
}

ERROR_TYPES: dict[ErrorKind, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "method_not_allowed": "invalid_request_error",
    "conflict": "invalid_request_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "api_error": "api_error",
    "overloaded": "overloaded_error",
    "timeout": "timeout_error",
}

_NOTE_LIMIT = 120  # characters of an agent progress summary worth showing
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class AnthropicWireOptions:
    """What the encoders need beyond the request: the message id and the model to echo."""

    message_id: str
    model: str


def new_message_id() -> str:
    """An id shaped like Anthropic's (``msg_01`` + 22 base62 characters)."""
    return "msg_01" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def error_body(error: ClawrapError) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}``, as HTTP body or SSE payload."""
    return {"type": "error", "error": {"type": ERROR_TYPES[error.kind], "message": error.message}}


def progress_note(progress: AgentProgress) -> str:
    """A compact one-line note for Claude Code's own tool use, e.g. ``\\n[Read: a.py]\\n``."""
    summary = " ".join(progress.summary.split())
    if len(summary) > _NOTE_LIMIT:
        summary = summary[: _NOTE_LIMIT - 1] + "…"
    if progress.kind == "tool_use":
        return f"\n[{progress.name}: {summary}]\n" if summary else f"\n[{progress.name}]\n"
    return f"[{progress.name} result: {summary}]\n" if summary else ""


class _Blocks:
    """Internal events -> Anthropic content block events (plain dicts).

    At most one block is open. A text or thinking delta joins the open block
    of its kind or opens one; a tool call opens its own block; a signature
    ends its thinking block. Events after :class:`Finished` (other than
    :class:`Usage`) break the internal contract and are ignored, as are
    argument deltas for a tool call whose block is no longer open: Anthropic
    never interleaves blocks, and clients assume it.
    """

    def __init__(self) -> None:
        self.open_kind: str | None = None
        self.count = 0  # blocks started so far; the open block is count - 1
        self.tool_blocks: dict[int, int] = {}  # tool call index -> block index
        self.finished: Finished | None = None
        self.usage: Usage | None = None

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, Usage):
            self.usage = event
            return []
        if self.finished is not None:
            return []
        match event:
            case TextDelta(text=text):
                return self._delta("text", {"type": "text_delta", "text": text}) if text else []
            case AgentProgress():
                note = progress_note(event)
                return self._delta("text", {"type": "text_delta", "text": note}) if note else []
            case ReasoningDelta(text=text):
                delta = {"type": "thinking_delta", "thinking": text}
                return self._delta("thinking", delta) if text else []
            case ReasoningSignature(signature=signature):
                out = self._delta("thinking", {"type": "signature_delta", "signature": signature})
                return out + self.close()
            case ToolCallStart(index=index, id=call_id, name=name):
                block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
                out = self._start("tool_use", block)
                self.tool_blocks[index] = self.count - 1
                return out
            case ToolCallDelta(index=index, arguments=arguments):
                block_index = self.tool_blocks.get(index)
                if not arguments or self.open_kind != "tool_use" or block_index != self.count - 1:
                    return []
                delta = {"type": "input_json_delta", "partial_json": arguments}
                return [_delta_event(block_index, delta)]
            case Finished():
                self.finished = event
                return self.close()
        return []

    def close(self) -> list[dict[str, Any]]:
        """Stop the open block, if any."""
        if self.open_kind is None:
            return []
        self.open_kind = None
        return [{"type": "content_block_stop", "index": self.count - 1}]

    def _start(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        out = self.close()
        out.append({"type": "content_block_start", "index": self.count, "content_block": block})
        self.open_kind = kind
        self.count += 1
        return out

    def _delta(self, kind: str, delta: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.open_kind != kind:
            # The real API starts thinking blocks with an empty signature too; the SDK's
            # ThinkingBlock model requires the field.
            empty = {"type": "text", "text": ""} if kind == "text" else _EMPTY_THINKING
            out = self._start(kind, dict(empty))
        out.append(_delta_event(self.count - 1, delta))
        return out

    def stop(self) -> tuple[str, str | None]:
        """``(stop_reason, stop_sequence)``: end_turn when no Finished came."""
        if self.finished is None:
            return "end_turn", None
        return STOP_REASONS[self.finished.reason], self.finished.stop_sequence

    def usage_fields(self) -> dict[str, int]:
        """Usage as Anthropic spells it; zeros when the backend reported none."""
        u = self.usage or Usage(0, 0)
        return {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
        }


_EMPTY_THINKING = {"type": "thinking", "thinking": "", "signature": ""}


def _delta_event(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _frame(events: list[dict[str, Any]]) -> bytes:
    # Every event's ``event:`` name equals its JSON type: clients drop events without one.
    return b"".join(sse_event(e["type"], e) for e in events)


_PING = {"type": "ping"}


class AnthropicStreamEncoder:
    """Internal events -> the Messages API SSE stream, exactly as Anthropic sends it."""

    def __init__(self, request: CompletionRequest, options: AnthropicWireOptions) -> None:
        self._options = options
        self._blocks = _Blocks()
        self._done = False
        self._input_tokens = 0

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self._options.message_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self._options.model,
            "stop_reason": None,
            "stop_sequence": None,
            # The exchange sends this with the first event it encodes; the upstream's
            # count arrives before any content (InputTokens), so it is known by then.
            "usage": {"input_tokens": self._input_tokens, "output_tokens": 0},
        }
        return _frame([{"type": "message_start", "message": message}, _PING])

    def encode(self, event: Event) -> bytes:
        if isinstance(event, InputTokens):
            self._input_tokens = event.count
            return b""
        if self._done:
            return b""
        return _frame(self._blocks.feed(event))

    def finish(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        stop_reason, stop_sequence = self._blocks.stop()
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": self._blocks.usage_fields(),
        }
        return _frame([*self._blocks.close(), delta, {"type": "message_stop"}])

    def error(self, error: ClawrapError) -> bytes:
        # Anthropic ends an errored stream with the error event alone (no message_stop).
        if self._done:
            return b""
        self._done = True
        return sse_event("error", error_body(error))

    def keepalive(self) -> bytes:
        return sse_event("ping", _PING)


class AnthropicCollector:
    """Internal events -> one Message body.

    ``notes`` lists what had to be patched up (tool input that was not a JSON
    object), for the server's log; the client sees ``input: {}`` there.
    """

    def __init__(self, request: CompletionRequest, options: AnthropicWireOptions) -> None:
        self._options = options
        self._blocks = _Blocks()
        self._content: list[dict[str, Any]] = []
        self._json: dict[int, str] = {}
        self.notes: list[str] = []

    def add(self, event: Event) -> None:
        for op in self._blocks.feed(event):
            self._apply(op)

    def _apply(self, op: dict[str, Any]) -> None:
        if op["type"] == "content_block_start":
            self._content.append(dict(op["content_block"]))
            return
        if op["type"] != "content_block_delta":
            return
        index, delta = op["index"], op["delta"]
        block = self._content[index]
        match delta["type"]:
            case "text_delta":
                block["text"] += delta["text"]
            case "thinking_delta":
                block["thinking"] += delta["thinking"]
            case "signature_delta":
                block["signature"] = delta["signature"]
            case "input_json_delta":
                self._json[index] = self._json.get(index, "") + delta["partial_json"]

    def body(self) -> dict[str, Any]:
        for op in self._blocks.close():
            self._apply(op)
        content = [dict(block) for block in self._content]
        for index, raw in self._json.items():
            content[index]["input"] = self._tool_input(content[index], raw)
        stop_reason, stop_sequence = self._blocks.stop()
        return {
            "id": self._options.message_id,
            "type": "message",
            "role": "assistant",
            "content": content,
            "model": self._options.model,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": self._blocks.usage_fields(),
        }

    def _tool_input(self, block: dict[str, Any], raw: str) -> dict[str, Any]:
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict):
            return value
        note = f"tool call {block['id']} ({block['name']}): arguments are not a JSON object"
        if note not in self.notes:
            self.notes.append(note)
        return {}


__all__ = [
    "ERROR_TYPES",
    "STOP_REASONS",
    "AnthropicCollector",
    "AnthropicStreamEncoder",
    "AnthropicWireOptions",
    "error_body",
    "new_message_id",
    "progress_note",
]
