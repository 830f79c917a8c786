"""OpenAI Chat Completions messages -> the internal conversation (system text and turns).

Sans-IO. Fixed-shape objects are validated with pydantic (unknown fields are
ignored, as OpenAI-compatible clients send many); polymorphic fields (message
content, content parts) are dispatched by hand so that every error names one
dotted ``param`` (``messages[2].content[0].image_url``) and a readable message
instead of a dump of union branches. The request-level options are decoded in
:mod:`clawrap.protocol.openai._dialect`.
"""

from __future__ import annotations

import binascii
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

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


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class ChatWireOptions:
    """What the chat completions encoders need beyond the internal request.

    ``model`` is the id the client asked for, echoed in every response.
    ``legacy_functions``: the request used ``functions``/``function_call``, so the
    answer carries ``function_call`` rather than ``tool_calls``.
    """

    model: str
    include_usage: bool = False
    legacy_functions: bool = False
    completion_id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    n: int = 1  # choices to generate, each its own run


# -- pydantic models of messages and parts ---------------------------


class StrictModel(BaseModel):
    """Base of the request models."""

    # strict: "5" is not an int and 1 is not a bool, as with OpenAI itself
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class _FunctionCall(StrictModel):
    name: str
    arguments: str = ""


class _ToolCall(StrictModel):
    id: str
    type: Literal["function"] = "function"
    function: _FunctionCall


