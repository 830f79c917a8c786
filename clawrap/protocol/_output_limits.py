"""Stop sequences and ``max_tokens``, enforced on the event stream by clawrap itself.

Sans-IO. :class:`OutputLimiter` sits between the backend and the encoder:
events go in one at a time and come out, possibly cut short, followed by the
:class:`~clawrap.core._events.Finished` the limit implies. Limits apply to answer
text only; reasoning and tool calls pass untouched.

Stop sequences may arrive split across deltas, so the limiter holds back the
longest suffix of the text that could still be the start of one. The earliest
*ending* match wins, which is what a model stopping as soon as its output ends
with a stop sequence would do, and which does not depend on how the text was split.

There is no tokenizer offline, so tokens are counted approximately:

- a run of letters and digits (a word) costs ``max(1, ceil(len / 4) - 1)`` tokens:
  one token for words of up to 8 characters, then about one per 4 characters;
- each CJK character, and each other non-space character (punctuation), costs 1;
- whitespace is free, and belongs to the token after it (as in BPE vocabularies),
  so a cut never leaves trailing whitespace. It is held back only once the budget
  is spent (the next token would be cut); before that it streams as it comes.

So N short whitespace-separated words cost N tokens. When the next token would
exceed the budget, the text is cut before it (a long word is cut inside, at the
last character that fits) and ``Finished("max_tokens")`` follows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from clawrap.core._events import Event, Finished, InputTokens, TextDelta, Usage

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECE = re.compile(rf"(\s+)|([{_CJK}])|([^\W{_CJK}]+)|(.)", re.DOTALL)


def word_cost(length: int) -> int:
    """Approximate tokens in a word of ``length`` characters."""
    return max(1, -(-length // 4) - 1)


def count_tokens(text: str) -> int:
    """Approximate tokens in ``text`` (the counting :class:`OutputLimiter` applies)."""
    total = 0
    for space, _cjk, word, _other in _PIECE.findall(text):
        if word:
            total += word_cost(len(word))
        elif not space:
            total += 1
    return total


class _TokenBudget:
    """Counts tokens over text fed in pieces; says where the budget runs out."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0  # tokens of closed tokens
        self._word = 0  # length of the word still open at the end of the text so far
        self._space = ""  # held whitespace: it belongs to the next token

    def _close_word(self) -> None:
        if self._word:
            self._used += word_cost(self._word)
            self._word = 0

    def feed(self, text: str) -> tuple[str, bool]:
        """(text within the budget, whether the budget ran out)."""
        out: list[str] = []
        for m in _PIECE.finditer(text):
            space, word = m.group(1), m.group(3)
            if space:
                self._close_word()
                if self._used < self._limit:
                    # A next token would fit (at least its start): no cut can follow
                    # this whitespace, so it goes out now instead of waiting for it.
                    out.append(space)
                else:
                    self._space += space
                continue
            if not word or self._space or not self._word:
                self._close_word()
                if self._used + 1 > self._limit:
                    return "".join(out), True
                out.append(self._space)
                self._space = ""
            if not word:
                self._used += 1
                out.append(m.group())
                continue
            # a word of length L fits while word_cost(L) <= limit - used, i.e. L <= 4 * (r + 1)
            room = 4 * (self._limit - self._used + 1) - self._word
            out.append(word[:room])
            self._word += min(len(word), room)
            if len(word) > room:
                return "".join(out), True
        return "".join(out), False

    def flush(self) -> str:
        """The text ended: release held whitespace."""
        self._close_word()
        space, self._space = self._space, ""
        return space


def _holdback(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop sequence."""
    best = 0
    for stop in stops:
        start = max(len(text) - len(stop) + 1, 0)
        i = text.find(stop[0], start)
        while i != -1 and len(text) - i > best:
            if stop.startswith(text[i:]):
                best = len(text) - i
                break
            i = text.find(stop[0], i + 1)
    return best


def _first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """(start, stop) of the match that ends first; on a tie, the longer one."""
    best: tuple[int, int, str] | None = None
    for stop in stops:
        i = text.find(stop)
        if i != -1 and (best is None or (i + len(stop), i) < (best[0], best[1])):
            best = (i + len(stop), i, stop)
    return None if best is None else (best[1], best[2])


class OutputLimiter:
    """Applies stop sequences and ``max_tokens`` to a run's events.

    ``feed`` returns the events to pass on (possibly none while text is held
    back). Once a limit is reached, ``finished`` is true: the caller should halt
    the backend; later content and the backend's own ``Finished`` are dropped,
    but :class:`~clawrap.core._events.Usage` still passes.
    """

    def __init__(self, stop: Sequence[str], max_tokens: int | None) -> None:
        self._stops = tuple(s for s in stop if s)
        self._budget = _TokenBudget(max_tokens) if max_tokens is not None else None
        self._held = ""  # text that may be the start of a stop sequence
        self._finished = False
        self._passthrough = not self._stops and self._budget is None

    @property
    def finished(self) -> bool:
        """A ``Finished`` has been passed on (from a limit or from upstream)."""
        return self._finished

    def feed(self, event: Event) -> list[Event]:
        if self._passthrough:
            return [event]
        if isinstance(event, Usage | InputTokens):
            return [event]
        if self._finished:
            return []
        if isinstance(event, TextDelta):
            return self._text(event.text)
        # Anything else ends the run of text: what was held back can no longer
        # become a stop sequence.
        out = self._flush()
        if self._finished:
            return out
        if isinstance(event, Finished):
            self._finished = True
        out.append(event)
        return out

    def close(self) -> list[Event]:
        """The stream ended without a ``Finished``: release held-back text."""
        return [] if self._finished or self._passthrough else self._flush()

    def _emit(self, text: str, *, last: bool) -> list[Event]:
        """``text`` through the token budget; ``last``: no more text follows."""
        cut = False
        if self._budget is not None:
            text, cut = self._budget.feed(text)
            if last and not cut:
                text += self._budget.flush()
        out: list[Event] = [TextDelta(text)] if text else []
        if cut:
            self._finished = True
            out.append(Finished("max_tokens"))
        return out

    def _flush(self) -> list[Event]:
        held, self._held = self._held, ""
        return self._emit(held, last=True)

    def _text(self, text: str) -> list[Event]:
        text = self._held + text
        self._held = ""
        if self._stops:
            hit = _first_stop(text, self._stops)
            if hit is not None:
                start, stop = hit
                out = self._emit(text[:start], last=True)
                if not self._finished:
                    self._finished = True
                    out.append(Finished("stop_sequence", stop_sequence=stop))
                return out
            keep = _holdback(text, self._stops)
            if keep:
                text, self._held = text[:-keep], text[-keep:]
        return self._emit(text, last=False)


__all__ = ["OutputLimiter", "count_tokens", "word_cost"]
