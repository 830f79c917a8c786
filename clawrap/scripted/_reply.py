"""What the scripted model answers (sans-IO): a :class:`Reply` and its :class:`ToolUse` calls.

A reply is plain data: its text (exact, as N tokens, or as explicit chunks), thinking, tool
calls, pacing and failures. :func:`reply_from_json` reads one from untrusted JSON (an inline
``[[mock:...]]`` directive or ``POST /_mock/rules``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolUse:
    """One tool call in a reply; ``name`` may be the bare name of an ``mcp__server__name`` tool."""

    name: str
    input: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer.

    Content: at most one of ``text`` (split into word deltas), ``tokens`` (``"tok1 tok2 ..."``, one
    delta per token) or ``deltas`` (explicit chunks); then optional ``thinking`` (streamed before
    the text) and ``tool_uses`` (after it; several are parallel calls in one turn).
    Pacing: ``first_delay`` seconds before the first delta, ``delay`` before each later one.
    Failures: ``status`` >= 400 answers with an HTTP error in Anthropic's shape; ``stall_after``
    sends that many deltas then hangs until the client goes away; ``drop_after`` sends that many
    deltas then closes the connection abruptly; ``error_after`` sends that many deltas then an SSE
    ``error`` event (``error_type``, ``message``).
    ``then``: in a ``[[mock:...]]`` directive, the replies for the model's next turns in the same
    exchange (after tool results), e.g. a tool call first, then a text answer.
    """

    text: str | None = None
    tokens: int | None = None
    deltas: Sequence[str] | None = None
    thinking: str | None = None
    signature: str = "c2NyaXB0ZWQ="
    tool_uses: Sequence[ToolUse] = ()
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    delay: float = 0.0
    first_delay: float = 0.0
    status: int = 200
    error_type: str | None = None
    message: str | None = None
    retry_after: float | None = None
    stall_after: int | None = None
    drop_after: int | None = None
    error_after: int | None = None
    then: Sequence[Reply] = ()

    def __post_init__(self) -> None:
        # Accept lists (what callers naturally write) but keep the frozen value hashable-ish.
        if self.deltas is not None:
            object.__setattr__(self, "deltas", tuple(self.deltas))
        object.__setattr__(self, "tool_uses", tuple(self.tool_uses))
        object.__setattr__(self, "then", tuple(self.then))
        if sum(x is not None for x in (self.text, self.tokens, self.deltas)) > 1:
            raise ValueError("give at most one of text, tokens, deltas")
        if self.tokens is not None and self.tokens < 0:
            raise ValueError("tokens must be >= 0")
        if self.delay < 0 or self.first_delay < 0:
            raise ValueError("delays must be >= 0")
        if not 200 <= self.status <= 599 or 200 < self.status < 400:
            raise ValueError("status must be 200 or an error status (400-599)")
        for name in ("stall_after", "drop_after", "error_after"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    def text_deltas(self) -> list[str]:
        if self.deltas is not None:
            return list(self.deltas)
        if self.tokens is not None:
            return [f"tok{i}" if i == 1 else f" tok{i}" for i in range(1, self.tokens + 1)]
        return split_words(self.text or "")


def split_words(text: str) -> list[str]:
    """``"a b  c"`` -> ``["a", " b", "  c"]``: each word with the whitespace before it."""
    return re.findall(r"\s*\S+|\s+$", text)


# Directives come from whoever can reach the server (e.g. the offline demo): keep what one
# request can ask for within what a small machine can render and wait out.
MAX_TOKENS = 100_000
MAX_DELAY = 600.0
MAX_THEN_DEPTH = 8


def reply_from_json(obj: Any, *, _depth: int = 0) -> Reply:
    """A :class:`Reply` from JSON (a directive or ``POST /_mock/rules``); ValueError if invalid."""
    if _depth > MAX_THEN_DEPTH:
        raise ValueError("replies nest too deeply")
    if not isinstance(obj, dict):
        raise ValueError("a reply must be a JSON object")
    known = {f.name for f in fields(Reply)}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ValueError(f"unknown reply fields: {', '.join(unknown)}")
    kwargs = dict(obj)
    raw_tools = kwargs.pop("tool_uses", [])
    if not isinstance(raw_tools, list):
        raise ValueError("tool_uses must be a list")
    tools = []
    for item in raw_tools:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("input", {}), dict)
            or not isinstance(item.get("id"), str | None)
            or set(item) - {"name", "input", "id"}
        ):
            raise ValueError("each tool use must be {name: str, input: object, id?: str}")
        tools.append(ToolUse(item["name"], item.get("input", {}), item.get("id")))
    raw_then = kwargs.pop("then", [])
    raw_then = raw_then if isinstance(raw_then, list) else [raw_then]
    then = [reply_from_json(r, _depth=_depth + 1) for r in raw_then]
    _check_types(kwargs)
    if (kwargs.get("tokens") or 0) > MAX_TOKENS:
        raise ValueError(f"tokens: at most {MAX_TOKENS}")
    for key in ("delay", "first_delay", "retry_after"):
        if (kwargs.get(key) or 0) > MAX_DELAY:
            raise ValueError(f"{key}: at most {MAX_DELAY:g} seconds")
    try:
        return Reply(**kwargs, tool_uses=tuple(tools), then=tuple(then))
    except TypeError as exc:  # pragma: no cover - _check_types covers the known shapes
        raise ValueError(str(exc)) from None


def _check_types(kwargs: dict[str, Any]) -> None:
    for key, value in kwargs.items():
        if key in ("text", "thinking", "signature", "stop_reason", "error_type", "message"):
            ok = value is None or isinstance(value, str)
        elif key == "deltas":
            ok = value is None or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
        elif key in ("delay", "first_delay", "retry_after"):
            ok = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
        else:  # the integer fields
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
        if not ok or (value is None and key in ("signature", "delay", "first_delay", "status")):
            raise ValueError(f"reply field {key!r} has the wrong type")


__all__ = ["Reply", "ToolUse", "reply_from_json", "split_words"]
