"""A Responses API ``input`` -> the internal conversation, and the items as stored (sans-IO).

``input`` is a string (one user message) or a list of items: messages (roles
user, assistant, system, developer; parts ``input_text``, ``input_image``,
``input_file``, ``output_text``, ``refusal``), ``function_call`` /
``function_call_output``, ``custom_tool_call`` / ``custom_tool_call_output`` and
``reasoning`` items. System and developer messages become system text; the rest
become turns, consecutive items of one role forming one turn (a reasoning item,
a message and two function calls of the assistant are one assistant turn).

A ``reasoning`` item carrying a thinking block clawrap wrote
(:mod:`clawrap.protocol.responses._reasoning`) becomes that block again; other
reasoning items are dropped (their content is for another server).
``item_reference`` items are resolved by the caller before decoding (they need
the response store). Every item is also returned in a normalized form with an
``id``, for ``GET /v1/responses/{id}/input_items``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from clawrap.core._config import Settings
from clawrap.core._errors import invalid_request
from clawrap.core._request import (
    DocumentPart,
    ImagePart,
    Part,
    TextPart,
    ToolResultPart,
    ToolUsePart,
    Turn,
)
from clawrap.protocol.openai._decode import _base64, _data_uri, _image, brief
from clawrap.protocol.responses._reasoning import decode_thinking

Role = Literal["user", "assistant"]

_USER_PARTS = frozenset({"input_text", "input_image", "input_file", "text"})
_ASSISTANT_PARTS = frozenset({"output_text", "refusal", "input_text", "text"})
_SYSTEM_PARTS = frozenset({"input_text", "text"})
_ITEM_TYPES = (
    "message, function_call, function_call_output, custom_tool_call, "
    "custom_tool_call_output, reasoning or item_reference"
)


def new_item_id(prefix: str) -> str:
    """An item id shaped like OpenAI's (``msg_`` + 48 hex digits)."""
    return f"{prefix}_{secrets.token_hex(24)}"


@dataclass(slots=True)
class DecodedInput:
    """What an ``input`` holds: system text pieces, turns, and the items as stored."""

    system: list[str] = field(default_factory=list)
    turns: list[tuple[Role, list[Part]]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, role: Role, parts: list[Part]) -> None:
        if not parts:
            return
        if self.turns and self.turns[-1][0] == role:
            self.turns[-1][1].extend(parts)
        else:
            self.turns.append((role, list(parts)))

    def frozen_turns(self) -> tuple[Turn, ...]:
        return tuple(Turn(role, tuple(parts)) for role, parts in self.turns)


def _str_field(item: dict[str, Any], key: str, param: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        where = f"{param}.{key}"
        if value is None:
            raise invalid_request(f"Missing required parameter '{where}'.", param=where)
        raise invalid_request(f"'{where}' must be a string.", param=where)
    return value


def _document(part: dict[str, Any], param: str) -> DocumentPart:
    data = part.get("file_data")
    if not isinstance(data, str):
        if part.get("file_id") is not None or part.get("file_url") is not None:
            what = "uploaded file ids and file URLs are not supported; send file_data"
        else:
            what = "file_data is required"
        raise invalid_request(f"'{param}': {what}.", param=f"{param}.file_data")
    where = f"{param}.file_data"
    if data.startswith("data:"):
        media, b64 = _data_uri(data, where)
    else:
        media, b64 = "application/pdf", _base64(data, where)
        if not b64.startswith("JVBER"):  # base64 of "%PDF"
            media = "unknown"
    if media != "application/pdf":
        raise invalid_request(f"'{where}': only PDF files are supported.", param=where)
    filename = part.get("filename")
    return DocumentPart(media, b64, filename if isinstance(filename, str) else None)


def _parts(
    content: Any, param: str, allowed: frozenset[str], settings: Settings
) -> list[TextPart | ImagePart | DocumentPart]:
    """Message content (a string or a list of parts) -> parts, empty text dropped."""
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    if not isinstance(content, list):
        raise invalid_request(f"'{param}' must be a string or an array of parts.", param=param)
    out: list[TextPart | ImagePart | DocumentPart] = []
    for j, part in enumerate(content):
        p = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str):
            raise invalid_request(
                f"'{p}' must be an object with a string 'type'.", param=f"{p}.type"
            )
        assert isinstance(part, dict)
        if kind not in allowed:
            raise invalid_request(
                f"Content part type {brief(kind)} is not supported in '{param}'.",
                param=f"{p}.type",
            )
        if kind in ("input_text", "output_text", "text", "refusal"):
            key = "refusal" if kind == "refusal" else "text"
            text = _str_field(part, key, p)
            out.extend([TextPart(text)] if text else [])
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                what = "uploaded file ids are not supported" if part.get("file_id") else "required"
                where = f"{p}.image_url"
                raise invalid_request(f"'{where}': {what}; send a data: URI.", param=where)
            out.append(_image(url, f"{p}.image_url", settings))
        else:
            out.append(_document(part, p))
    return out


