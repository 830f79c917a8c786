"""Conversations as data: canonical turns, digests, and matching a request against history.

Pure (no I/O). Three jobs:

- Storage form: :func:`dumps_turn` / :func:`loads_turn` turn a
  :class:`~clawrap.core._request.Turn` into canonical JSON and back, losslessly.
- Identity: :func:`turn_digest` hashes what makes a turn *the same turn* when a
  client sends it again: role, text (parts joined, ends stripped, ``\\r\\n`` as
  ``\\n``), tool calls with their ids, tool results, images and documents (by a
  hash of their data). Thinking is left out: OpenAI clients never send it back.
  :func:`conversation_key` / :func:`prefix_keys` chain digests into fingerprints
  of (system prompt, turns), so a process that holds a conversation can be found
  again from a later request that extends it.
- Merging: :func:`merge_history` decides how a request's turns relate to a
  stored session, by the rules of :func:`~clawrap.protocol._history_match.match_history`.

  A fork never changes the stored session: what the model sees is exactly
  what the client sent. Nothing new after the last answer is a 400.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clawrap.core._errors import invalid_request
from clawrap.core._events import (
    Event,
    Finished,
    FinishReason,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from clawrap.core._request import (
    DocumentPart,
    ImagePart,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
    Turn,
)
from clawrap.protocol._history_match import Match, MatchKind, match_history, turn_shape

# ---------------------------------------------------------------- storage form


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def part_to_json(part: Part) -> dict[str, Any]:
    """The canonical JSON object of one part (every field, nothing elided)."""
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        return {"type": "image", "media_type": part.media_type, "data": part.data, "url": part.url}
    if isinstance(part, DocumentPart):
        return {
            "type": "document",
            "media_type": part.media_type,
            "data": part.data,
            "title": part.title,
        }
    if isinstance(part, ThinkingPart):
        return {"type": "thinking", "thinking": part.thinking, "signature": part.signature}
    if isinstance(part, ToolUsePart):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": part.input}
    return {
        "type": "tool_result",
        "tool_use_id": part.tool_use_id,
        "content": [part_to_json(p) for p in part.content],
        "is_error": part.is_error,
    }


def _str(obj: dict[str, Any], key: str, optional: bool = False) -> Any:
    value = obj.get(key)
    if isinstance(value, str) or (optional and value is None):
        return value
    raise ValueError(f"part field {key!r} must be a string")


def part_from_json(obj: Any) -> Part:
    """The inverse of :func:`part_to_json`. Raises ValueError on anything malformed."""
    if not isinstance(obj, dict):
        raise ValueError("a part must be an object")
    kind = obj.get("type")
    if kind == "text":
        return TextPart(_str(obj, "text"))
    if kind == "image":
        return ImagePart(_str(obj, "media_type"), _str(obj, "data"), _str(obj, "url", True))
    if kind == "document":
        return DocumentPart(_str(obj, "media_type"), _str(obj, "data"), _str(obj, "title", True))
    if kind == "thinking":
        return ThinkingPart(_str(obj, "thinking"), _str(obj, "signature", True))
    if kind == "tool_use":
        if not isinstance(obj.get("input"), dict):
            raise ValueError("tool_use input must be an object")
        return ToolUsePart(_str(obj, "id"), _str(obj, "name"), obj["input"])
    if kind == "tool_result":
        content = obj.get("content")
        if not isinstance(content, list) or not isinstance(obj.get("is_error"), bool):
            raise ValueError("malformed tool_result")
        inner: list[TextPart | ImagePart] = []
        for item in content:
            part = part_from_json(item)
            if not isinstance(part, TextPart | ImagePart):
                raise ValueError("tool_result content holds only text and images")
            inner.append(part)
        return ToolResultPart(_str(obj, "tool_use_id"), tuple(inner), obj["is_error"])
    raise ValueError(f"unknown part type {kind!r}")


def turn_to_json(turn: Turn) -> dict[str, Any]:
    return {"role": turn.role, "parts": [part_to_json(p) for p in turn.parts]}


def turn_from_json(obj: Any) -> Turn:
    """The inverse of :func:`turn_to_json`. Raises ValueError on anything malformed."""
    if not isinstance(obj, dict) or obj.get("role") not in ("user", "assistant"):
        raise ValueError("a turn must be an object with role user or assistant")
    parts = obj.get("parts")
    if not isinstance(parts, list):
        raise ValueError("a turn's parts must be a list")
    return Turn(obj["role"], tuple(part_from_json(p) for p in parts))


def dumps_turn(turn: Turn) -> str:
    """Canonical JSON text of ``turn``: equal turns give equal text."""
    return _dumps(turn_to_json(turn))


def loads_turn(text: str) -> Turn:
    """The turn :func:`dumps_turn` wrote. Raises ValueError on anything else."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError("not JSON") from exc
    return turn_from_json(obj)


# ---------------------------------------------------------------- identity


def _norm_text(parts: Sequence[Part]) -> str:
    text = "".join(p.text for p in parts if isinstance(p, TextPart))
    return text.replace("\r\n", "\n").strip()


def _sha(data: str) -> str:
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _identity(part: Part) -> dict[str, Any] | None:
    if isinstance(part, TextPart | ThinkingPart):
        return None  # text is compared joined; thinking is not echoed by every client
    if isinstance(part, ImagePart):
        return {
            "type": "image",
            "media_type": part.media_type,
            "sha256": _sha(part.data),
            "url": part.url,
        }
    if isinstance(part, DocumentPart):
        return {"type": "document", "media_type": part.media_type, "sha256": _sha(part.data)}
    if isinstance(part, ToolUsePart):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": part.input}
    return {
        "type": "tool_result",
        "tool_use_id": part.tool_use_id,
        "is_error": part.is_error,
        "text": _norm_text(part.content),
        "images": [_identity(p) for p in part.content if isinstance(p, ImagePart)],
    }


