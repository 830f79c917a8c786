"""Internal events -> OpenAI Chat Completions responses: SSE chunks or one JSON body.

Sans-IO. The stream follows what real clients require (``docs/WIRE.md``): every
chunk shares ``id``, ``created`` and ``model``; ``role`` appears only in the
first delta; a tool call's ``id``, ``type`` and ``function.name`` appear only in
its first delta and every tool delta carries its ``index``; a ``finish_reason``
is always sent; with ``include_usage`` every chunk has ``usage: null`` and one
``choices: []`` chunk carries the usage just before ``data: [DONE]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clawrap.core._errors import ClawrapError, ErrorKind
from clawrap.core._events import (
    AgentProgress,
    Event,
    Finished,
    FinishReason,
    InputTokens,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from clawrap.protocol._sse import DONE, sse_comment, sse_data
from clawrap.protocol.openai._decode import ChatWireOptions

_FINISH: dict[FinishReason, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "refusal": "content_filter",
}

_ERROR_TYPES: dict[ErrorKind, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "invalid_request_error",
    "method_not_allowed": "invalid_request_error",
    "conflict": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "api_error": "api_error",
    "overloaded": "server_error",
    "timeout": "timeout",
}

_NOTE_LIMIT = 200


def error_object(error: ClawrapError) -> dict[str, Any]:
    """The ``{"message", "type", "param", "code"}`` object OpenAI clients read."""
    code = (
        error.code
        if error.code is not None
        else ("overloaded" if error.kind == "overloaded" else None)
    )
    return {
        "message": error.message,
        "type": _ERROR_TYPES[error.kind],
        "param": error.param,
        "code": code,
    }


def error_body(error: ClawrapError) -> dict[str, Any]:
    """The JSON body of an HTTP error response."""
    return {"error": error_object(error)}


def usage_object(usage: Usage | None) -> dict[str, Any]:
    """OpenAI usage; cached and cache-writing input count as prompt tokens, as OpenAI's do."""
    u = usage or Usage(input_tokens=0, output_tokens=0)
    prompt = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
    }


def progress_note(event: AgentProgress) -> str:
    """A compact one-line note for an agent-mode tool use or result (no trailing newline)."""
    summary = " ".join(event.summary.split())
    if len(summary) > _NOTE_LIMIT:
        summary = summary[: _NOTE_LIMIT - 3] + "..."
    label = "tool" if event.kind == "tool_use" else "result"
    return f"[{label}: {event.name}] {summary}".rstrip()


def _note_text(event: AgentProgress, reasoning_so_far: str) -> str:
    """The note on a line of its own, after whatever reasoning text came before."""
    lead = "\n" if reasoning_so_far and not reasoning_so_far.endswith("\n") else ""
    return f"{lead}{progress_note(event)}\n"


def _finish_reason(reason: FinishReason | None, any_tool_calls: bool, legacy: bool) -> str:
    if any_tool_calls and reason in (None, "end_turn", "tool_calls"):
        return "function_call" if legacy else "tool_calls"
    return _FINISH[reason or "end_turn"]


