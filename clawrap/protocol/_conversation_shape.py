"""The shape a conversation must have to be answered: the 400s of its turns, sans-IO.

A conversation is answered as Messages API messages (the Claude backend writes the
earlier ones into a transcript and sends the last): parts with nothing to say are
dropped (blank text, unsigned thinking), turns left empty go, consecutive turns of one
role merge. What remains must have content, end with the user's message (continuing an
assistant message, prefill, is not supported) and, when tools are in play, answer every
tool call in the message right after it, with no result that answers no call.

These rules are checked here, once: at decode for a request without a session, after
its session's conversation is merged for one with (both before the request takes a
run slot), and by the backend's transcript planning, which calls the same function.
"""

from __future__ import annotations

from typing import Literal

from clawrap.core._errors import invalid_request
from clawrap.core._request import (
    CompletionRequest,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
    Turn,
)


def offers_tools(request: CompletionRequest) -> bool:
    """Whether the model gets the client's tools for this request.

    ``tool_choice: "none"`` is honoured by offering nothing: then no call can
    happen, whatever the model would like.
    """
    return bool(request.tools) and request.tool_choice != "none"


def tools_in_play(request: CompletionRequest) -> bool:
    """Whether tool calls and results stay tool blocks (the client's tools, or agent mode's
    own); otherwise the history shows them as text."""
    return offers_tools(request) or request.agent is not None


def kept(part: Part) -> bool:
    """Whether ``part`` is sent to the model at all."""
    if isinstance(part, TextPart):
        return bool(part.text.strip())
    if isinstance(part, ThinkingPart):
        return bool(part.signature)  # the API refuses thinking it did not sign
    return True


def merged_messages(
    turns: tuple[Turn, ...],
) -> list[tuple[Literal["user", "assistant"], list[Part]]]:
    """The turns as messages: kept parts only, empty turns gone, one role's turns merged."""
    messages: list[tuple[Literal["user", "assistant"], list[Part]]] = []
    for turn in turns:
        parts = [p for p in turn.parts if kept(p)]
        if not parts:
            continue
        if messages and messages[-1][0] == turn.role:
            messages[-1][1].extend(parts)
        else:
            messages.append((turn.role, parts))
    return messages


def check_conversation(request: CompletionRequest) -> None:
    """Raise a 400 naming ``messages`` when the conversation cannot be answered."""
    messages = merged_messages(request.turns)
    if not messages:
        raise invalid_request("The conversation has no content.", param="messages")
    if messages[-1][0] != "user":
        raise invalid_request(
            "The last message must be the user's: continuing an assistant message (prefill) "
            "is not supported.",
            param="messages",
        )
    if tools_in_play(request):
        _check_tool_pairing(messages)


def _check_tool_pairing(
    messages: list[tuple[Literal["user", "assistant"], list[Part]]],
) -> None:
    """Every call answered in the next message, every result answering a call."""
    pending: set[str] = set()
    for role, parts in messages:
        if role == "assistant":
            pending = {p.id for p in parts if isinstance(p, ToolUsePart)}
            continue
        answered = {p.tool_use_id for p in parts if isinstance(p, ToolResultPart)}
        stray = sorted(answered - pending)
        if stray:
            raise invalid_request(
                f"The tool result for '{stray[0]}' does not follow an assistant tool call with "
                "that id.",
                param="messages",
            )
        missing = sorted(pending - answered)
        if missing:
            raise invalid_request(
                f"The assistant's tool call '{missing[0]}' has no tool result in the message "
                "after it.",
                param="messages",
            )
        pending = set()


__all__ = ["check_conversation", "kept", "merged_messages", "offers_tools", "tools_in_play"]
