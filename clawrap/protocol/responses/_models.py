"""The fixed-shape parts of a Responses API request, as pydantic models (sans-IO).

Unknown fields are ignored (clients send many that mean nothing here); values are
strictly typed, as OpenAI's are. The polymorphic ``input`` items and ``tools`` are
dispatched by hand in :mod:`clawrap.protocol.responses._decode_input` and
:mod:`clawrap.protocol.responses._decode`, so that every error names one dotted
``param``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from clawrap.protocol.openai._decode import StrictModel


class JsonSchemaFormat(StrictModel):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextConfig(StrictModel):
    format: JsonSchemaFormat | None = None
    verbosity: str | None = None


class ReasoningConfig(StrictModel):
    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None


class FunctionTool(StrictModel):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CustomTool(StrictModel):
    type: Literal["custom"]
    name: str
    description: str | None = None
    format: dict[str, Any] | None = None


class ResponsesBody(StrictModel):
    """A ``POST /v1/responses`` body (or a WebSocket ``response.create`` message)."""

    model: str | None = None
    input: Any = None
    instructions: str | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: int | None = None
    stream: bool | None = None
    store: bool | None = None
    background: bool | None = None
    previous_response_id: str | None = None
    include: list[str] | None = None
    metadata: dict[str, str] | None = None
    prompt_cache_key: str | None = None
    user: str | None = None
    safety_identifier: str | None = None
    truncation: str | None = None
    service_tier: str | None = None
    temperature: float | int | None = None
    top_p: float | int | None = None
    top_logprobs: int | None = None
    conversation: Any = None
    prompt: Any = None
    generate: bool | None = None
    session_id: str | None = None


__all__ = [
    "CustomTool",
    "FunctionTool",
    "JsonSchemaFormat",
    "ReasoningConfig",
    "ResponsesBody",
    "TextConfig",
]
