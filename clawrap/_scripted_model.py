"""A scripted stand-in for Claude behind the Messages API (sans-IO).

Tests, benchmarks and the offline demo point the real Claude Code CLI at a local server that
answers from a script instead of a model. This module is the script: :class:`Reply` describes one
answer (text, thinking, tool calls, pacing, failures), :class:`ScriptedModel` picks the reply for a
request and records every request, and :func:`render_stream` / :func:`render_message` turn a reply
into Messages API SSE events or a JSON body. The HTTP side lives in ``_mock_upstream``.

A reply is chosen, in order, by: rules registered with :meth:`ScriptedModel.when` (a marker in the
messages' text); an inline ``[[mock:{json}]]`` directive in the user's text (Reply fields as JSON);
the default reply, which says plainly that this is not Claude.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import trio

from ._sse import sse_event

DIRECTIVE = "[[mock:"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


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

    def __post_init__(self) -> None:
        # Accept lists (what callers naturally write) but keep the frozen value hashable-ish.
        if self.deltas is not None:
            object.__setattr__(self, "deltas", tuple(self.deltas))
        object.__setattr__(self, "tool_uses", tuple(self.tool_uses))
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


def reply_from_json(obj: Any) -> Reply:
    """A :class:`Reply` from JSON (a directive or ``POST /_mock/rules``); ValueError if invalid."""
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
    _check_types(kwargs)
    try:
        return Reply(**kwargs, tool_uses=tuple(tools))
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
    """The ``[[mock:{json}]]`` directive in the most recent user text that has one."""
    for role, text in reversed(message_texts(body)):
        if role != "user":
            continue
        start = text.rfind(DIRECTIVE)
        if start < 0:
            continue
        try:
            obj, end = json.JSONDecoder().raw_decode(text, start + len(DIRECTIVE))
        except json.JSONDecodeError:
            raise ValueError("the [[mock:...]] directive does not hold valid JSON") from None
        if text[end : end + 2] != "]]":
            raise ValueError("the [[mock:...]] directive must end with ]]")
        return reply_from_json(obj)
    return None


def estimate_tokens(body: Any) -> int:
    """A rough input token count: about four characters per token."""
    parts = [body.get(k) for k in ("system", "messages", "tools")] if isinstance(body, dict) else []
    return max(1, len(json.dumps(parts, ensure_ascii=False, default=str)) // 4)


def default_reply(body: Any) -> Reply:
    """What the offline model says when nothing was scripted: plainly, that it is not Claude."""
    said = last_user_line(body)
    quoted = f'You said: "{said}". ' if said else ""
    return Reply(
        text=(
            "This is clawrap's scripted offline model, not Claude: no real model is answering. "
            f"{quoted}To talk to Claude, log in with `claude login` (a Claude subscription) or "
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

    def next_reply(self) -> Reply:
        reply = self.replies[min(self.used, len(self.replies) - 1)]
        self.used += 1
        return reply


class ScriptedModel:
    """Picks a reply for each request and records every request (in-process rules first)."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default
        self.requests: list[RecordedRequest] = []
        self._rules: list[_Rule] = []
        self._changed = trio.Event()

    def when(self, marker: str, *replies: Reply) -> None:
        """Answer requests whose messages mention ``marker`` with ``replies`` in turn.

        The last reply repeats. Rules are matched against the latest message first.
        """
        if not marker or not replies:
            raise ValueError("when() needs a non-empty marker and at least one reply")
        self._rules.append(_Rule(marker, tuple(replies)))

    def clear_rules(self) -> None:
        self._rules.clear()

    def pick(self, body: Any) -> Reply:
        """The reply for this request body; ValueError for a malformed directive."""
        texts = message_texts(body)
        for _, text in reversed(texts):
            for rule in self._rules:
                if rule.marker in text:
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


