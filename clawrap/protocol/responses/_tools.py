"""Responses API ``tools`` and ``tool_choice`` -> the internal tool specs and choice.

Sans-IO. ``function`` tools (with ``strict``) and ``custom`` tools (a free-form
string input, given to the model as an object with one ``input`` string) become
:class:`ToolSpec`; a ``namespace`` groups tools under a prefix; hosted tools
clawrap cannot run are left out and named, or refused when ``tool_choice`` needs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from clawrap.core._errors import ClawrapError, invalid_request
from clawrap.core._request import NamedTool, ToolChoice, ToolSpec
from clawrap.protocol.openai._decode import brief, validate_model
from clawrap.protocol.responses._models import CustomTool, FunctionTool

_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_HOSTED_TYPE = re.compile(r"[a-z0-9_.-]{1,64}")  # it goes into a response header
_DEFAULT_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
_CUSTOM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's whole input."}},
    "required": ["input"],
}


@dataclass(slots=True)
class Tools:
    specs: list[ToolSpec] = field(default_factory=list)
    custom: set[str] = field(default_factory=set)
    hosted: list[str] = field(default_factory=list)
    namespaces: dict[str, str] = field(default_factory=dict)  # tool name -> its namespace

    def names(self) -> set[str]:
        return {s.name for s in self.specs}


def _check_name(name: str, param: str, seen: set[str]) -> None:
    if not _TOOL_NAME.fullmatch(name):
        raise invalid_request(f"'{param}' must match ^[a-zA-Z0-9_-]{{1,64}}$.", param=param)
    if name in seen:
        raise invalid_request(f"Duplicate tool name {brief(name)}.", param=param)
    seen.add(name)


def decode_tools(raw: list[Any] | None) -> Tools:
    out = Tools()
    seen: set[str] = set()
    for i, item in enumerate(raw or ()):
        _tool(out, item, f"tools[{i}]", seen, None)
    return out


def _tool(out: Tools, item: Any, param: str, seen: set[str], namespace: str | None) -> None:
    kind = item.get("type") if isinstance(item, dict) else None
    if not isinstance(kind, str):
        raise invalid_request(f"'{param}.type' must be a string.", param=f"{param}.type")
    if kind == "namespace" and namespace is None and isinstance(item, dict):
        # A group of functions (Codex sends its sub-agent tools so); calls name the group.
        name, inner = item.get("name"), item.get("tools")
        if not isinstance(name, str) or not isinstance(inner, list):
            raise invalid_request(
                f"'{param}' must have a string 'name' and a 'tools' array.", param=param
            )
        for j, tool in enumerate(inner):
            _tool(out, tool, f"{param}.tools[{j}]", seen, name)
        return
    if namespace is not None and kind in ("function", "custom"):
        out.namespaces[str(item.get("name"))] = namespace
    if kind == "function":
        f = validate_model(FunctionTool, item, (param,))
        _check_name(f.name, f"{param}.name", seen)
        schema = f.parameters if f.parameters is not None else dict(_DEFAULT_PARAMETERS)
        out.specs.append(ToolSpec(f.name, f.description or "", schema))
    elif kind == "custom":
        c = validate_model(CustomTool, item, (param,))
        _check_name(c.name, f"{param}.name", seen)
        description = c.description or ""
        grammar = (c.format or {}).get("definition")
        if isinstance(grammar, str) and grammar:
            description += f"\n\nThe input must follow this grammar:\n{grammar}"
        out.specs.append(ToolSpec(c.name, description.strip(), dict(_CUSTOM_SCHEMA)))
        out.custom.add(c.name)
    elif _HOSTED_TYPE.fullmatch(kind):
        # A hosted tool (web_search, file_search, code_interpreter, mcp, ...): clawrap
        # cannot run it, so the model is not offered it.
        out.hosted.append(kind)
    else:
        raise invalid_request(f"Unknown tool type {brief(kind)}.", param=f"{param}.type")


def decode_tool_choice(value: Any, tools: Tools) -> tuple[ToolChoice, list[ToolSpec]]:
    """The choice, and the tools offered (``allowed_tools`` narrows them)."""
    specs = list(tools.specs)
    if value is None or value == "auto":
        return "auto", specs
    if value == "none":
        return "none", specs
    if value == "required":
        if not specs:
            hosted = ", ".join(tools.hosted) or "none given"
            raise invalid_request(
                f"'tool_choice' is 'required' but no tool clawrap can run was given "
                f"(hosted tools are not available here: {hosted}).",
                param="tool_choice",
            )
        return "required", specs
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(kind, str):
        raise invalid_request(
            "'tool_choice' must be 'auto', 'none', 'required' or an object.", param="tool_choice"
        )
    assert isinstance(value, dict)
    if kind in ("function", "custom"):
        name = value.get("name")
        if not isinstance(name, str):
            raise invalid_request(
                "Missing required parameter 'tool_choice.name'.", param="tool_choice.name"
            )
        if name not in tools.names():
            raise invalid_request(
                f"'tool_choice' names {brief(name)}, which is not a declared tool.",
                param="tool_choice",
            )
        return NamedTool(name), specs
    if kind == "allowed_tools":
        mode = value.get("mode", "auto")
        allowed = value.get("tools")
        if mode not in ("auto", "required") or not isinstance(allowed, list):
            raise invalid_request(
                "'tool_choice' of type allowed_tools needs mode 'auto' or 'required' and tools.",
                param="tool_choice",
            )
        names = {t.get("name") for t in allowed if isinstance(t, dict)}
        others = [t.get("type") for t in allowed if isinstance(t, dict) and "name" not in t]
        specs = [s for s in specs if s.name in names]
        if mode == "required" and not specs:
            raise _hosted_required(", ".join(str(h) for h in others) or "none given")
        return ("required" if mode == "required" else "auto"), specs
    raise _hosted_required(kind)


def _hosted_required(names: str) -> ClawrapError:
    return invalid_request(
        f"'tool_choice' requires the hosted tool {brief(names)}, which clawrap cannot run; "
        "only function and custom tools are available here.",
        param="tool_choice",
    )


__all__ = ["Tools", "decode_tool_choice", "decode_tools"]