class ChatMessage(StrictModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Any = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    function_call: _FunctionCall | None = None
    tool_call_id: str | None = None


class _ImageURL(StrictModel):
    url: str
    detail: str | None = None


class _FileObject(StrictModel):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class _FilePartModel(StrictModel):
    file: _FileObject


# -- validation helpers ----------------------------------------------------------------

_M = TypeVar("_M", bound=BaseModel)


def brief(value: str, limit: int = 64) -> str:
    """``repr`` of a client-given string, cut short: error messages never echo a whole body."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for item in loc:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else item)
    return out


def validate_model(model: type[_M], data: Any, prefix: tuple[int | str, ...] = ()) -> _M:
    """``model.model_validate`` with the first error as a 400 naming its dotted path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        param = _param(prefix + tuple(err["loc"]))
        if err["type"] == "missing":
            raise invalid_request(f"Missing required parameter '{param}'.", param=param) from None
        # the default message for a non-object names the internal model class
        msg = "Input should be an object" if err["type"] == "model_type" else err["msg"]
        raise invalid_request(
            f"Invalid value for '{param}': {msg[:1].lower()}{msg[1:]}.", param=param
        ) from None


# -- content parts ----------------------------------------------------------------------

_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
_IMAGE_EXTENSIONS = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg"}
_IMAGE_EXTENSIONS |= {"gif": "image/gif", "webp": "image/webp"}


def _base64(data: str, param: str) -> str:
    data = "".join(data.split())
    try:
        ok = bool(data) and bool(binascii.a2b_base64(data, strict_mode=True))
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise invalid_request(f"'{param}' does not hold valid base64 data.", param=param)
    return data


def _data_uri(uri: str, param: str) -> tuple[str, str]:
    """``data:<type>;base64,<data>`` -> (media type, base64 data)."""
    header, comma, data = uri[5:].partition(",")
    fields = header.split(";")
    if not comma or "base64" not in (f.strip().lower() for f in fields[1:]):
        raise invalid_request(f"'{param}' must be a base64 data: URI.", param=param)
    media = fields[0].strip().lower()
    return ("image/jpeg" if media == "image/jpg" else media), _base64(data, param)


def _image(url: str, param: str, settings: Settings) -> ImagePart:
    if url.startswith("data:"):
        media, data = _data_uri(url, param)
        if media not in _IMAGE_TYPES:
            kinds = "png, jpeg, gif or webp"
            raise invalid_request(
                f"'{param}': images must be {kinds}, not {brief(media)}.", param=param
            )
        return ImagePart(media_type=media, data=data)
    if url.lower().startswith(("http://", "https://")):
        if not settings.allow_remote_images:
            raise invalid_request(
                f"'{param}': remote image URLs are not enabled on this server; "
                "send the image as a base64 data: URI.",
                param=param,
            )
        # The real type comes from the fetch; this guess only fills the field.
        ext = url.split("?", 1)[0].rsplit(".", 1)[-1].lower()
        return ImagePart(media_type=_IMAGE_EXTENSIONS.get(ext, ""), data="", url=url)
    raise invalid_request(f"'{param}' must be a data: URI or an http(s) URL.", param=param)


def _document(part: Any, param: str) -> DocumentPart:
    file = validate_model(_FilePartModel, part, (param,)).file
    if file.file_data is None:
        what = "uploaded file ids are not supported" if file.file_id else "file_data is required"
        raise invalid_request(f"'{param}.file': {what}.", param=f"{param}.file.file_data")
    data_param = f"{param}.file.file_data"
    if file.file_data.startswith("data:"):
        media, data = _data_uri(file.file_data, data_param)
    else:
        media, data = "application/pdf", _base64(file.file_data, data_param)
        if not data.startswith("JVBER"):  # base64 of "%PDF"
            media = "unknown"
    if media != "application/pdf":
        raise invalid_request(f"'{data_param}': only PDF files are supported.", param=data_param)
    return DocumentPart(media_type=media, data=data, title=file.filename)


def _parts(
    content: Any, param: str, allowed: frozenset[str], settings: Settings
) -> list[TextPart | ImagePart | DocumentPart]:
    """Message content (a string, an array of parts, or null) -> parts, empty text dropped."""
    if content is None:
        return []
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
        if kind not in allowed:
            raise invalid_request(
                f"Content part type {brief(kind)} is not supported in '{param}'.", param=f"{p}.type"
            )
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise invalid_request(f"'{p}.{kind}' must be a string.", param=f"{p}.{kind}")
            out.extend([TextPart(text)] if text else [])
        elif kind == "image_url":
            image = part.get("image_url")
            if not isinstance(image, str):  # some clients send the URL itself
                image = validate_model(_ImageURL, image, (p, "image_url")).url
            out.append(_image(image, f"{p}.image_url", settings))
        else:
            out.append(_document(part, p))
    return out


_USER_PARTS = frozenset({"text", "image_url", "file"})
_TEXT_PARTS = frozenset({"text"})
_ASSISTANT_PARTS = frozenset({"text", "refusal"})
_TOOL_RESULT_PARTS = frozenset({"text", "image_url"})


def _text(content: Any, param: str, settings: Settings) -> str:
    parts = _parts(content, param, _TEXT_PARTS, settings)
    return "".join(p.text for p in parts if isinstance(p, TextPart))


def _arguments(arguments: str, param: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise invalid_request(f"'{param}' must be a JSON object encoded as a string.", param=param)
    if "\\u" in arguments:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise invalid_request(
                f"'{param}' holds a lone UTF-16 surrogate escape, which is not a Unicode "
                "character.",
                param=param,
            ) from None
    return value


# -- the conversation ----------------------------------------------------------------------


@dataclass(slots=True)
class _Conversation:
    settings: Settings
    system: list[str] = field(default_factory=list)
    turns: list[tuple[Literal["user", "assistant"], list[Part]]] = field(default_factory=list)
    legacy_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, id), unanswered

    def add(self, role: Literal["user", "assistant"], parts: list[Part]) -> None:
        if not parts:
            return
        if self.turns and self.turns[-1][0] == role:
            self.turns[-1][1].extend(parts)  # consecutive same-role messages form one turn
        else:
            self.turns.append((role, list(parts)))

    def message(self, i: int, m: ChatMessage) -> None:
        p = f"messages[{i}]"
        settings = self.settings
        if m.role in ("system", "developer"):
            text = _text(m.content, f"{p}.content", settings)
            if "\x00" in text:
                raise invalid_request(
                    f"'{p}.content' contains a NUL character (U+0000), which a system or "
                    "developer prompt cannot carry to Claude Code.",
                    param=f"{p}.content",
                )
            self.system.extend([text] if text else [])
        elif m.role == "user":
            if m.content is None:
                raise invalid_request(
                    f"Missing required parameter '{p}.content'.", param=f"{p}.content"
                )
            self.add("user", [*_parts(m.content, f"{p}.content", _USER_PARTS, settings)])
        elif m.role == "assistant":
            parts: list[Part] = [*_parts(m.content, f"{p}.content", _ASSISTANT_PARTS, settings)]
            for j, call in enumerate(m.tool_calls or ()):
                args = _arguments(
                    call.function.arguments, f"{p}.tool_calls[{j}].function.arguments"
                )
                parts.append(ToolUsePart(id=call.id, name=call.function.name, input=args))
            if m.function_call is not None:
                args = _arguments(m.function_call.arguments, f"{p}.function_call.arguments")
                call_id = f"call_legacy_{i}"
                self.legacy_calls.append((m.function_call.name, call_id))
                parts.append(ToolUsePart(id=call_id, name=m.function_call.name, input=args))
            self.add("assistant", parts)
        elif m.role == "tool":
            if m.tool_call_id is None:
                param = f"{p}.tool_call_id"
                raise invalid_request(f"Missing required parameter '{param}'.", param=param)
            content = _parts(m.content, f"{p}.content", _TOOL_RESULT_PARTS, settings)
            result = tuple(c for c in content if not isinstance(c, DocumentPart))
            self.add("user", [ToolResultPart(tool_use_id=m.tool_call_id, content=result)])
        else:  # legacy "function" role: answers the latest unanswered call of that name
            if m.name is None:
                raise invalid_request(f"Missing required parameter '{p}.name'.", param=f"{p}.name")
            text = _text(m.content, f"{p}.content", settings)
            call_id = f"call_legacy_{i}"
            for k in range(len(self.legacy_calls) - 1, -1, -1):
                if self.legacy_calls[k][0] == m.name:
                    call_id = self.legacy_calls.pop(k)[1]
                    break
            content_parts = (TextPart(text),) if text else ()
            self.add("user", [ToolResultPart(tool_use_id=call_id, content=content_parts)])


def decode_messages(
    messages: Sequence[ChatMessage], settings: Settings
) -> tuple[str | None, tuple[Turn, ...]]:
    """Messages -> (system text, turns); raises ClawrapError 400 naming the param.

    System and developer messages are joined, in order, with blank lines.
    Consecutive same-role messages merge, so tool results and the user message
    after them form one user turn.
    """
    if not messages:
        raise invalid_request("'messages' must be a non-empty array.", param="messages")
    conversation = _Conversation(settings)
    for i, message in enumerate(messages):
        conversation.message(i, message)
    if not conversation.turns:
        raise invalid_request(
            "'messages' must include at least one user or assistant message with content.",
            param="messages",
        )
    turns = tuple(Turn(role, tuple(parts)) for role, parts in conversation.turns)
    return "\n\n".join(conversation.system) or None, turns


__all__ = [
    "ChatMessage",
    "ChatWireOptions",
    "StrictModel",
    "brief",
    "decode_messages",
    "new_completion_id",
    "validate_model",
]