def _arguments(text: str, param: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise invalid_request(f"'{param}' must be a JSON object encoded as a string.", param=param)
    return value


def _output_parts(output: Any, param: str, settings: Settings) -> tuple[TextPart | ImagePart, ...]:
    """A tool call's output: a string or a list of input parts (files are not kept)."""
    parts = _parts(output, param, _USER_PARTS, settings)
    return tuple(p for p in parts if isinstance(p, TextPart | ImagePart))


class _Decoder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.out = DecodedInput()

    def item(self, i: int, item: Any) -> None:
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid_request(f"'{param}' must be an object.", param=param)
        kind = item.get("type", "message" if "role" in item else None)
        stored = dict(item)
        if kind == "message":
            self._message(item, param, stored)
        elif kind in ("function_call", "custom_tool_call"):
            call_id = _str_field(item, "call_id", param)
            name = _str_field(item, "name", param)
            if kind == "function_call":
                args = _arguments(_str_field(item, "arguments", param), f"{param}.arguments")
            else:
                args = {"input": _str_field(item, "input", param)}
            self.out.add("assistant", [ToolUsePart(call_id, name, args)])
            stored.setdefault("id", new_item_id("fc" if kind == "function_call" else "ctc"))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = _str_field(item, "call_id", param)
            if "output" not in item:
                where = f"{param}.output"
                raise invalid_request(f"Missing required parameter '{where}'.", param=where)
            content = _output_parts(item["output"], f"{param}.output", self.settings)
            self.out.add("user", [ToolResultPart(call_id, content)])
            stored.setdefault("id", new_item_id("fco"))
        elif kind == "reasoning":
            encrypted = item.get("encrypted_content")
            thought = decode_thinking(encrypted) if isinstance(encrypted, str) else None
            if thought is not None:
                self.out.add("assistant", [thought])
            stored.setdefault("id", new_item_id("rs"))
            stored.setdefault("summary", [])
        elif kind == "item_reference":
            raise invalid_request(
                f"'{param}': item_reference items need a stored response that holds them.",
                param=f"{param}.id",
            )
        else:
            shown = brief(kind) if isinstance(kind, str) else "missing"
            raise invalid_request(
                f"Input item type {shown} is not supported; use {_ITEM_TYPES}.",
                param=f"{param}.type",
            )
        stored.setdefault("status", "completed")
        self.out.items.append(stored)

    def _message(self, item: dict[str, Any], param: str, stored: dict[str, Any]) -> None:
        role = item.get("role")
        content = item.get("content")
        where = f"{param}.content"
        if content is None:
            raise invalid_request(f"Missing required parameter '{where}'.", param=where)
        if role in ("system", "developer"):
            parts = _parts(content, where, _SYSTEM_PARTS, self.settings)
            text = "".join(p.text for p in parts if isinstance(p, TextPart))
            self.out.system.extend([text] if text else [])
        elif role == "user":
            self.out.add("user", [*_parts(content, where, _USER_PARTS, self.settings)])
        elif role == "assistant":
            self.out.add("assistant", [*_parts(content, where, _ASSISTANT_PARTS, self.settings)])
        else:
            raise invalid_request(
                f"'{param}.role' must be 'user', 'assistant', 'system' or 'developer'.",
                param=f"{param}.role",
            )
        stored["type"] = "message"
        if isinstance(content, str):
            kind = "output_text" if role == "assistant" else "input_text"
            part: dict[str, Any] = {"type": kind, "text": content}
            if role == "assistant":
                part["annotations"] = []
            stored["content"] = [part]
        stored.setdefault("id", new_item_id("msg"))


def decode_input(input_: Any, settings: Settings) -> DecodedInput:
    """``input`` -> system text pieces, turns and normalized items.

    Raises ClawrapError 400 naming the offending ``param`` (``input[2].content[0]``).
    """
    decoder = _Decoder(settings)
    if isinstance(input_, str):
        decoder.item(0, {"type": "message", "role": "user", "content": input_})
        return decoder.out
    if not isinstance(input_, list):
        raise invalid_request("'input' must be a string or an array of items.", param="input")
    for i, item in enumerate(input_):
        decoder.item(i, item)
    return decoder.out


__all__ = ["DecodedInput", "decode_input", "new_item_id"]