class ChatStreamEncoder:
    """One streamed chat completion: internal events in, ``data:`` chunks out."""

    def __init__(self, options: ChatWireOptions, index: int = 0, *, terminal: bool = True) -> None:
        """``index``: the choice this stream is (``n`` > 1); ``terminal``: whether
        :meth:`finish` ends the whole stream (usage chunk, ``[DONE]``)."""
        self._options = options
        self.index = index
        self.terminal = terminal
        self._started = False
        self._finished = False  # a finish_reason chunk was sent
        self._done = False  # [DONE] was sent
        self._usage: Usage | None = None
        self._tool_calls: dict[int, bool] = {}  # index -> has any arguments
        self._reasoning_tail = ""  # the last character of reasoning, for note layout

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {
            "index": self.index,
            "delta": delta,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        return self._envelope([choice])

    def _envelope(self, choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        obj: dict[str, Any] = {
            "id": self._options.completion_id,
            "object": "chat.completion.chunk",
            "created": self._options.created,
            "model": self._options.model,
            "choices": choices,
        }
        if self._options.include_usage:
            obj["usage"] = usage
        return sse_data(obj)

    def _tool_delta(
        self, index: int, function: dict[str, str], call_id: str | None = None
    ) -> bytes:
        """A tool call delta; ``call_id`` is given for the first delta of a call only."""
        if self._options.legacy_functions:
            # the legacy API has one function call per reply
            return self._chunk({"function_call": function}) if index == 0 else b""
        call: dict[str, Any] = {"index": index}
        if call_id is not None:
            call |= {"id": call_id, "type": "function"}
        call["function"] = function
        return self._chunk({"tool_calls": [call]})

    def start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._chunk({"role": "assistant", "content": ""})

    def encode(self, event: Event) -> bytes:
        if isinstance(event, Usage):
            self._usage = event  # may arrive after Finished; sent by finish()
            return b""
        if isinstance(event, InputTokens) or self._finished or self._done:
            return b""
        out = self.start()
        if isinstance(event, TextDelta):
            return out + (self._chunk({"content": event.text}) if event.text else b"")
        if isinstance(event, ReasoningDelta | AgentProgress):
            if isinstance(event, ReasoningDelta):
                text = event.text
            else:
                text = _note_text(event, self._reasoning_tail)
            if not text:
                return out
            self._reasoning_tail = text[-1]
            return out + self._chunk({"reasoning_content": text})
        if isinstance(event, ToolCallStart):
            if event.index in self._tool_calls:
                return out  # a repeated start would double the id and name client-side
            self._tool_calls[event.index] = False
            function = {"name": event.name, "arguments": ""}
            return out + self._tool_delta(event.index, function, event.id)
        if isinstance(event, ToolCallDelta):
            if event.index not in self._tool_calls or not event.arguments:
                return out  # arguments without a start have no id or name to attach to
            self._tool_calls[event.index] = True
            return out + self._tool_delta(event.index, {"arguments": event.arguments})
        if isinstance(event, Finished):
            return out + self._finish_chunk(event.reason)
        return out  # ReasoningSignature: chat completions has no place for it

    def _finish_chunk(self, reason: FinishReason | None) -> bytes:
        self._finished = True
        # A call with no argument pieces still needs valid JSON arguments.
        out = b"".join(
            self._tool_delta(index, {"arguments": "{}"})
            for index, has_args in self._tool_calls.items()
            if not has_args
        )
        legacy = self._options.legacy_functions
        finish = _finish_reason(reason, bool(self._tool_calls), legacy)
        return out + self._chunk({}, finish)

    def finish(self) -> bytes:
        if self._done:
            return b""
        out = self.start()
        if not self._finished:
            out += self._finish_chunk(None)
        self._done = True
        if not self.terminal:
            return out
        if self._options.include_usage:
            out += self._envelope([], usage_object(self._usage))
        return out + DONE

    @property
    def usage(self) -> Usage | None:
        return self._usage

    def error(self, error: ClawrapError) -> bytes:
        if self._done:
            return b""
        self._done = True
        return sse_data({"error": error_object(error)}) + DONE

    def keepalive(self) -> bytes:
        return b"" if self._done else sse_comment("keepalive")


@dataclass(slots=True)
class _Call:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


class ChatCollector:
    """Internal events -> one ``chat.completion`` object."""

    def __init__(self, options: ChatWireOptions, index: int = 0) -> None:
        self._options = options
        self.index = index
        self._text: list[str] = []
        self._reasoning = ""
        self._calls: dict[int, _Call] = {}
        self._reason: FinishReason | None = None
        self._finished = False
        self._usage: Usage | None = None

    def add(self, event: Event) -> None:
        if isinstance(event, Usage):
            self._usage = event
        elif self._finished:
            return
        elif isinstance(event, TextDelta):
            self._text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            self._reasoning += event.text
        elif isinstance(event, AgentProgress):
            self._reasoning += _note_text(event, self._reasoning)
        elif isinstance(event, ToolCallStart):
            self._calls.setdefault(event.index, _Call(event.id, event.name))
        elif isinstance(event, ToolCallDelta):
            if event.index in self._calls:
                self._calls[event.index].arguments.append(event.arguments)
        elif isinstance(event, Finished):
            self._reason, self._finished = event.reason, True

    @property
    def usage(self) -> Usage | None:
        return self._usage

    def body(self) -> dict[str, Any]:
        legacy = self._options.legacy_functions
        calls = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": "".join(call.arguments) or "{}"},
            }
            for _, call in sorted(self._calls.items())
        ]
        text = "".join(self._text)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if calls and not text else text,
            "refusal": None,
        }
        if calls and legacy:
            message["function_call"] = calls[0]["function"]
        elif calls:
            message["tool_calls"] = calls
        if self._reasoning:
            message["reasoning_content"] = self._reasoning
        return {
            "id": self._options.completion_id,
            "object": "chat.completion",
            "created": self._options.created,
            "model": self._options.model,
            "choices": [
                {
                    "index": self.index,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _finish_reason(self._reason, bool(calls), legacy),
                }
            ],
            "usage": usage_object(self._usage),
            "system_fingerprint": None,
        }


__all__ = [
    "ChatCollector",
    "ChatStreamEncoder",
    "error_body",
    "error_object",
    "progress_note",
    "usage_object",
]
