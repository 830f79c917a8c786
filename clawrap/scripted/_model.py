"""A scripted stand-in for Claude behind the Messages API (sans-IO): which reply, and a record.

Tests, benchmarks and the offline demo point the real Claude Code CLI at a local server that
answers from a script instead of a model. :class:`ScriptedModel` picks the
:class:`~clawrap.scripted._reply.Reply` for each request and records every request;
``_scripted_render`` turns the reply into a JSON body or SSE events; ``_mock_upstream`` serves it.
The names of all three are re-exported here.

A reply is chosen, in order, by: rules registered with :meth:`ScriptedModel.when` (a marker in the
messages' text); an inline ``[[mock:{json}]]`` directive in the user's text (Reply fields as JSON);
the default reply, which says plainly that this is not Claude."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import trio

from clawrap.core._models import CATALOGUE
from clawrap.scripted._render import (
    SseEvent,
    error_body,
    estimate_tokens,
    render_error,
    render_message,
    render_stream,
    resolve_tool_name,
    split_json,
)
from clawrap.scripted._reply import Reply, ToolUse, reply_from_json, split_words

DIRECTIVE = "[[mock:"


# -- reading requests


def message_texts(body: Any) -> list[tuple[str, str]]:
    """``(role, text)`` for each non-system message: its text blocks and tool_result contents."""
    out: list[tuple[str, str]] = []
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return out
    for message in messages:
        if not isinstance(message, dict) or message.get("role") == "system":
            continue
        role = message.get("role") if isinstance(message.get("role"), str) else ""
        out.append((str(role), "\n".join(_block_texts(message.get("content")))))
    return out


def _block_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    texts: list[str] = []
    for block in content:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, dict):
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif block.get("type") == "tool_result":
                texts.extend(_block_texts(block.get("content")))
    return texts


def last_user_line(body: Any) -> str:
    """The last line the user typed: skips ``<system-reminder>`` blocks and tool results."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        blocks = [content] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            continue
        for block in reversed(blocks):
            text = block if isinstance(block, str) else None
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text") if isinstance(block.get("text"), str) else None
            if text is None or text.lstrip().startswith("<system-reminder>"):
                continue
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                line = lines[-1]
                return line if len(line) <= 200 else line[:199] + "…"
    return ""


def find_directive(body: Any) -> Reply | None:
    """The reply a ``[[mock:{json}]]`` directive asks for, if one applies to this request.

    A directive applies to the exchange its user message starts: the request that answers it
    gets the directive's reply, and the requests after each later assistant turn (carrying tool
    results) get its ``then`` replies in turn, then the default. A newer typed user message ends
    the exchange. ValueError if the directive is malformed.
    """
    messages = body.get("messages") if isinstance(body, dict) else None
    turns_since = 0
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") == "system":
            continue
        if message.get("role") == "assistant":
            turns_since += 1
            continue
        if message.get("role") != "user":
            continue
        text = "\n".join(_block_texts(message.get("content")))
        start = text.rfind(DIRECTIVE)
        if start >= 0:
            sequence = [_parse_directive(text, start)]
            sequence.extend(sequence[0].then)
            return sequence[turns_since] if turns_since < len(sequence) else None
        if not _carries_tool_results(message):
            return None  # the user typed something new: an older directive no longer applies
    return None


def _parse_directive(text: str, start: int) -> Reply:
    try:
        obj, end = json.JSONDecoder().raw_decode(text, start + len(DIRECTIVE))
    except (json.JSONDecodeError, RecursionError):
        raise ValueError("the [[mock:...]] directive does not hold valid JSON") from None
    if text[end : end + 2] != "]]":
        raise ValueError("the [[mock:...]] directive must end with ]]")
    return reply_from_json(obj)


