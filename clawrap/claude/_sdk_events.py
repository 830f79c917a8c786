"""SDK messages of one turn translated into clawrap's internal events.

Sans-IO: :class:`TurnTranslator` is fed the messages a ``ClaudeSDKClient``
yields for one turn and returns :mod:`clawrap.core._events` to send.

Content comes from the ``StreamEvent`` s (the raw upstream SSE events), so the
first delta goes out as soon as upstream produces it. The ``AssistantMessage``
that repeats the same content arrives while the stream is still open and is
ignored, except for a message no stream event announced (the CLI fell back to
a non-streaming call), whose content is emitted whole. The ``ResultMessage``
ends the turn: :class:`~clawrap.core._events.Usage`, then
:class:`~clawrap.core._events.Finished`, or a :class:`~clawrap.core._errors.ClawrapError`.

In agent mode one run spans several model messages: Claude Code calls its own
tools and carries on. Their calls and results become
:class:`~clawrap.core._events.AgentProgress` (never client tool calls), text keeps
streaming across the messages, and the CLI's ``init`` report (its tool list,
its MCP servers' status) is kept in :attr:`TurnTranslator.init`.
"""

from __future__ import annotations

import json
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)
from claude_agent_sdk.types import Message

from clawrap.claude._agent_progress import tool_result_progress, tool_use_progress
from clawrap.claude._client_tools import ClientTools
from clawrap.claude._sdk_errors import error_from_assistant, error_from_result, process_failed
from clawrap.core._errors import ClawrapError
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

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
    "pause_turn": "end_turn",
    "tool_use": "tool_calls",
    "tool_deferred": "tool_calls",
}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_result(result: ResultMessage) -> Usage:
    """Token counts and cost as the CLI reports them for the turn.

    An interrupted turn reports zeros in ``usage`` but real counts per model in
    ``model_usage``; those are summed instead.
    """
    u = result.usage if isinstance(result.usage, dict) else {}
    usage = Usage(
        input_tokens=_int(u.get("input_tokens")),
        output_tokens=_int(u.get("output_tokens")),
        cache_read_input_tokens=_int(u.get("cache_read_input_tokens")),
        cache_creation_input_tokens=_int(u.get("cache_creation_input_tokens")),
        cost_usd=result.total_cost_usd if isinstance(result.total_cost_usd, int | float) else None,
    )
    if usage.input_tokens or usage.output_tokens or not isinstance(result.model_usage, dict):
        return usage
    per_model = [m for m in result.model_usage.values() if isinstance(m, dict)]
    return Usage(
        input_tokens=sum(_int(m.get("inputTokens")) for m in per_model),
        output_tokens=sum(_int(m.get("outputTokens")) for m in per_model),
        cache_read_input_tokens=sum(_int(m.get("cacheReadInputTokens")) for m in per_model),
        cache_creation_input_tokens=sum(_int(m.get("cacheCreationInputTokens")) for m in per_model),
        cost_usd=usage.cost_usd,
    )


