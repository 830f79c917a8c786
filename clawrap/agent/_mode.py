"""Agent mode: a request's Claude Code settings, read from headers and body, checked hard.

A request asks for agent mode (Claude Code's own tools, inside a fence) with
``"enable_tools": true`` in the body, with any agent header, or with a body
object ``"claude": {...}``. Headers win over the ``claude`` object::

    header                        claude.<field>        value
    X-Claude-Max-Turns            max_turns             1..MAX_TURNS
    X-Claude-Allowed-Tools        allowed_tools         comma list or JSON list of tool names
    X-Claude-Disallowed-Tools     disallowed_tools      same
    X-Claude-Permission-Mode      permission_mode       default acceptEdits plan bypassPermissions
    X-Claude-Cwd                  cwd                   a directory inside CLAWRAP_AGENT_ROOTS
    X-Claude-Mcp-Servers          mcp_servers           names of the operator's MCP servers
    X-Claude-Effort               effort                low, medium, high, xhigh, max
    X-Claude-Thinking             thinking              true/false/enabled/disabled/adaptive
    X-Claude-Max-Thinking-Tokens  max_thinking_tokens   1024..128000

Effort and thinking also apply to plain (non-agent) requests. Every bad value
is a 400 naming the header or field and the value; agent mode on a server
without ``agent_roots`` is a 403, as is ``bypassPermissions`` unless the
operator allowed it. :func:`parse_claude_headers` is the entry point;
:func:`agent_sdk_options` turns the result into SDK options (the fence);
:func:`~clawrap.agent._workdir.resolve_cwd` (re-exported here) checks or makes the
working directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from clawrap.agent._mcp_registry import McpRegistry
from clawrap.agent._workdir import WorkDir, bad_value, check_agent_roots, resolve_cwd
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError, invalid_request
from clawrap.core._request import EFFORT_LEVELS, AgentOptions, CompletionRequest

MAX_TURNS = 500
MIN_THINKING_TOKENS = 1024
MAX_THINKING_TOKENS = 128_000
# Thinking turned on without a budget; the same as the Anthropic decoder's adaptive budget.
DEFAULT_THINKING_BUDGET = 16_000
PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")
# The CLI's tools offered when a request names none. Measured (CLI 2.1.x): the
# claude_code preset also brings web access, sub-agents, cron and worktrees.
DEFAULT_AGENT_TOOLS = ("Bash", "Edit", "Glob", "Grep", "NotebookEdit", "Read", "Write")
# Without an explicit mode, edits inside the working directory need no approval
# and everything outside it is denied by the CLI itself (measured).
DEFAULT_PERMISSION_MODE = "acceptEdits"

_MAX_VALUE = 8192
_MAX_TOOLS = 128
_TOOL = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}(\([^\x00-\x1f\x7f]{0,512}\))?$")
_MCP_TOOL = re.compile(r"^mcp__[A-Za-z0-9][A-Za-z0-9_-]{0,200}$")

ThinkingMode = Literal["enabled", "disabled", "adaptive"]

_FIELDS = {
    "max_turns": "X-Claude-Max-Turns",
    "allowed_tools": "X-Claude-Allowed-Tools",
    "disallowed_tools": "X-Claude-Disallowed-Tools",
    "permission_mode": "X-Claude-Permission-Mode",
    "cwd": "X-Claude-Cwd",
    "mcp_servers": "X-Claude-Mcp-Servers",
    "effort": "X-Claude-Effort",
    "thinking": "X-Claude-Thinking",
    "max_thinking_tokens": "X-Claude-Max-Thinking-Tokens",
}
_AGENT_FIELDS = tuple(_FIELDS)[:6]  # effort and thinking apply to plain requests too


@dataclass(frozen=True, slots=True)
class ClaudeHeaders:
    """What a request asked of Claude Code beyond the conversation.

    ``agent`` is None unless agent mode was asked for (and allowed).
    ``effort`` / ``thinking`` are None when the request did not mention them;
    ``thinking_budget`` is the token budget when thinking is on, else None.
    """

    agent: AgentOptions | None = None
    effort: str | None = None
    thinking: ThinkingMode | None = None
    thinking_budget: int | None = None

    def apply(self, request: CompletionRequest) -> CompletionRequest:
        """``request`` with these settings laid over what its body said."""
        changes: dict[str, Any] = {}
        if self.agent is not None:
            changes["agent"] = self.agent
        if self.effort is not None:
            changes["effort"] = self.effort
        if self.thinking is not None:
            changes["thinking_budget"] = self.thinking_budget
        return replace(request, **changes) if changes else request


@dataclass(frozen=True, slots=True)
class _Value:
    raw: Any
    where: str  # the header or body field, for error messages
    from_header: bool


def _gather(body: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, _Value]:
    values: dict[str, _Value] = {}
    claude = body.get("claude")
    if claude is not None:
        if not isinstance(claude, dict):
            raise bad_value("claude", claude, "must be an object")
        unknown = sorted(set(claude) - set(_FIELDS) - {"enable_tools"})
        if unknown:
            raise invalid_request(
                f"Unknown field claude.{unknown[0][:40]}; known: "
                + ", ".join(sorted([*_FIELDS, "enable_tools"])),
                param=f"claude.{unknown[0][:40]}",
            )
        for name, raw in claude.items():
            values[name] = _Value(raw, f"claude.{name}", from_header=False)
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, header in _FIELDS.items():
        raw = lowered.get(header.lower())
        if raw is not None:
            if len(raw) > _MAX_VALUE:
                raise bad_value(header, raw, f"longer than {_MAX_VALUE} characters")
            values[name] = _Value(raw, header, from_header=True)
    return values


def _int(value: _Value, low: int, high: int) -> int:
    raw = value.raw
    if value.from_header:
        if not re.fullmatch(r"\s*\d{1,9}\s*", raw):
            raise bad_value(value.where, raw, "must be a whole number")
        number = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    else:
        raise bad_value(value.where, raw, "must be a whole number")
    if not low <= number <= high:
        raise bad_value(value.where, raw, f"must be between {low} and {high}")
    return number


def _choice(value: _Value, choices: tuple[str, ...]) -> str:
    raw = value.raw.strip() if isinstance(value.raw, str) else value.raw
    if not isinstance(raw, str) or raw not in choices:
        raise bad_value(value.where, value.raw, "must be one of " + ", ".join(choices))
    return raw


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses: ``Bash(git add:*),Read``."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]


def _names(value: _Value) -> list[str]:
    raw = value.raw
    if value.from_header and raw.lstrip().startswith("["):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raise bad_value(value.where, value.raw, "is not a valid JSON list") from None
    if isinstance(raw, str):
        items: Any = _split_top_level(raw)
    elif isinstance(raw, list):
        items = raw
    else:
        raise bad_value(value.where, raw, "must be a comma-separated list or a list of strings")
    if len(items) > _MAX_TOOLS:
        raise bad_value(value.where, value.raw, f"more than {_MAX_TOOLS} entries")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise bad_value(value.where, item, "entries must be strings")
        if item.strip() not in names:
            names.append(item.strip())
    return names


def _tools(value: _Value) -> tuple[str, ...]:
    names = _names(value)
    for name in names:
        if not (_TOOL.match(name) or _MCP_TOOL.match(name)):
            raise bad_value(
                value.where, name, "is not a tool name (Name, Name(rule) or mcp__server__tool)"
            )
    return tuple(names)


def _thinking(value: _Value) -> ThinkingMode:
    raw = value.raw
    if isinstance(raw, bool):
        return "enabled" if raw else "disabled"
    word = raw.strip().lower() if isinstance(raw, str) else None
    if word in ("true", "enabled", "on", "1"):
        return "enabled"
    if word in ("false", "disabled", "off", "0"):
        return "disabled"
    if word == "adaptive":
        return "adaptive"
    raise bad_value(value.where, raw, "must be true, false, enabled, disabled or adaptive")


def _enable_tools(body: Mapping[str, Any], values: Mapping[str, _Value]) -> bool | None:
    """True or False when the body says so (top level or in ``claude``), else None."""
    said = [_Value(body["enable_tools"], "enable_tools", False)] if "enable_tools" in body else []
    said += [values["enable_tools"]] if "enable_tools" in values else []
    for value in said:
        if not isinstance(value.raw, bool):
            raise bad_value(value.where, value.raw, "must be true or false")
    return any(v.raw for v in said) if said else None


def _in_servers(tool: str, servers: tuple[str, ...]) -> bool:
    """Whether an ``mcp__<server>[__<tool>]`` name belongs to one of ``servers``."""
    return any(tool == f"mcp__{s}" or tool.startswith(f"mcp__{s}__") for s in servers)


def parse_claude_headers(
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    settings: Settings,
    mcp: McpRegistry | None = None,
) -> ClaudeHeaders:
    """Read and check a request's Claude Code settings (see the module docstring).

    ``mcp`` is the registry loaded at start-up; without it no MCP server can be
    named. Raises :class:`ClawrapError`: 400 for a bad value, 403 for agent
    mode on a server without agent roots or for a mode the operator forbids.
    The ``cwd`` is checked here (400 unless inside a root) but not claimed:
    call :func:`resolve_cwd` when the run starts.
    """
    values = _gather(body, headers)
    effort = _choice(values["effort"], EFFORT_LEVELS) if "effort" in values else None
    thinking = _thinking(values["thinking"]) if "thinking" in values else None
    budget: int | None = None
    if "max_thinking_tokens" in values:
        budget = _int(values["max_thinking_tokens"], MIN_THINKING_TOKENS, MAX_THINKING_TOKENS)
        if thinking == "disabled":
            where = values["max_thinking_tokens"].where
            raise bad_value(where, values["max_thinking_tokens"].raw, "thinking is disabled")
        thinking = thinking or "enabled"
    if thinking in ("enabled", "adaptive") and budget is None:
        budget = DEFAULT_THINKING_BUDGET
    result = ClaudeHeaders(effort=effort, thinking=thinking, thinking_budget=budget)

    asked = _enable_tools(body, values)
    given = [name for name in _AGENT_FIELDS if name in values]
    if asked is False and given:
        where = values[given[0]].where
        raise invalid_request(f"{where} needs agent mode, but enable_tools is false.", param=where)
    if not asked and not given:
        return result
    if not settings.agent_roots:
        raise ClawrapError(
            "permission",
            "Agent mode is disabled on this server: the operator must set CLAWRAP_AGENT_ROOTS "
            "to the directories Claude Code may work in.",
            code="agent_mode_disabled",
        )
    return replace(result, agent=_agent(values, settings, mcp or McpRegistry()))


def _agent(values: Mapping[str, _Value], settings: Settings, mcp: McpRegistry) -> AgentOptions:
    mode = None
    if "permission_mode" in values:
        mode = _choice(values["permission_mode"], PERMISSION_MODES)
        if mode == "bypassPermissions" and not settings.agent_allow_bypass:
            where = values["permission_mode"].where
            raise ClawrapError(
                "permission",
                f"{where} bypassPermissions is not allowed on this server "
                "(the operator may set CLAWRAP_AGENT_ALLOW_BYPASS).",
                param=where,
                code="bypass_not_allowed",
            )
    servers: tuple[str, ...] = ()
    if "mcp_servers" in values:
        value = values["mcp_servers"]
        servers = tuple(_names(value))
        mcp.select(servers, param=value.where)  # 400 for a name the operator did not configure
    allowed = _tools(values["allowed_tools"]) if "allowed_tools" in values else ()
    disallowed = _tools(values["disallowed_tools"]) if "disallowed_tools" in values else ()
    for name in allowed:
        where = values["allowed_tools"].where
        is_mcp = name.startswith("mcp__")
        if is_mcp and not _in_servers(name, servers):
            raise bad_value(where, name, "names a tool of no MCP server listed in mcp_servers")
        if not is_mcp and "(" in name and not settings.agent_allow_bypass:
            # A rule such as Read(/etc/**) or Bash(curl:*) approves calls outside the fence.
            raise ClawrapError(
                "permission",
                f"{where} {name!r}: approval rules are not allowed on this server "
                "(the operator may set CLAWRAP_AGENT_ALLOW_BYPASS); name the bare tool instead.",
                param=where,
                code="approval_rule_not_allowed",
            )
    cwd = None
    if "cwd" in values:
        value = values["cwd"]
        if not isinstance(value.raw, str):
            raise bad_value(value.where, value.raw, "must be a string")
        cwd = value.raw
        resolve_cwd(cwd, settings, param=value.where).cleanup()
    max_turns = _int(values["max_turns"], 1, MAX_TURNS) if "max_turns" in values else None
    return AgentOptions(
        cwd=cwd,
        max_turns=max_turns,
        allowed_tools=allowed,
        disallowed_tools=disallowed,
        permission_mode=mode,
        mcp_servers=servers,
    )


def parse_agent_request(
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    settings: Settings,
    mcp: McpRegistry | None = None,
) -> AgentOptions | None:
    """Just the agent part of :func:`parse_claude_headers` (None: no agent mode)."""
    return parse_claude_headers(body, headers, settings, mcp).agent


def agent_sdk_options(agent: AgentOptions, cwd: Path, mcp: McpRegistry) -> dict[str, Any]:
    """Keyword arguments for ``ClaudeAgentOptions`` that run ``agent`` inside the fence.

    The fence is the CLI's own permission check, so the caller must also pass
    ``setting_sources=[]`` (no user allow-rules) and ``strict_mcp_config=True``.
    Measured with CLI 2.1.x: with ``acceptEdits`` (or ``default``) and no
    approval rule for a tool, Read, Edit and Bash outside ``cwd`` are refused
    and unrecognised Bash commands need an approval no one gives. A bare tool
    name as an approval rule (``allowed_tools=["Read"]``) lifts that: Read then
    reads ``/etc``. So a request's tool names choose which tools exist
    (``tools``), and only rules the server allowed, and the selected MCP
    servers, become approval rules (``allowed_tools``).
    """
    named = agent.allowed_tools or DEFAULT_AGENT_TOOLS
    banned = set(agent.disallowed_tools)
    tools: list[str] = []
    approvals: list[str] = []
    for name in named:
        if name.startswith("mcp__"):
            approvals.append(name)
            continue
        base = name.split("(", 1)[0]
        if base not in tools and base not in banned:
            tools.append(base)
        if "(" in name:
            approvals.append(name)  # only parsed when the operator allowed rules
    approvals += [
        f"mcp__{server}" for server in agent.mcp_servers if f"mcp__{server}" not in approvals
    ]
    options: dict[str, Any] = {
        "tools": tools,
        "allowed_tools": approvals,
        "disallowed_tools": list(agent.disallowed_tools),
        "permission_mode": agent.permission_mode or DEFAULT_PERMISSION_MODE,
        "cwd": str(cwd),
        "mcp_servers": mcp.select(agent.mcp_servers),
    }
    if agent.max_turns is not None:
        options["max_turns"] = agent.max_turns
    return options


__all__ = [
    "DEFAULT_AGENT_TOOLS",
    "DEFAULT_PERMISSION_MODE",
    "EFFORT_LEVELS",
    "MAX_TURNS",
    "PERMISSION_MODES",
    "ClaudeHeaders",
    "ThinkingMode",
    "WorkDir",
    "agent_sdk_options",
    "check_agent_roots",
    "parse_agent_request",
    "parse_claude_headers",
    "resolve_cwd",
]