def _carries_tool_results(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def default_reply(body: Any) -> Reply:
    """What the offline model says when nothing was scripted: plainly, that it is not Claude."""
    said = last_user_line(body)
    quoted = f'You said: "{said}". ' if said else ""
    return Reply(
        text=(
            "This is clawrap's scripted offline model, not Claude: no real model is answering. "
            f"{quoted}To talk to Claude, log in with `clawrap login` (a Claude subscription) or "
            "set ANTHROPIC_API_KEY, then start clawrap without --offline."
        ),
        delay=0.02,
    )


# -- the model


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the stand-in received; ``body`` is the parsed JSON (None if there was none)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: str = ""

    @property
    def system_text(self) -> str:
        system = self.body.get("system") if isinstance(self.body, dict) else None
        return "\n".join(_block_texts(system))

    @property
    def text(self) -> str:
        return "\n".join(text for _, text in message_texts(self.body))

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
        }


@dataclass
class _Rule:
    marker: str
    replies: tuple[Reply, ...]
    used: int = 0
    model: str | None = None  # only requests whose model id contains this

    def applies(self, text: str, body: Any) -> bool:
        if self.marker not in text:
            return False
        model = body.get("model") if isinstance(body, dict) else None
        return self.model is None or (isinstance(model, str) and self.model in model)

    def next_reply(self) -> Reply:
        reply = self.replies[min(self.used, len(self.replies) - 1)]
        self.used += 1
        return reply


def catalogue_models() -> list[dict[str, Any]]:
    """clawrap's model catalogue as a Messages API model list would give it."""
    return [
        {
            "type": "model",
            "id": m.id,
            "display_name": m.display_name,
            "created_at": "2026-01-01T00:00:00Z",
            "max_input_tokens": m.context_window,
            "max_tokens": m.max_output_tokens,
        }
        for m in CATALOGUE
    ]


class ScriptedModel:
    """Picks a reply for each request and records every request (in-process rules first)."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default
        self.requests: list[RecordedRequest] = []
        self._rules: list[_Rule] = []
        self._changed = trio.Event()
        # What GET /v1/models lists (the Messages API's shape); tests may change it.
        self.models: list[dict[str, Any]] = catalogue_models()

    def when(self, marker: str, *replies: Reply, model: str | None = None) -> None:
        """Answer requests whose messages mention ``marker`` with ``replies`` in turn.

        The last reply repeats. Rules are matched against the latest message first.
        ``model``: only for requests whose ``model`` contains it (e.g. "haiku").
        """
        if not marker or not replies:
            raise ValueError("when() needs a non-empty marker and at least one reply")
        self._rules.append(_Rule(marker, tuple(replies), model=model))

    def clear_rules(self) -> None:
        self._rules.clear()

    def pick(self, body: Any) -> Reply:
        """The reply for this request body; ValueError for a malformed directive."""
        texts = message_texts(body)
        for _, text in reversed(texts):
            for rule in self._rules:
                if rule.applies(text, body):
                    return rule.next_reply()
        directive = find_directive(body)
        if directive is not None:
            return directive
        return self.default if self.default is not None else default_reply(body)

    def record(self, request: RecordedRequest) -> None:
        self.requests.append(request)
        self._changed.set()
        self._changed = trio.Event()

    def clear_requests(self) -> None:
        self.requests.clear()

    def requests_matching(self, marker: str) -> list[RecordedRequest]:
        """Recorded requests whose messages or system prompt mention ``marker``."""
        return [r for r in self.requests if marker in r.text or marker in r.system_text]

    async def wait_for_requests(self, n: int) -> list[RecordedRequest]:
        """Wait until at least ``n`` requests are recorded (bound it with ``trio.fail_after``)."""
        while len(self.requests) < n:
            await self._changed.wait()
        return list(self.requests)


__all__ = [
    "DIRECTIVE",
    "RecordedRequest",
    "Reply",
    "ScriptedModel",
    "SseEvent",
    "ToolUse",
    "default_reply",
    "error_body",
    "estimate_tokens",
    "find_directive",
    "last_user_line",
    "render_error",
    "render_message",
    "render_stream",
    "reply_from_json",
    "resolve_tool_name",
    "split_json",
    "split_words",
]
