"""The stages between the backend's events and the encoder, in the exchange's order.

Stop sequences and ``max_tokens`` (:mod:`clawrap.protocol._output_limits`) first, then
JSON fence stripping (:mod:`clawrap.protocol._json_fences`) of text when a JSON response
format was asked for, and at the end the check that the text is the JSON asked
for (:mod:`clawrap.protocol._json_output`). Sans-IO.
"""

from __future__ import annotations

from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event, Finished, TextDelta, ToolCallStart, Usage
from clawrap.core._request import CompletionRequest
from clawrap.protocol._json_fences import JsonFenceStripper
from clawrap.protocol._json_output import JsonOutputCheck
from clawrap.protocol._output_limits import OutputLimiter


class OutputPipeline:
    """Events from the backend -> events for the encoder.

    The output limiter (stop sequences, max tokens) comes first, then JSON fence
    stripping of text when a JSON response format was asked for. It also keeps the
    stream's order whatever the stages do: content, then one Usage, then one
    Finished; content after the end is discarded. With a JSON response format,
    :meth:`close` raises instead of finishing when the text the client got is not
    the JSON it asked for.
    """

    def __init__(self, request: CompletionRequest) -> None:
        self.limiter = _make_limiter(request)
        fmt = request.response_format
        self.fences = JsonFenceStripper() if fmt is not None else None
        self.json_check = JsonOutputCheck(fmt) if fmt is not None else None
        self.usage: Usage | None = None
        self.finish: Finished | None = None
        self._cut_short = False

    @property
    def finished(self) -> bool:
        """The limiter ended the reply before the backend did: halt the backend."""
        return self._cut_short

    def feed(self, event: Event) -> list[Event]:
        out: list[Event] = []
        staged = self.limiter.feed(event) if self.limiter is not None else [event]
        if not isinstance(event, Finished) and any(isinstance(e, Finished) for e in staged):
            self._cut_short = True
        for item in staged:
            if isinstance(item, Usage):
                self.usage = item
            elif isinstance(item, Finished):
                if self.finish is None:
                    self.finish = item
            elif self.finish is not None:
                continue
            elif isinstance(item, TextDelta) and self.fences is not None:
                text = self.fences.feed(item.text)
                if text:
                    out.append(TextDelta(text))
            else:
                if isinstance(item, ToolCallStart):
                    out.extend(self._flush_fences())
                out.append(item)
        self._check(out)
        return out

    def _check(self, out: list[Event]) -> None:
        if self.json_check is not None:
            for item in out:
                if isinstance(item, TextDelta):
                    self.json_check.feed(item.text)

    def _flush_fences(self) -> list[Event]:
        if self.fences is None:
            return []
        tail = self.fences.close()
        self.fences = None
        return [TextDelta(tail)] if tail else []

    def close(self) -> list[Event]:
        """The held-back tail, the usage and the finish.

        Raises if the run never finished, or if it finished normally with text that is
        not the JSON the response format asked for (the error replaces the finish).
        """
        out: list[Event] = []
        if self.limiter is not None:
            out.extend(e for e in self.limiter.close() if isinstance(e, TextDelta))
        out.extend(self._flush_fences())
        if self.finish is None:
            raise ClawrapError(
                "api_error", "The reply from Claude ended unexpectedly.", code="incomplete_reply"
            )
        self._check(out)
        if self.json_check is not None:
            error = self.json_check.verdict(self.finish.reason)
            if error is not None:
                raise error
        if self.usage is not None:
            out.append(self.usage)
        out.append(self.finish)
        return out


def _make_limiter(request: CompletionRequest) -> OutputLimiter | None:
    if not request.stop and request.max_output_tokens is None:
        return None
    return OutputLimiter(request.stop, request.max_output_tokens)


__all__ = ["OutputPipeline"]