class TurnTranslator:
    """Translates the messages of one turn; create one per turn.

    ``tools`` names the client tools of the run: tool calls to them become
    ToolCallStart/ToolCallDelta with the client's own name; calls to anything
    else (Claude Code's own tools) are not the client's business: dropped, or in
    agent mode (``agent``; ``cwd`` shortens paths in notes) reported as progress.
    """

    def __init__(
        self, tools: ClientTools | None = None, *, agent: bool = False, cwd: str | None = None
    ) -> None:
        self._tools = tools
        self._agent = agent
        self._cwd = cwd
        self._agent_calls: dict[str, str] = {}  # Claude Code's own tool call id -> tool name
        self._after_progress = False  # the last content event was a progress note
        self._text_sent = False
        self.init: dict[str, Any] | None = None  # the CLI's system/init report, once seen
        self._single_call = bool(getattr(tools, "single_call", False))
        self._tool_index: dict[int, int] = {}  # upstream block index -> our tool call index
        self._tool_calls = 0
        self._streamed_ids: set[str] = set()
        self._input_reported = False  # InputTokens sent (once per turn: the first message)
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None
        self._error: ClawrapError | None = None
        self.content_sent = False
        self.message_stopped = False  # the model's message ended (the turn may go on)
        self.result: ResultMessage | None = None
        # Every client tool call of the model's message, by id, kept for the client or not.
        self.call_ids: list[str] = []
        self._message_usage: dict[str, int] = {}  # from message_start and message_delta
        # Tools that wait (``_tool_gate``): a CLI run spans the rounds of a tool loop, so
        # its result's usage is the whole run's; each round reports its own message's.
        self._per_message_usage = bool(getattr(tools, "gated", None))

    @property
    def done(self) -> bool:
        """True once the turn's ResultMessage was fed."""
        return self.result is not None

    @property
    def upstream_stop_reason(self) -> str | None:
        """The stop reason of the latest upstream message_delta, if seen yet."""
        return self._stop_reason

    @property
    def _no_more_calls(self) -> bool:
        # parallel_tool_calls false: the client gets the first call of a turn only.
        return self._single_call and self._tool_calls >= 1

    @property
    def needs_interrupt(self) -> bool:
        """True when the model's message is over but the CLI would carry on
        (it follows a max_tokens stop with a continuation request of its own)."""
        return self.message_stopped and not self.done and self._stop_reason == "max_tokens"

    @property
    def tool_calls(self) -> int:
        return self._tool_calls

    def feed(self, message: Message) -> list[Event]:
        """The events ``message`` produces. Raises ClawrapError when the turn failed."""
        if isinstance(message, ResultMessage):
            return self._result(message)
        if isinstance(message, SystemMessage):
            if message.subtype == "init" and isinstance(message.data, dict):
                self.init = message.data
            return []
        if self.message_stopped and not self._agent:
            # One model message per completion. Whatever the CLI does after it (it
            # answers max_tokens with a continuation request) is not the client's.
            return []
        if isinstance(message, StreamEvent):
            events = self._stream_event(message) if message.parent_tool_use_id is None else []
        elif isinstance(message, AssistantMessage):
            events = self._agent_tool_uses(message) + self._assistant(message)
        elif isinstance(message, UserMessage) and self._agent:
            events = self._agent_results(message)
        else:
            return []
        if any(not isinstance(e, InputTokens) for e in events):
            self.content_sent = True
        return self._spaced(events) if self._agent else events

    # -- agent mode

    def _agent_tool_uses(self, message: AssistantMessage) -> list[Event]:
        """Claude Code's own tool calls in ``message``, as progress (each call once)."""
        if not self._agent or message.parent_tool_use_id is not None:
            return []
        events: list[Event] = []
        for block in message.content:
            if (
                isinstance(block, ToolUseBlock)
                and self._client_name(block.name) is None
                and block.id not in self._agent_calls
            ):
                self._agent_calls[block.id] = block.name
                events.append(tool_use_progress(block.id, block.name, block.input, self._cwd))
        return events

    def _agent_results(self, message: UserMessage) -> list[Event]:
        if message.parent_tool_use_id is not None or not isinstance(message.content, list):
            return []
        events: list[Event] = []
        for block in message.content:
            if isinstance(block, ToolResultBlock) and block.tool_use_id in self._agent_calls:
                name = self._agent_calls[block.tool_use_id]
                error = bool(block.is_error)
                events.append(tool_result_progress(block.tool_use_id, name, block.content, error))
        return events

    def _spaced(self, events: list[Event]) -> list[Event]:
        """Text after tool notes starts a new paragraph, so the turns' text does not run on."""
        out: list[Event] = []
        for event in events:
            if isinstance(event, TextDelta):
                if self._after_progress and self._text_sent:
                    event = TextDelta("\n\n" + event.text.lstrip("\n"))
                self._after_progress, self._text_sent = False, True
            elif isinstance(event, AgentProgress):
                self._after_progress = True
            out.append(event)
        return out

    # -- stream events

    def _stream_event(self, message: StreamEvent) -> list[Event]:
        ev = message.event
        kind = ev.get("type")
        if kind == "content_block_delta":
            return self._delta(ev)
        if kind == "content_block_start":
            return self._block_start(ev)
        if kind == "message_stop":
            self.message_stopped = True
        elif kind == "message_start":
            if self._agent:
                # The next model message of the run: it ends on its own stop reason.
                self.message_stopped = False
                self._stop_reason = self._stop_sequence = None
            msg = ev.get("message")
            if isinstance(msg, dict) and isinstance(msg.get("id"), str):
                self._streamed_ids.add(msg["id"])
            if isinstance(msg, dict) and isinstance(msg.get("usage"), dict):
                self._message_usage.update(msg["usage"])
            if isinstance(msg, dict) and not self._input_reported:
                self._input_reported = True
                usage = msg.get("usage")
                if isinstance(usage, dict):
                    return [InputTokens(_int(usage.get("input_tokens")))]
        elif kind == "message_delta":
            delta = ev.get("delta")
            if isinstance(delta, dict):
                if isinstance(delta.get("stop_reason"), str):
                    self._stop_reason = delta["stop_reason"]
                if isinstance(delta.get("stop_sequence"), str):
                    self._stop_sequence = delta["stop_sequence"]
            if isinstance(ev.get("usage"), dict):
                self._message_usage.update(ev["usage"])
        return []

    def _delta(self, ev: dict[str, Any]) -> list[Event]:
        delta = ev.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if kind == "thinking_delta":
            text = delta.get("thinking")
            return [ReasoningDelta(text)] if isinstance(text, str) and text else []
        if kind == "signature_delta":
            sig = delta.get("signature")
            return [ReasoningSignature(sig)] if isinstance(sig, str) and sig else []
        if kind == "input_json_delta":
            index = self._tool_index.get(ev.get("index"))  # type: ignore[arg-type]
            part = delta.get("partial_json")
            if index is not None and isinstance(part, str) and part:
                return [ToolCallDelta(index, part)]
        return []

    def _block_start(self, ev: dict[str, Any]) -> list[Event]:
        block = ev.get("content_block")
        if not isinstance(block, dict):
            return []
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            return [TextDelta(block["text"])]
        if kind == "tool_use":
            name = self._client_name(block.get("name"))
            if name is None or not isinstance(block.get("id"), str):
                return []
            self.call_ids.append(block["id"])
            if self._no_more_calls:
                return []
            index = self._tool_calls
            self._tool_calls += 1
            if isinstance(ev.get("index"), int):
                self._tool_index[ev["index"]] = index
            events: list[Event] = [ToolCallStart(index, block["id"], name)]
            if isinstance(block.get("input"), dict) and block["input"]:
                events.append(ToolCallDelta(index, json.dumps(block["input"])))
            return events
        return []

    def _client_name(self, sdk_name: Any) -> str | None:
        if self._tools is None or not isinstance(sdk_name, str):
            return None
        return self._tools.client_name(sdk_name)

    # -- whole messages

    def _assistant(self, message: AssistantMessage) -> list[Event]:
        if message.error is not None:
            self._error = error_from_assistant(message)
            return []
        if message.parent_tool_use_id is not None or message.model == "<synthetic>":
            return []
        if message.message_id is not None and message.message_id in self._streamed_ids:
            return []
        # Not streamed: the CLI got this message whole, so emit it whole.
        events: list[Event] = []
        for block in message.content:
            if isinstance(block, TextBlock) and block.text:
                events.append(TextDelta(block.text))
            elif isinstance(block, ThinkingBlock):
                if block.thinking:
                    events.append(ReasoningDelta(block.thinking))
                if block.signature:
                    events.append(ReasoningSignature(block.signature))
            elif isinstance(block, ToolUseBlock):
                name = self._client_name(block.name)
                if name is not None and not self._no_more_calls:
                    index = self._tool_calls
                    self._tool_calls += 1
                    events.append(ToolCallStart(index, block.id, name))
                    events.append(ToolCallDelta(index, json.dumps(block.input)))
        if message.stop_reason:
            self._stop_reason = message.stop_reason
        return events

    def _result(self, result: ResultMessage) -> list[Event]:
        self.result = result
        error = error_from_result(result)
        if error is not None and self._error is not None and result.api_error_status is None:
            # The synthetic message said what went wrong; the result only that it did.
            error = self._error
        if error is not None:
            raise error
        if result.is_error and not self.content_sent and self._tool_calls == 0:
            reason = result.terminal_reason or ""
            if not reason.startswith("aborted"):
                # Failed without saying why and without any output.
                raise process_failed()
        return [self.usage_event(), Finished(self._finish_reason(result), self._stop_sequence)]

    @property
    def stopped_for_tools(self) -> bool:
        """The model's message ended asking for client tools that wait for their results."""
        return (
            self._per_message_usage
            and self.message_stopped
            and self._stop_reason == "tool_use"
            and bool(self.call_ids)
        )

    def message_usage(self) -> Usage:
        """The token counts of the model's message, as its stream reported them."""
        u = self._message_usage
        return Usage(
            input_tokens=_int(u.get("input_tokens")),
            output_tokens=_int(u.get("output_tokens")),
            cache_read_input_tokens=_int(u.get("cache_read_input_tokens")),
            cache_creation_input_tokens=_int(u.get("cache_creation_input_tokens")),
        )

    def usage_event(self) -> Usage:
        if self._per_message_usage and self._message_usage:
            return self.message_usage()
        assert self.result is not None
        return usage_from_result(self.result)

    def _finish_reason(self, result: ResultMessage) -> FinishReason:
        if self._tool_calls and (
            result.deferred_tool_use is not None
            or result.subtype == "error_max_turns"
            or self._stop_reason in ("tool_use", None)
            or result.stop_reason in ("tool_use", "tool_deferred")
        ):
            return "tool_calls"
        reason = self._stop_reason or result.stop_reason or "end_turn"
        mapped = _STOP_REASONS.get(reason, "end_turn")
        # A tool_use stop with no client tool call to show is an ordinary end.
        return "end_turn" if mapped == "tool_calls" else mapped

    def unfinished_error(self) -> ClawrapError:
        """The error for a stream that ended without a ResultMessage."""
        return self._error if self._error is not None else process_failed()


__all__ = ["TurnTranslator", "usage_from_result"]
