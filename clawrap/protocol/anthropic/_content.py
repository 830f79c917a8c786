"""Anthropic Messages content -> internal turns and parts (sans-IO).

Content blocks are dispatched by hand on their ``type`` so that every error names
the field path the way Anthropic does (``messages.0.content.1.source: ...``):
text, image and document (base64, URL and text sources), tool_use, tool_result
(with nested text and images), thinking and redacted_thinking. ``{"role":
"system"}`` entries are read here too (:func:`system_entry`); the caller folds
them into the system prompt.
"""

from __future__ import annotations

import binascii
from typing import Any, Literal

from clawrap.core._config import Settings
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
from clawrap.protocol.anthropic._models import (
    _bad,
    _Base64Image,
    _Base64Pdf,
    _check,
    _Document,
    _Message,
    _short,
    _Text,
    _TextSource,
    _ThinkingBlock,
    _ToolResult,
    _ToolUse,
    _UrlSource,
)

_BLOCK_TYPES = "text, image, document, tool_use, tool_result, thinking, redacted_thinking"


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


def system_entry(message: _Message, i: int) -> str:
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


def turns_of(messages: list[_Message], settings: Settings) -> tuple[Turn, ...]:
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


__all__ = ["Role", "system_entry", "turns_of"]
