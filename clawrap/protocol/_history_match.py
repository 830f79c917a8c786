"""Matching a request's turns against a stored session's, by digests and shapes alone.

Pure (no I/O). :func:`match_history` decides how incoming turn digests relate to
stored ones; :func:`~clawrap.protocol._conversation.merge_history` applies its answer to the
turns themselves. The rules, in order (``n`` stored turns, ``m`` incoming):

1. No stored turns: everything is new.
2. One incoming turn is always a new message (a script may say "next" twice).
3. The incoming turns start with all stored turns: a resend; the rest is new.
4. They share the first ``k >= 1`` turns, then differ: a fork at ``k``.
   If they stop inside the stored history on a user turn, that is a
   regenerate: a fork with nothing new (the client's "retry" button).
5. They start with the end of the stored history (a client that drops old
   turns to fit its window): the rest is new.
6. The first turn differs but a later one sits where it was: the first
   message was edited, a fork at 0.
7. The first turn differs, nothing lines up, but at least ``n >= 2`` turns
   came and the first ``n`` have the stored turns' shapes (:func:`turn_shape`:
   role, tool calls, tool results): the same conversation resent with its
   first message edited and the client's copy of every later turn differing
   too (an answer it reformatted, or the only answer of a two-turn
   session), a fork at 0. The length and shape of a resend survive any
   rewording; new messages sent without their history are one message
   (rule 2) or a few, not the session's whole pattern over again.
8. Otherwise they are new messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from clawrap.core._request import ToolResultPart, ToolUsePart, Turn

MatchKind = Literal["new", "append", "resend", "window", "fork", "regenerate"]


@dataclass(frozen=True, slots=True)
class Match:
    """How incoming turns relate to stored ones, by digests alone.

    The conversation is ``stored[:base] + incoming[skip:]``; the new turns are
    ``incoming[skip:]``. ``base < len(stored)`` means a fork.
    """

    kind: MatchKind
    base: int
    skip: int


def _common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    k = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        k += 1
    return k


def _overlap(old: Sequence[str], new: Sequence[str]) -> int:
    """The longest ``w`` with ``old[-w:] == new[:w]`` (0 if none)."""
    for w in range(min(len(old), len(new)), 0, -1):
        if old[-w:] == new[:w]:
            return w
    return 0


def turn_shape(turn: Turn) -> str:
    """A turn's role and whether it carries tool calls or tool results, e.g. ``user+result``."""
    shape: str = turn.role
    if any(isinstance(p, ToolUsePart) for p in turn.parts):
        shape += "+call"
    if any(isinstance(p, ToolResultPart) for p in turn.parts):
        shape += "+result"
    return shape


def match_history(
    old: Sequence[str],
    new: Sequence[str],
    *,
    shapes: tuple[Sequence[str], Sequence[str]] | None = None,
) -> Match:
    """Apply the module's rules to stored digests ``old`` and incoming digests ``new``.

    ``shapes``: the :func:`turn_shape` of the stored and the incoming turns, for
    rule 7; without them that rule never applies.
    """
    n, m = len(old), len(new)
    if n == 0:
        return Match("new", 0, 0)
    if m <= 1:
        return Match("append", n, 0)
    k = _common_prefix(old, new)
    if k == n:
        return Match("resend", n, n)
    if k == m:
        return Match("regenerate", k, k)
    if k >= 1:
        return Match("fork", k, k)
    w = _overlap(old, new)
    if w:
        return Match("window", n, w)
    if any(old[i] == new[i] for i in range(1, min(n, m))):
        return Match("fork", 0, 0)
    if shapes is not None and 2 <= n <= m and list(shapes[0]) == list(shapes[1][:n]):
        return Match("fork", 0, 0)
    return Match("append", n, 0)


__all__ = ["Match", "MatchKind", "match_history", "turn_shape"]
