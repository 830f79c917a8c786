"""Strips a Markdown code fence around a JSON answer, incrementally (sans-IO).

In JSON mode a model sometimes answers ```` ```json\\n{...}\\n``` ````. Clients
parse the content as JSON, so the fence line at the start and the closing fence
at the end (with the whitespace around them) are removed as text streams in.
Only what could still turn out to be a fence is held back: leading whitespace
and backticks until the first line is known, then, after an opening fence, a
trailing run of whitespace and up to three backticks. Text that does not start
with a fence passes through unchanged and at once.
"""

from __future__ import annotations

import re
from typing import Literal

# the rest of an opening fence line: an optional language tag (json, JSON, jsonc, ...)
_INFO = re.compile(r"[ \t]*[A-Za-z0-9_+.\-]*[ \t]*\r?")
_MAX_INFO = 32
_CLOSING = re.compile(r"\s*```\s*")


def _fence_tail(text: str) -> int:
    """Length of the suffix of ``text`` that could be (the start of) a closing fence."""
    end = len(text)
    while end and text[end - 1].isspace():
        end -= 1
    ticks = end
    while ticks and text[ticks - 1] == "`" and end - ticks < 3:
        ticks -= 1
    count = end - ticks
    # Three backticks may be followed by whitespace; one or two must end the text.
    if count == 3 or (count and end == len(text)):
        start = ticks
        while start and text[start - 1].isspace():
            start -= 1
        return len(text) - start
    return len(text) - end


class JsonFenceStripper:
    """``feed(text) -> text`` and ``close() -> text``: the answer without its fence."""

    def __init__(self) -> None:
        self._state: Literal["start", "fenced", "plain"] = "start"
        self._held = ""

    def feed(self, text: str) -> str:
        if self._state == "plain":
            return text
        self._held += text
        if self._state == "start":
            return self._opening()
        return self._release()

    def close(self) -> str:
        """The end of the answer: whatever was held back and is not a fence."""
        held, self._held = self._held, ""
        state, self._state = self._state, "plain"
        if state == "start":
            rest = held.lstrip()
            lone_fence = rest.startswith("```") and _INFO.fullmatch(rest[3:])
            return "" if lone_fence else held
        if state == "fenced" and _CLOSING.fullmatch(held):
            return ""
        return held

    def _opening(self) -> str:
        held = self._held
        rest = held.lstrip()
        if not rest or "```".startswith(rest):
            return ""  # whitespace or backticks so far: it may still be a fence
        if rest.startswith("```"):
            line, newline, body = rest[3:].partition("\n")
            if len(line) <= _MAX_INFO and _INFO.fullmatch(line):
                if not newline:
                    return ""  # the fence line is not complete yet
                self._state, self._held = "fenced", body
                return self._release()
        self._state, self._held = "plain", ""
        return held

    def _release(self) -> str:
        keep = _fence_tail(self._held)
        out = self._held[: len(self._held) - keep]
        self._held = self._held[len(self._held) - keep :]
        return out


__all__ = ["JsonFenceStripper"]
