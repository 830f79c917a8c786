"""The internal request: what every protocol decoder produces and every backend runs.

OpenAI chat completions, Anthropic messages and (later) OpenAI responses all
decode into one :class:`CompletionRequest`. It is plain data: frozen dataclasses
with slots, no I/O, no SDK types. Conversation content is Anthropic-shaped
(turns of content parts) because that is what finally reaches the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

# Claude Code's effort levels, lowest first: the one list every surface checks against.
Effort = Literal["low", "medium", "high", "xhigh", "max"]
EFFORT_LEVELS: tuple[Effort, ...] = get_args(Effort)


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image. ``data`` is base64 (no ``data:`` prefix) when ``url`` is None."""

    media_type: str
    data: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class DocumentPart:
    """A document (PDF) as base64."""

    media_type: str
    data: str
    title: str | None = None


@dataclass(frozen=True, slots=True)
class ThinkingPart:
    thinking: str
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class ToolUsePart:
    """A tool call made by the assistant. ``input`` is the parsed JSON arguments."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResultPart:
    """The client's result for an earlier :class:`ToolUsePart`."""

    tool_use_id: str
    content: tuple[TextPart | ImagePart, ...]
    is_error: bool = False


Part = TextPart | ImagePart | DocumentPart | ThinkingPart | ToolUsePart | ToolResultPart


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the conversation. System text is not a turn (see ``system``)."""

    role: Literal["user", "assistant"]
    parts: tuple[Part, ...]

    @property
    def text(self) -> str:
        """The concatenated text parts (handy for tests and fingerprints)."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A client-defined function the model may call."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NamedTool:
    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedTool


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """``json_object`` or ``json_schema`` output (``text`` is the default and is None)."""

    kind: Literal["json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool = False


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """Claude Code's own tools, when a request asks and the server allows (agent mode)."""

    cwd: str | None = None
    max_turns: int | None = None
    allowed_tools: tuple[str, ...] = ()
    disallowed_tools: tuple[str, ...] = ()
    permission_mode: str | None = None
    mcp_servers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One completion to run.

    ``model`` is the id handed to the CLI; ``requested_model`` is what the client
    asked for and is echoed back in responses.
    ``max_output_tokens`` and ``stop`` are enforced by clawrap itself.
    ``thinking_budget``: None leaves thinking off; a number of tokens turns it on.
    ``effort``: one of :data:`EFFORT_LEVELS`, Claude Code's effort level.
    ``queue_deadline``: set by the server as the request starts queueing: the time, on the
    server's trio clock, by which every wait for a resource (the session's lock, a run
    slot, room for a CLI process) must be over; a backend that finds no room by then
    answers 429. None: the backend's own ``queue_timeout`` from when it is asked.
    """

    model: str
    requested_model: str
    turns: tuple[Turn, ...]
    system: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    max_output_tokens: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    response_format: ResponseFormat | None = None
    effort: str | None = None
    thinking_budget: int | None = None
    session_id: str | None = None
    agent: AgentOptions | None = None
    # Agent mode: the most the run may cost in USD (what the key may still spend); the
    # CLI checks it after each model turn and stops the run there.
    max_budget_usd: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    queue_deadline: float | None = None


__all__ = [
    "EFFORT_LEVELS",
    "AgentOptions",
    "CompletionRequest",
    "DocumentPart",
    "Effort",
    "ImagePart",
    "NamedTool",
    "Part",
    "ResponseFormat",
    "TextPart",
    "ThinkingPart",
    "ToolChoice",
    "ToolResultPart",
    "ToolSpec",
    "ToolUsePart",
    "Turn",
]
