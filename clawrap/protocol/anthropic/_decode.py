"""Anthropic Messages API request JSON -> the internal :class:`CompletionRequest` (sans-IO).

Pydantic validates at the JSON edge (:mod:`clawrap.protocol.anthropic._models`: strict types,
unknown fields ignored); content blocks are dispatched by hand on their ``type`` so that every error
names the field path the way Anthropic does (``messages.0.content.1.source:
...``) and never carries pydantic's own wording about unions or class names.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any, Literal

from clawrap.core._config import Settings
from clawrap.core._errors import invalid_request
from clawrap.core._models import resolve_model
from clawrap.core._request import (
    CompletionRequest,
    DocumentPart,
    ImagePart,
    NamedTool,
    Part,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
    Turn,
)
from clawrap.core._session_ids import check_session_id
from clawrap.protocol.anthropic._models import (
    MIN_THINKING_BUDGET,
    _bad,
    _Base64Image,
    _Base64Pdf,
    _Body,
    _check,
    _Document,
    _Message,
    _Metadata,
    _short,
    _Text,
    _TextSource,
    _Thinking,
    _ThinkingBlock,
    _Tool,
    _ToolChoice,
    _ToolResult,
    _ToolUse,
    _UrlSource,
)

# {"type": "adaptive"} lets the model decide how much to think. The internal request only
# knows a budget, so adaptive becomes a generous ceiling: a budget is an upper bound the
# model need not use, and 16k covers deep reasoning without letting thinking swallow a
# long answer (Claude Code's own largest preset, 31,999, is meant for one-off hard tasks).
ADAPTIVE_THINKING_BUDGET = 16_000

_BLOCK_TYPES = "text, image, document, tool_use, tool_result, thinking, redacted_thinking"


# -- content blocks --------------------------------------------------------------------


Role = Literal["user", "assistant"]


def _base64(data: str, path: str) -> str:
    try:
        binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raise _bad(path, "Input should be valid base64 data") from None
    return data


def _image(block: dict[str, Any], path: str, settings: Settings) -> ImagePart:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        b64 = _check(_Base64Image, source, f"{path}.source")
        return ImagePart(b64.media_type, _base64(b64.data, f"{path}.source.data"))
    if kind == "url":
        url = _check(_UrlSource, source, f"{path}.source")
        if not settings.allow_remote_images:
            raise _bad(
                f"{path}.source",
                "image URLs are disabled on this server; send the image as base64",
            )
        return ImagePart(media_type="", data="", url=url.url)
    if not isinstance(source, dict):
        raise _bad(f"{path}.source", "Input should be an object")
    raise _bad(f"{path}.source.type", "image sources must be 'base64' or 'url'")


def _document(block: dict[str, Any], path: str, settings: Settings) -> list[Part]:
    doc = _check(_Document, block, path)
    kind = doc.source.get("type")
    where = f"{path}.source"
    if kind == "base64":
        pdf = _check(_Base64Pdf, doc.source, where)
        return [DocumentPart(pdf.media_type, _base64(pdf.data, f"{where}.data"), doc.title)]
    if kind == "text":
        return [TextPart(_check(_TextSource, doc.source, where).data)]
    if kind == "content":
        inner = doc.source.get("content")
        if isinstance(inner, str):
            return [TextPart(inner)]
        if isinstance(inner, list):
            return list(_nested(inner, f"{where}.content", settings, ("text", "image")))
        raise _bad(f"{where}.content", "Input should be a valid string or a list of blocks")
    if kind in ("url", "file"):
        raise _bad(f"{where}.type", f"{kind} documents are not supported; send the PDF as base64")
    raise _bad(f"{where}.type", "document sources must be 'base64', 'text' or 'content'")


def _nested(
    blocks: list[Any], path: str, settings: Settings, kinds: tuple[str, ...]
) -> list[TextPart | ImagePart]:
    """Text and image blocks inside a tool result or a content document.

    ``kinds`` lists the block types allowed here; a document inside a document is
    not, which also bounds how deep hostile nesting can drive the recursion.
    """
    parts: list[TextPart | ImagePart] = []
    for i, block in enumerate(blocks):
        where = f"{path}.{i}"
        # A non-object passes on to _block, which rejects it with the usual message.
        kind = block.get("type") if isinstance(block, dict) else "text"
        if kind not in kinds:
            names = [repr(k) for k in kinds]
            expected = ", ".join(names[:-1]) + " or " + names[-1]
            raise _bad(f"{where}.type", f"expected {expected}, got {_short(kind)}")
        for part in _block(block, where, "user", settings):
            if not isinstance(part, TextPart | ImagePart):
                raise _bad(where, "PDF documents are not supported here")
            parts.append(part)
    return parts


def _tool_result(block: dict[str, Any], path: str, settings: Settings) -> ToolResultPart:
    result = _check(_ToolResult, block, path)
    content: list[TextPart | ImagePart]
    if result.content is None:
        content = []
    elif isinstance(result.content, str):
        content = [TextPart(result.content)] if result.content else []
    elif isinstance(result.content, list):
        content = _nested(
            result.content, f"{path}.content", settings, ("text", "image", "document")
        )
    else:
        raise _bad(f"{path}.content", "Input should be a valid string or a list of blocks")
    return ToolResultPart(result.tool_use_id, tuple(content), result.is_error)


def _block(block: Any, path: str, role: Role, settings: Settings) -> list[Part]:
    if not isinstance(block, dict):
        raise _bad(path, "Input should be an object")
    kind = block.get("type")
    only = _ROLE_OF.get(kind) if isinstance(kind, str) else None
    if only is not None and only != role:
        raise _bad(f"{path}.type", f"{kind} blocks may only appear in {only} messages")
    if kind == "text":
        text = _check(_Text, block, path).text
        return [TextPart(text)] if text else []
    if kind == "image":
        return [_image(block, path, settings)]
    if kind == "document":
        return _document(block, path, settings)
    if kind == "tool_use":
        use = _check(_ToolUse, block, path)
        return [ToolUsePart(use.id, use.name, use.input)]
    if kind == "tool_result":
        return [_tool_result(block, path, settings)]
    if kind == "thinking":
        thought = _check(_ThinkingBlock, block, path)
        return [ThinkingPart(thought.thinking, thought.signature)]
    if kind == "redacted_thinking":
        # Dropped: its payload is encrypted for the upstream session that produced it, the
        # internal request has no way to carry it, and the API accepts history without it.
        return []
    raise _bad(f"{path}.type", f"unsupported content block type {_short(kind)}; use {_BLOCK_TYPES}")


_ROLE_OF: dict[str, Role] = {
    "image": "user",
    "document": "user",
    "tool_result": "user",
    "tool_use": "assistant",
    "thinking": "assistant",
    "redacted_thinking": "assistant",
}


def _system_entry(message: _Message, i: int) -> str:
    """The text of a ``{"role": "system"}`` entry among the messages ("" for none).

    Claude Code sends these with its per-turn-control beta (its environment note, and
    empty ones that carry ``output_config``). The CLI behind clawrap cannot take a system
    message between turns, so their text joins the system prompt, in order.
    """
    content = message.content
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"messages.{i}.content", "Input should be a valid string or a list of blocks")
    texts: list[str] = []
    for j, block in enumerate(content):
        where = f"messages.{i}.content.{j}"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad(where, "system messages may hold text blocks only")
        texts.append(_check(_Text, block, where).text)
    return "\n\n".join(t for t in texts if t)


def _turns(messages: list[_Message], settings: Settings) -> tuple[Turn, ...]:
    if not [m for m in messages if m.role != "system"]:
        raise _bad("messages", "at least one message is required")
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        if message.role == "system":
            continue
        path = f"messages.{i}.content"
        content = message.content
        if isinstance(content, str):
            parts: list[Part] = [TextPart(content)] if content else []
        elif isinstance(content, list):
            parts = [
                p
                for j, b in enumerate(content)
                for p in _block(b, f"{path}.{j}", message.role, settings)
            ]
        else:
            raise _bad(path, "Input should be a valid string or a list of content blocks")
        final_assistant = i == len(messages) - 1 and message.role == "assistant"
        if not content and not final_assistant:
            raise _bad(
                f"messages.{i}",
                "all messages must have non-empty content except for the optional final "
                "assistant message",
            )
        turns.append(Turn(message.role, tuple(parts)))
    return tuple(turns)


# -- the rest of the request ----------------------------------------------------------


def _system(system: Any) -> str | None:
    if system is None:
        return None
    if isinstance(system, str):
        _no_nul(system, "system")
        return system or None
    if not isinstance(system, list):
        raise _bad("system", "Input should be a valid string or a list of text blocks")
    texts: list[str] = []
    for i, block in enumerate(system):
        where = f"system.{i}"
        if not isinstance(block, dict):
            raise _bad(where, "Input should be an object")
        if block.get("type") != "text":
            raise _bad(f"{where}.type", "system blocks must be text blocks")
        text = _check(_Text, block, where).text
        _no_nul(text, f"{where}.text")
        texts.append(text)
    return "\n\n".join(t for t in texts if t) or None


def _no_nul(text: str, where: str) -> None:
    # The system prompt travels to the CLI as a command-line argument or a file it reads as
    # text; neither can carry a NUL.
    if "\x00" in text:
        raise _bad(where, "contains a NUL character (U+0000), which a system prompt cannot carry")


def _tools(raw: list[Any] | None) -> tuple[ToolSpec, ...]:
    specs: list[ToolSpec] = []
    for i, item in enumerate(raw or ()):
        path = f"tools.{i}"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in (None, "custom"):
            raise _bad(
                f"{path}.type",
                f"tool type {_short(kind)} is not offered here: Claude Code's server tools "
                "(web search, code execution, bash, text editor, ...) are not available "
                "through this API; define a custom tool with name, description and input_schema",
            )
        tool = _check(_Tool, item, path)
        if tool.input_schema.get("type", "object") != "object":
            raise _bad(f"{path}.input_schema.type", "Input should be 'object'")
        if any(s.name == tool.name for s in specs):
            raise _bad(f"{path}.name", f"tool names must be unique; {tool.name!r} repeats")
        specs.append(ToolSpec(tool.name, tool.description, tool.input_schema))
    return tuple(specs)


def _tool_choice(choice: _ToolChoice | None, tools: tuple[ToolSpec, ...]) -> ToolChoice:
    if choice is None or choice.type == "auto":
        return "auto"
    if choice.type == "none":
        return "none"
    if not tools:
        raise _bad("tool_choice.type", f"{choice.type!r} requires at least one tool in tools")
    if choice.type == "any":
        return "required"
    if choice.name is None:
        raise _bad("tool_choice.name", "Field required")
    if all(t.name != choice.name for t in tools):
        raise _bad("tool_choice.name", f"no tool named {_short(choice.name)} in tools")
    return NamedTool(choice.name)


def _thinking_budget(thinking: _Thinking | None, max_tokens: int | None) -> int | None:
    if thinking is None or thinking.type == "disabled":
        return None
    if thinking.type == "adaptive":
        return ADAPTIVE_THINKING_BUDGET
    if thinking.budget_tokens is None:
        raise _bad("thinking.budget_tokens", "Field required")
    if max_tokens is not None and thinking.budget_tokens >= max_tokens:
        raise _bad("max_tokens", "must be greater than thinking.budget_tokens")
    return thinking.budget_tokens


def _session_id(headers: Mapping[str, str]) -> str | None:
    value = next((v for k, v in headers.items() if k.lower() == "x-session-id"), None)
    if value is None:
        return None
    check_session_id(value, "X-Session-Id")
    return value


def decode_messages(
    body: Any,
    headers: Mapping[str, str],
    settings: Settings,
    *,
    require_max_tokens: bool = True,
) -> CompletionRequest:
    """A parsed ``POST /v1/messages`` body -> the internal request.

    ``require_max_tokens=False`` serves ``/v1/messages/count_tokens``, which has none.
    Raises ClawrapError: 400 naming the offending field path, 404 for an unknown model.
    """
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    parsed = _check(_Body, body, "")
    if require_max_tokens and parsed.max_tokens is None:
        raise _bad("max_tokens", "Field required")
    requested = parsed.model or settings.default_model
    model = resolve_model(requested, settings)
    tools = _tools(parsed.tools)
    fmt = parsed.output_format or (parsed.output_config.format if parsed.output_config else None)
    entries = [(i, m) for i, m in enumerate(parsed.messages) if m.role == "system"]
    in_turns = [_system_entry(m, i) for i, m in entries]
    system = "\n\n".join(t for t in (_system(parsed.system), *in_turns) if t) or None
    # The effort a system entry carries (per-turn control) counts when the body has none.
    effort = parsed.output_config.effort if parsed.output_config else None
    for _, message in entries:
        if effort is None and message.output_config is not None:
            effort = message.output_config.effort
    return CompletionRequest(
        model=model,
        requested_model=requested,
        turns=_turns(parsed.messages, settings),
        system=system,
        tools=tools,
        tool_choice=_tool_choice(parsed.tool_choice, tools),
        parallel_tool_calls=not (
            parsed.tool_choice and parsed.tool_choice.disable_parallel_tool_use
        ),
        max_output_tokens=parsed.max_tokens,
        stop=tuple(_stop_sequences(parsed.stop_sequences)),
        stream=parsed.stream,
        response_format=ResponseFormat("json_schema", fmt.json_schema, strict=True)
        if fmt
        else None,
        effort=effort,
        thinking_budget=_thinking_budget(parsed.thinking, parsed.max_tokens),
        session_id=_session_id(headers),
        metadata=_metadata(parsed.metadata),
    )


def _stop_sequences(stops: list[str] | None) -> list[str]:
    for i, stop in enumerate(stops or ()):
        if not stop:
            raise _bad(f"stop_sequences.{i}", "stop sequences must be non-empty")
    return list(stops or ())


def _metadata(metadata: _Metadata | None) -> dict[str, Any]:
    return {"user_id": metadata.user_id} if metadata and metadata.user_id else {}


__all__ = [
    "ADAPTIVE_THINKING_BUDGET",
    "MIN_THINKING_BUDGET",
    "decode_messages",
]
