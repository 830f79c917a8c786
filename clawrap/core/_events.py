"""The internal event stream: what a backend emits and every encoder consumes.

A run emits, in order: at most one :class:`InputTokens` (the upstream reply
began), any number of content events (text, reasoning, tool calls, agent
progress), then zero or one :class:`Usage`, then exactly one
:class:`Finished`. A failure is not an event: the backend raises
:class:`~clawrap.core._errors.ClawrapError` and the exchange renders it in the
protocol's own shape.

Content blocks are implicit: consecutive deltas of one kind form one block, and
tool calls are numbered by ``index`` from 0 in the order they start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

FinishReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_calls", "refusal"]


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Thinking text as it streams."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningSignature:
    """The signature that closes a thinking block (Anthropic clients pass it back)."""

    signature: str


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """The model starts calling a client tool. ``name`` is the client's own name."""

    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of the JSON arguments of tool call ``index``, as it arrives from upstream."""

    index: int
    arguments: str


@dataclass(frozen=True, slots=True)
class AgentProgress:
    """Agent mode: Claude Code used one of its own tools, or got its result.

    Rendered as a compact note (``reasoning_content`` for chat completions).
    """

    kind: Literal["tool_use", "tool_result"]
    name: str
    summary: str
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class InputTokens:
    """The input token count the upstream reported as its reply began (before any content).

    Encoders that announce a reply up front (the Messages API's ``message_start``) use it;
    the others ignore it. The final :class:`Usage` still carries the run's totals.
    """

    count: int


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the SDK reports them; never estimated."""

    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    reason: FinishReason
    stop_sequence: str | None = None


Event = (
    InputTokens
    | TextDelta
    | ReasoningDelta
    | ReasoningSignature
    | ToolCallStart
    | ToolCallDelta
    | AgentProgress
    | Usage
    | Finished
)

__all__ = [
    "AgentProgress",
    "Event",
    "FinishReason",
    "Finished",
    "InputTokens",
    "ReasoningDelta",
    "ReasoningSignature",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallStart",
    "Usage",
]
