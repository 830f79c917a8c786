"""The OpenAI Chat Completions dialect: request options, and the encoders wired in.

``decode_chat_request`` turns a parsed JSON body into a
:class:`~clawrap.core._request.CompletionRequest` (messages are decoded by
:mod:`clawrap.protocol.openai._decode`); :class:`OpenAIChatDialect` is what the HTTP
exchange uses. Sans-IO.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError, invalid_request
from clawrap.core._models import resolve_model
from clawrap.core._request import (
    EFFORT_LEVELS,
    CompletionRequest,
    NamedTool,
    ResponseFormat,
    ToolChoice,
    ToolSpec,
)
from clawrap.core._session_ids import check_session_id
from clawrap.protocol._dialect import Dialect
from clawrap.protocol._request_checks import effort_choices
from clawrap.protocol.openai._decode import (
    ChatMessage,
    ChatWireOptions,
    StrictModel,
    brief,
    decode_messages,
    validate_model,
)
from clawrap.protocol.openai._encode import ChatCollector, ChatStreamEncoder, error_body

# -- pydantic models of the request's fixed-shape options ---------------------------------


class _FunctionDef(StrictModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class _Tool(StrictModel):
    type: str
    function: _FunctionDef | None = None


class _StreamOptions(StrictModel):
    include_usage: bool | None = None


class _JsonSchema(StrictModel):
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class _ResponseFormat(StrictModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: _JsonSchema | None = None


class _Thinking(StrictModel):
    type: Literal["enabled", "disabled"]
    budget_tokens: int | None = Field(default=None, ge=1)


class _ChatRequest(StrictModel):
    model: str | None = None
    messages: list[ChatMessage]
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: Any = None
    n: int | None = None
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    tools: list[_Tool] | None = None
    functions: list[_FunctionDef] | None = None
    tool_choice: Any = None
    function_call: Any = None
    parallel_tool_calls: bool | None = None
    response_format: _ResponseFormat | None = None
    reasoning_effort: str | None = None
    thinking: _Thinking | None = None
    session_id: str | None = None
    logprobs: bool | None = None
    modalities: list[str] | None = None


# -- tools and options --------------------------------------------------------------------

_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_DEFAULT_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
# OpenAI's reasoning_effort names on Claude Code's levels: its lowest ("minimal") is
# Claude's "low", its highest ("xhigh") Claude's "max"; "none" leaves effort unset.
_EFFORTS: dict[str, str] = {level: level for level in EFFORT_LEVELS}
_EFFORTS |= {"minimal": "low", "xhigh": "max"}
_MAX_STOP = 64
_MAX_STOP_LENGTH = 1000


def _tool_spec(f: _FunctionDef, param: str, seen: set[str]) -> ToolSpec:
    if not _TOOL_NAME.fullmatch(f.name):
        raise invalid_request(
            f"'{param}.name' must match ^[a-zA-Z0-9_-]{{1,64}}$.", param=f"{param}.name"
        )
    if f.name in seen:
        raise invalid_request(f"Duplicate tool name {brief(f.name)}.", param=f"{param}.name")
    seen.add(f.name)
    schema = f.parameters if f.parameters is not None else dict(_DEFAULT_PARAMETERS)
    return ToolSpec(name=f.name, description=f.description or "", input_schema=schema)


def _tools(req: _ChatRequest) -> tuple[ToolSpec, ...]:
    seen: set[str] = set()
    specs: list[ToolSpec] = []
    for i, tool in enumerate(req.tools or ()):
        if tool.type != "function":
            raise invalid_request(
                f"Tool type {brief(tool.type)} is not supported; use 'function'.",
                param=f"tools[{i}].type",
            )
        if tool.function is None:
            param = f"tools[{i}].function"
            raise invalid_request(f"Missing required parameter '{param}'.", param=param)
        specs.append(_tool_spec(tool.function, f"tools[{i}].function", seen))
    for i, f in enumerate(req.functions or ()):
        specs.append(_tool_spec(f, f"functions[{i}]", seen))
    return tuple(specs)


def _tool_choice(value: Any, param: str, tools: tuple[ToolSpec, ...], legacy: bool) -> ToolChoice:
    choice: ToolChoice
    if value is None:
        return "auto"
    if value in ("auto", "none", "required") and not (legacy and value == "required"):
        choice = value
    elif isinstance(value, dict) and (legacy or value.get("type") == "function"):
        target = value if legacy else value.get("function")
        name = target.get("name") if isinstance(target, dict) else None
        if not isinstance(name, str):
            where = f"{param}.name" if legacy else f"{param}.function.name"
            raise invalid_request(f"Missing required parameter '{where}'.", param=where)
        if name not in {t.name for t in tools}:
            raise invalid_request(
                f"'{param}' names {brief(name)}, which is not a declared tool.", param=param
            )
        choice = NamedTool(name)
    else:
        allowed = "'auto', 'none'" + ("" if legacy else ", 'required'") + " or a named function"
        raise invalid_request(f"'{param}' must be {allowed}.", param=param)
    if choice != "none" and choice != "auto" and not tools:
        raise invalid_request(f"'{param}' is only allowed when tools are given.", param=param)
    return choice


def _stop(value: Any) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid_request("'stop' must be a string or an array of strings.", param="stop")
    if len(stops) > _MAX_STOP:
        raise invalid_request(f"'stop' may hold at most {_MAX_STOP} sequences.", param="stop")
    if any(len(s) > _MAX_STOP_LENGTH for s in stops):
        # each delta is matched against every stop sequence: bound that work
        message = f"Each stop sequence may be at most {_MAX_STOP_LENGTH} characters."
        raise invalid_request(message, param="stop")
    return tuple(dict.fromkeys(s for s in stops if s))  # empty strings would match at once


def _response_format(rf: _ResponseFormat | None) -> ResponseFormat | None:
    if rf is None or rf.type == "text":
        return None
    if rf.type == "json_object":
        return ResponseFormat("json_object")
    if rf.json_schema is None:
        param = "response_format.json_schema"
        raise invalid_request(f"Missing required parameter '{param}'.", param=param)
    js = rf.json_schema
    return ResponseFormat("json_schema", schema=js.schema_, name=js.name, strict=bool(js.strict))


def _session_id(req: _ChatRequest, headers: Mapping[str, str]) -> str | None:
    value, param = req.session_id, "session_id"
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "x-session-id"), None)
        param = "X-Session-Id"
    return None if value is None else check_session_id(value, param)


def _checks(req: _ChatRequest) -> None:
    """Features clawrap cannot provide are refused rather than silently wrong."""
    if req.logprobs:
        raise invalid_request("logprobs are not available from this server.", param="logprobs")
    if req.modalities is not None and any(m != "text" for m in req.modalities):
        raise invalid_request("Only the 'text' modality is supported.", param="modalities")


def decode_chat_request(
    body: Any, headers: Mapping[str, str], settings: Settings
) -> tuple[CompletionRequest, ChatWireOptions]:
    """A parsed JSON body -> (internal request, wire options).

    Raises :class:`ClawrapError` 400 naming the offending ``param``, or 404
    ``model_not_found`` for an unknown model.
    """
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    req = validate_model(_ChatRequest, body)
    _checks(req)
    model = resolve_model(req.model, settings)
    system, turns = decode_messages(req.messages, settings)
    tools = _tools(req)
    legacy = bool(req.functions) and not req.tools
    if req.tool_choice is not None or not legacy:
        choice = _tool_choice(req.tool_choice, "tool_choice", tools, legacy=False)
    else:
        choice = _tool_choice(req.function_call, "function_call", tools, legacy=True)
    effort: str | None = None
    if req.reasoning_effort is not None and req.reasoning_effort != "none":
        if req.reasoning_effort not in _EFFORTS:
            allowed = effort_choices(("none", "minimal", *EFFORT_LEVELS))
            raise invalid_request(
                f"'reasoning_effort' must be {allowed}.", param="reasoning_effort"
            )
        effort = _EFFORTS[req.reasoning_effort]
    budget: int | None = None
    if req.thinking is not None and req.thinking.type == "enabled":
        if req.thinking.budget_tokens is None:
            param = "thinking.budget_tokens"
            raise invalid_request(f"Missing required parameter '{param}'.", param=param)
        budget = req.thinking.budget_tokens
    requested = req.model or settings.default_model
    request = CompletionRequest(
        model=model,
        requested_model=requested,
        turns=turns,
        system=system,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=False if legacy else req.parallel_tool_calls is not False,
        max_output_tokens=req.max_completion_tokens or req.max_tokens,
        stop=_stop(req.stop),
        stream=bool(req.stream),
        response_format=_response_format(req.response_format),
        effort=effort,
        thinking_budget=budget,
        session_id=_session_id(req, headers),
    )
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return request, ChatWireOptions(requested, include_usage, legacy, n=_n(req, request, settings))


def _n(req: _ChatRequest, request: CompletionRequest, settings: Settings) -> int:
    """How many choices: each is a run of its own, so at most ``max_n`` and the run slots."""
    if req.n is None or req.n == 1:
        return 1
    cap = min(settings.max_n, settings.max_concurrency)
    if not 1 <= req.n <= cap:
        raise invalid_request(
            f"'n' must be between 1 and {cap} on this server "
            "(CLAWRAP_MAX_N, CLAWRAP_MAX_CONCURRENCY).",
            param="n",
        )
    if request.session_id is not None:
        raise invalid_request("'n' above 1 cannot continue a session.", param="n")
    return req.n


class OpenAIChatDialect:
    """``POST /v1/chat/completions``: the :class:`~clawrap.protocol._dialect.Dialect` of OpenAI."""

    name = "openai"

    def decode(
        self, body: Any, headers: Mapping[str, str], settings: Settings
    ) -> tuple[CompletionRequest, ChatWireOptions]:
        return decode_chat_request(body, headers, settings)

    def stream_encoder(
        self, request: CompletionRequest, options: ChatWireOptions
    ) -> ChatStreamEncoder:
        return ChatStreamEncoder(options)

    def collector(self, request: CompletionRequest, options: ChatWireOptions) -> ChatCollector:
        return ChatCollector(options)

    def error_body(self, error: ClawrapError) -> dict[str, Any]:
        return error_body(error)


if TYPE_CHECKING:
    _: Dialect = OpenAIChatDialect()


__all__ = ["ChatWireOptions", "OpenAIChatDialect", "decode_chat_request"]