def turn_digest(turn: Turn) -> str:
    """A hash of what identifies ``turn`` when a client resends it (see the module doc)."""
    identity = {
        "role": turn.role,
        "text": _norm_text(turn.parts),
        "parts": [i for i in (_identity(p) for p in turn.parts) if i is not None],
    }
    return _sha(_dumps(identity))


def _chain(previous: str, digest: str) -> str:
    return _sha(previous + digest)


def _start_key(system: str | None) -> str:
    return _sha(_dumps({"clawrap-conversation": 1, "system": system}))


def prefix_keys(system: str | None, turns: Sequence[Turn]) -> tuple[str, ...]:
    """``keys[i]`` fingerprints (system, ``turns[:i]``); there are ``len(turns) + 1``.

    The model, tools and options are not part of the key: whoever holds a
    conversation checks those separately.
    """
    keys = [_start_key(system)]
    for turn in turns:
        keys.append(_chain(keys[-1], turn_digest(turn)))
    return tuple(keys)


def conversation_key(system: str | None, turns: Sequence[Turn]) -> str:
    """The fingerprint of the whole conversation (``prefix_keys(...)[-1]``)."""
    key = _start_key(system)
    for turn in turns:
        key = _chain(key, turn_digest(turn))
    return key


# ---------------------------------------------------------------- merging


@dataclass(frozen=True, slots=True)
class Merge:
    """The outcome of :func:`merge_history`.

    ``conversation``: every turn the model must see, in order (stored turns for
    the part kept, since they keep what clients drop, such as signed thinking).
    ``new``: the turns the client added (``conversation[base:]``), to be stored
    with the reply. ``base``: how many stored turns are kept; a fork when it is
    below ``stored_len``.
    """

    kind: MatchKind
    conversation: tuple[Turn, ...]
    new: tuple[Turn, ...]
    base: int
    stored_len: int
    digests: tuple[str, ...] = field(default=(), repr=False)

    @property
    def forks(self) -> bool:
        return self.base < self.stored_len


def merge_history(
    stored: Sequence[Turn],
    incoming: Sequence[Turn],
    *,
    stored_digests: Sequence[str] | None = None,
) -> Merge:
    """Combine a session's ``stored`` turns with a request's ``incoming`` ones.

    Raises a 400 ClawrapError when there is nothing to answer: no turns, or
    turns that repeat the history up to an assistant answer.
    """
    if not incoming:
        raise invalid_request("The conversation has no messages.", param="messages")
    old = list(stored_digests) if stored_digests is not None else [turn_digest(t) for t in stored]
    if len(old) != len(stored):
        raise ValueError("stored_digests does not match stored")
    new = [turn_digest(t) for t in incoming]
    shapes = ([turn_shape(t) for t in stored], [turn_shape(t) for t in incoming])
    match = match_history(old, new, shapes=shapes)
    added = tuple(incoming[match.skip :])
    conversation = tuple(stored[: match.base]) + added
    if not added and conversation[-1].role == "assistant":
        raise invalid_request(
            "Nothing new to answer: the messages repeat this session's history up to an "
            "answer. Send the next message (or only the new one).",
            param="messages",
            code="session_nothing_new",
        )
    digests = tuple(old[: match.base]) + tuple(new[match.skip :])
    return Merge(match.kind, conversation, added, match.base, len(stored), digests)


# ---------------------------------------------------------------- the reply as a turn


class ReplyRecorder:
    """Collects a run's events into the assistant turn a client will send back.

    Feed it the events the client received (after stop sequences and output
    limits are applied), so the stored answer matches the client's copy.
    """

    def __init__(self) -> None:
        self._parts: list[list[Any]] = []  # [kind, text or call state]
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]
        self.usage: Usage | None = None
        self.finish: FinishReason | None = None

    def _tail(self, kind: str) -> list[Any]:
        if not self._parts or self._parts[-1][0] != kind:
            self._parts.append([kind, "", None])
        return self._parts[-1]

    def feed(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._tail("text")[1] += event.text
        elif isinstance(event, ReasoningDelta):
            self._tail("thinking")[1] += event.text
        elif isinstance(event, ReasoningSignature):
            self._tail("thinking")[2] = event.signature
            self._parts.append(["closed", "", None])  # a new thinking block starts fresh
        elif isinstance(event, ToolCallStart):
            state = [event.id, event.name, ""]
            self._calls[event.index] = state
            self._parts.append(["tool", state, None])
        elif isinstance(event, ToolCallDelta):
            if event.index in self._calls:
                self._calls[event.index][2] += event.arguments
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finished):
            self.finish = event.reason

    def turn(self) -> Turn | None:
        """The assistant turn so far, or None when the reply had no content."""
        parts: list[Part] = []
        for kind, value, signature in self._parts:
            if kind == "text" and value:
                parts.append(TextPart(value))
            elif kind == "thinking" and value:
                parts.append(ThinkingPart(value, signature))
            elif kind == "tool":
                parts.append(ToolUsePart(value[0], value[1], _arguments(value[2])))
        return Turn("assistant", tuple(parts)) if parts else None


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


__all__ = [
    "Match",
    "MatchKind",
    "Merge",
    "ReplyRecorder",
    "conversation_key",
    "dumps_turn",
    "loads_turn",
    "match_history",
    "merge_history",
    "part_from_json",
    "part_to_json",
    "prefix_keys",
    "turn_digest",
    "turn_from_json",
    "turn_shape",
    "turn_to_json",
]
