"""The JSON edge of the Anthropic Messages decoder: pydantic models and path-naming errors.

Each model validates one object of a ``POST /v1/messages`` body (strict types, unknown
fields ignored); :func:`_check` turns the first pydantic problem into a 400 that names
its full field path the way Anthropic does, without pydantic's own wording. The names
keep their leading underscore: only :mod:`clawrap.protocol.anthropic._decode` uses them.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clawrap.core._errors import ClawrapError, invalid_request
from clawrap.core._request import Effort

MIN_THINKING_BUDGET = 1024  # the Messages API's own minimum


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class _Metadata(_Model):
    user_id: str | None = None


class _ToolChoice(_Model):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool = False


class _Thinking(_Model):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(None, ge=MIN_THINKING_BUDGET)


class _JsonFormat(_Model):
    type: Literal["json_schema"]
    json_schema: dict[str, Any] = Field(alias="schema")


class _OutputConfig(_Model):
    effort: Effort | None = None
    format: _JsonFormat | None = None


class _Message(_Model):
    # "system": an entry Claude Code puts among the turns (its per-turn-control beta)
    role: Literal["user", "assistant", "system"]
    content: Any = Field(...)
    output_config: _OutputConfig | None = None


class _Body(_Model):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    messages: list[_Message] = Field(...)
    system: Any = None
    tools: list[Any] | None = None
    tool_choice: _ToolChoice | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    metadata: _Metadata | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    top_p: float | None = Field(None, ge=0, le=1)
    service_tier: Literal["auto", "standard_only"] | None = None
    thinking: _Thinking | None = None
    output_format: _JsonFormat | None = None
    output_config: _OutputConfig | None = None


class _Tool(_Model):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,128}$")
    description: str = ""
    input_schema: dict[str, Any]


class _Text(_Model):
    text: str


class _Base64Image(_Model):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class _UrlSource(_Model):
    type: Literal["url"]
    url: str = Field(pattern=r"^https?://")


class _Base64Pdf(_Model):
    type: Literal["base64"]
    media_type: Literal["application/pdf"]
    data: str


class _TextSource(_Model):
    type: Literal["text"]
    media_type: Literal["text/plain"] = "text/plain"
    data: str


class _Document(_Model):
    source: dict[str, Any]
    title: str | None = None


class _ToolUse(_Model):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


class _ToolResult(_Model):
    tool_use_id: str = Field(min_length=1)
    content: Any = None
    is_error: bool = False


class _ThinkingBlock(_Model):
    thinking: str
    signature: str | None = None


_M = TypeVar("_M", bound=BaseModel)


def _bad(path: str, message: str) -> ClawrapError:
    return invalid_request(f"{path}: {message}" if path else message, param=path or None)


def _check(model: type[_M], data: Any, path: str) -> _M:
    """Validate ``data``; the first problem becomes a 400 naming its full path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        where = ".".join([p for p in (path,) if p] + [str(part) for part in first["loc"]])
        # Pydantic names the model class for non-object input; say it plainly instead.
        if first["type"] in ("model_type", "model_attributes_type", "dict_type"):
            message = "Input should be an object"
        else:
            message = first["msg"]
        raise _bad(where, message) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
