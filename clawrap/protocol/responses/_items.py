"""Internal events -> Responses API output items and their stream events (sans-IO).

The internal stream has implicit content blocks; :class:`OutputItems` turns it into
the Responses API's explicit items, one open at a time, each with its lifecycle:

- a ``message`` item: ``output_item.added`` (``content: []``), ``content_part.added``
  (an empty ``output_text``), ``output_text.delta``\\*, ``output_text.done``,
  ``content_part.done``, ``output_item.done``;
- a ``function_call`` item: ``output_item.added`` (``arguments: ""``),
  ``function_call_arguments.delta``\\*, ``function_call_arguments.done``,
  ``output_item.done``; a call of a ``custom`` tool is a ``custom_tool_call`` item
  whose ``input`` is sent whole when the call ends (upstream it is a JSON string);
- a ``reasoning`` item for thinking: with summaries asked for, one summary part
  with ``reasoning_summary_text.delta``\\*; with ``reasoning.encrypted_content``
  included, the finished item carries the block in ``encrypted_content``.

Events are plain dicts without ``sequence_number`` (the encoder numbers them).
:attr:`OutputItems.output` always holds every item as it stands, so the
lifecycle events can carry the whole output, which clients require.
"""

from __future__ import annotations

import json
from typing import Any

from clawrap.core._events import (
    AgentProgress,
    Event,
    Finished,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from clawrap.protocol._conversation import ReplyRecorder
from clawrap.protocol.openai._encode import progress_note
from clawrap.protocol.responses._decode import ResponsesOptions
from clawrap.protocol.responses._decode_input import new_item_id
from clawrap.protocol.responses._reasoning import encode_thinking

Ev = dict[str, Any]


class OutputItems:
    """The output of one response, item by item, as events arrive."""

    def __init__(self, options: ResponsesOptions) -> None:
        self.options = options
        self.output: list[dict[str, Any]] = []
        self.recorder = ReplyRecorder()  # the reply as a turn, for the response store
        self.usage: Usage | None = None
        self.finished: Finished | None = None
        self._open: str | None = None  # kind of the open item (the last in output)
        self._call_index: int | None = None  # internal index of the open tool call
        self._arguments: list[str] = []
        self._thinking: list[str] = []
        self._signature: str | None = None
        self._text_tail = ""
        # reasoning item id -> its thinking block as encrypted_content, kept even when the
        # client did not ask for it, so a stored item can be referenced later
        self.blocks: dict[str, str] = {}

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, event: Event) -> list[Ev]:
        if isinstance(event, Usage):
            self.usage = event
            self.recorder.feed(event)
            return []
        if self.finished is not None:
            return []
        self.recorder.feed(event)
        if isinstance(event, TextDelta):
            return self._text(event.text)
        if isinstance(event, AgentProgress):
            lead = "\n" if self._text_tail and not self._text_tail.endswith("\n") else ""
            return self._text(f"{lead}{progress_note(event)}\n")
        if isinstance(event, ReasoningDelta):
            return self._reasoning(event.text)
        if isinstance(event, ReasoningSignature):
            if self._open != "reasoning":
                return []
            self._signature = event.signature
            return self.close()
        if isinstance(event, ToolCallStart):
            return self._call_start(event)
        if isinstance(event, ToolCallDelta):
            if self._call_index != event.index or not event.arguments:
                return []  # arguments for a call no longer open (calls come one by one)
            self._arguments.append(event.arguments)
            if self._open == "custom_tool_call":
                return []
            delta = {"type": "response.function_call_arguments.delta", "delta": event.arguments}
            return [self._on_item(delta)]
        if isinstance(event, Finished):
            self.finished = event
            return self.close()
        return []

    @property
    def _index(self) -> int:
        return len(self.output) - 1

    def _on_item(self, event: Ev) -> Ev:
        event["item_id"] = self.output[-1]["id"]
        event["output_index"] = self._index
        return event

    def _start(self, kind: str, item: dict[str, Any]) -> list[Ev]:
        out = self.close()
        self.output.append(item)
        self._open = kind
        added = {"type": "response.output_item.added", "output_index": self._index}
        out.append(added | {"item": _copy(item)})
        return out

    # -- messages ----------------------------------------------------------------------------

    def _text(self, text: str) -> list[Ev]:
        if not text:
            return []
        out: list[Ev] = []
        if self._open != "message":
            item = {
                "id": new_item_id("msg"),
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            out = self._start("message", item)
            part = {"type": "output_text", "text": "", "annotations": []}
            self.output[-1]["content"].append(part)
            added = {"type": "response.content_part.added", "content_index": 0, "part": dict(part)}
            out.append(self._on_item(added))
        self.output[-1]["content"][0]["text"] += text
        self._text_tail = text
        delta = {"type": "response.output_text.delta", "content_index": 0, "delta": text}
        out.append(self._on_item(delta | {"logprobs": []}))
        return out

    def _close_message(self) -> list[Ev]:
        item = self.output[-1]
        part = item["content"][0]
        item["status"] = self._item_status()
        text_done = {"type": "response.output_text.done", "content_index": 0, "text": part["text"]}
        part_done = {"type": "response.content_part.done", "content_index": 0, "part": dict(part)}
        return [self._on_item(text_done | {"logprobs": []}), self._on_item(part_done)]

    # -- reasoning ----------------------------------------------------------------------------

    def _reasoning(self, text: str) -> list[Ev]:
        if not text:
            return []
        out: list[Ev] = []
        if self._open != "reasoning":
            item = {"id": new_item_id("rs"), "type": "reasoning", "summary": []}
            out = self._start("reasoning", item)
            self._thinking, self._signature = [], None
            if self.options.summaries:
                part = {"type": "response.reasoning_summary_part.added", "summary_index": 0}
                out.append(self._on_item(part | {"part": {"type": "summary_text", "text": ""}}))
        self._thinking.append(text)
        if self.options.summaries:
            delta = {"type": "response.reasoning_summary_text.delta", "summary_index": 0}
            out.append(self._on_item(delta | {"delta": text}))
        return out

    def _close_reasoning(self) -> list[Ev]:
        item = self.output[-1]
        text = "".join(self._thinking)
        out: list[Ev] = []
        if self.options.summaries:
            item["summary"] = [{"type": "summary_text", "text": text}]
            done = {"type": "response.reasoning_summary_text.done", "summary_index": 0}
            out.append(self._on_item(done | {"text": text}))
            part = {"type": "response.reasoning_summary_part.done", "summary_index": 0}
            out.append(self._on_item(part | {"part": {"type": "summary_text", "text": text}}))
        self.blocks[item["id"]] = encode_thinking(text, self._signature)
        if self.options.encrypted_reasoning:
            item["encrypted_content"] = self.blocks[item["id"]]
        return out

    # -- tool calls -------------------------------------------------------------------------

    def _call_start(self, event: ToolCallStart) -> list[Ev]:
        if event.index == self._call_index or any(
            i.get("call_id") == event.id for i in self.output
        ):
            return []  # a repeated start would duplicate the item
        custom = event.name in self.options.custom_tools
        item: dict[str, Any]
        if custom:
            item = {"id": new_item_id("ctc"), "type": "custom_tool_call"}
            item |= {"call_id": event.id, "name": event.name, "input": ""}
        else:
            item = {"id": new_item_id("fc"), "type": "function_call", "call_id": event.id}
            item |= {"name": event.name, "arguments": "", "status": "in_progress"}
        namespace = self.options.namespaces.get(event.name)
        if namespace is not None:
            item["namespace"] = namespace
        out = self._start(item["type"], item)
        self._call_index = event.index
        self._arguments = []
        return out

    def _close_call(self) -> list[Ev]:
        item = self.output[-1]
        raw = "".join(self._arguments)
        self._call_index = None
        if item["type"] == "custom_tool_call":
            item["input"] = _custom_input(raw)
            out: list[Ev] = []
            if item["input"]:
                delta = {"type": "response.custom_tool_call_input.delta", "delta": item["input"]}
                out.append(self._on_item(delta))
            done = {"type": "response.custom_tool_call_input.done", "input": item["input"]}
            return [*out, self._on_item(done)]
        item["arguments"] = raw or "{}"
        item["status"] = "completed"
        done = {"type": "response.function_call_arguments.done", "arguments": item["arguments"]}
        return [self._on_item(done | {"name": item["name"]})]

    # -- the end ----------------------------------------------------------------------------

    def _item_status(self) -> str:
        reason = self.finished.reason if self.finished is not None else None
        return "incomplete" if reason == "max_tokens" else "completed"

    def close(self) -> list[Ev]:
        """End the open item, if any."""
        kind, self._open = self._open, None
        if kind is None:
            return []
        if kind == "message":
            out = self._close_message()
        elif kind == "reasoning":
            out = self._close_reasoning()
        else:
            out = self._close_call()
        done = {"type": "response.output_item.done", "output_index": self._index}
        out.append(done | {"item": _copy(self.output[-1])})
        return out


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    """A deep enough copy of an item (its content parts are dicts too)."""
    out = dict(item)
    for key in ("content", "summary"):
        if key in out:
            out[key] = [dict(p) for p in out[key]]
    return out


def _custom_input(raw: str) -> str:
    """A custom tool's free-form input from the JSON arguments it was asked for with."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        return raw
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return str(value["input"])
    return raw


__all__ = ["OutputItems"]