# -- rendering


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One Messages API stream event."""

    type: str
    data: dict[str, Any]

    @property
    def is_delta(self) -> bool:
        return self.type == "content_block_delta"

    def encode(self) -> bytes:
        return sse_event(self.type, self.data)


def new_message_id() -> str:
    return f"msg_scripted_{uuid.uuid4().hex[:24]}"


def resolve_tool_name(name: str, body: Any) -> str:
    """The request's full tool name for ``name`` (``mcp__server__name``), else ``name``."""
    tools = body.get("tools") if isinstance(body, dict) else None
    names = [t.get("name") for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    if name in names:
        return name
    for candidate in names:
        if isinstance(candidate, str) and candidate.endswith(f"__{name}"):
            return candidate
    return name


def split_json(text: str, pieces: int = 3) -> list[str]:
    """``text`` cut into up to ``pieces`` chunks, as the API streams tool input."""
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _blocks(reply: Reply, body: Any) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each content block as (its final form, its deltas)."""
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if reply.thinking is not None:
        parts = split_words(reply.thinking)
        deltas = [{"type": "thinking_delta", "thinking": p} for p in parts]
        deltas.append({"type": "signature_delta", "signature": reply.signature})
        final = {"type": "thinking", "thinking": reply.thinking, "signature": reply.signature}
        blocks.append((final, deltas))
    text_parts = reply.text_deltas()
    if text_parts or not reply.tool_uses:
        deltas = [{"type": "text_delta", "text": p} for p in text_parts]
        blocks.append(({"type": "text", "text": "".join(text_parts)}, deltas))
    for tool in reply.tool_uses:
        tool_id = tool.id or f"toolu_scripted_{uuid.uuid4().hex[:20]}"
        name = resolve_tool_name(tool.name, body)
        raw = json.dumps(tool.input, ensure_ascii=False)
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in split_json(raw)]
        blocks.append(
            ({"type": "tool_use", "id": tool_id, "name": name, "input": tool.input}, deltas)
        )
    return blocks


def _usage(reply: Reply, body: Any, blocks: list[Any]) -> tuple[int, int]:
    counted = sum(1 for _, ds in blocks for d in ds if d["type"] != "signature_delta")
    input_tokens = reply.input_tokens if reply.input_tokens is not None else estimate_tokens(body)
    output = reply.output_tokens if reply.output_tokens is not None else counted
    return input_tokens, output


def _stop_reason(reply: Reply) -> str:
    return reply.stop_reason or ("tool_use" if reply.tool_uses else "end_turn")


def _model_name(body: Any) -> str:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else "claude-scripted"


def render_message(reply: Reply, body: Any, message_id: str | None = None) -> dict[str, Any]:
    """The reply as a non-streaming Messages API response body."""
    blocks = _blocks(reply, body)
    input_tokens, output_tokens = _usage(reply, body, blocks)
    return {
        "id": message_id or new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": _model_name(body),
        "content": [final for final, _ in blocks],
        "stop_reason": _stop_reason(reply),
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def render_stream(reply: Reply, body: Any, message_id: str | None = None) -> list[SseEvent]:
    """The reply as the Messages API stream events, message_start to message_stop."""
    blocks = _blocks(reply, body)
    input_tokens, output_tokens = _usage(reply, body, blocks)
    start = render_message(reply, body, message_id)
    start.update(content=[], stop_reason=None)
    start["usage"] = {"input_tokens": input_tokens, "output_tokens": 1}
    events = [SseEvent("message_start", {"type": "message_start", "message": start})]
    for index, (final, deltas) in enumerate(blocks):
        opening = dict(final)
        if final["type"] == "text":
            opening["text"] = ""
        elif final["type"] == "thinking":
            opening.update(thinking="", signature="")
        else:
            opening["input"] = {}
        events.append(
            SseEvent(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        for delta in deltas:
            events.append(
                SseEvent(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(
            SseEvent("content_block_stop", {"type": "content_block_stop", "index": index})
        )
    events.append(
        SseEvent(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    events.append(SseEvent("message_stop", {"type": "message_stop"}))
    return events


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """Anthropic's error shape."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def render_error(reply: Reply) -> dict[str, Any]:
    """The error body for a failing reply (HTTP error or mid-stream ``error`` event)."""
    status = reply.status if reply.is_error else 529
    error_type = reply.error_type or _ERROR_TYPES.get(status, "api_error")
    return error_body(error_type, reply.message or f"scripted {error_type}")


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
