"""Anthropic Messages API request JSON -> the internal :class:`CompletionRequest` (sans-IO).

Pydantic validates at the JSON edge (:mod:`clawrap.protocol.anthropic._models`: strict types,
unknown fields ignored); the content blocks are read by
:mod:`clawrap.protocol.anthropic._content`, so that every error names the field path the way
Anthropic does and never carries pydantic's own wording about unions or class names. This
module reads the rest: system, tools, tool_choice, thinking, output format, stop sequences.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clawrap.core._config import Settings
from clawrap.core._errors import invalid_request
from clawrap.core._models import resolve_model
from clawrap.core._request import (
    CompletionRequest,
    NamedTool,
    ResponseFormat,
    ToolChoice,
    ToolSpec,
)
from clawrap.core._session_ids import check_session_id
from clawrap.protocol.anthropic._content import system_entry, turns_of
from clawrap.protocol.anthropic._models import (
    MIN_THINKING_BUDGET,
    _bad,
    _Body,
    _check,
    _Metadata,
    _short,
    _Text,
    _Thinking,
    _Tool,
    _ToolChoice,
)

# {"type": "adaptive"} lets the model decide how much to think. The internal request only
# knows a budget, so adaptive becomes a generous ceiling: a budget is an upper bound the
# model need not use, and 16k covers deep reasoning without letting thinking swallow a
# long answer (Claude Code's own largest preset, 31,999, is meant for one-off hard tasks).
ADAPTIVE_THINKING_BUDGET = 16_000

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
    in_turns = [system_entry(m, i) for i, m in entries]
    system = "\n\n".join(t for t in (_system(parsed.system), *in_turns) if t) or None
    # The effort a system entry carries (per-turn control) counts when the body has none.
    effort = parsed.output_config.effort if parsed.output_config else None
    for _, message in entries:
        if effort is None and message.output_config is not None:
            effort = message.output_config.effort
    return CompletionRequest(
        model=model,
        requested_model=requested,
        turns=turns_of(parsed.messages, settings),
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
