"""Client-defined functions as real tool definitions for the CLI.

Each of the client's functions becomes a tool of one in-process SDK MCP server
named ``clawrap``; the model sees it as ``mcp__clawrap__<name>`` with the
client's JSON schema. A client tool is executed by the client, never here: a
PreToolUse hook answers ``defer`` for every call, which ends the CLI's run right
after the model's turn (every parallel call has streamed by then), and the
backend answers the client from the stream with ``finish_reason: tool_calls``.
Should the handler ever be reached anyway, it returns an error result.

``tool_choice`` and ``parallel_tool_calls`` have no native form in Claude Code:

- ``"auto"``: natural behaviour.
- ``"none"``: no tools are offered at all (the history renders earlier calls as
  text, see ``_transcript``), so no call can happen.
- ``"required"`` / a named function: an instruction appended to the system
  prompt (``system_suffix``). Best effort: the model nearly always complies,
  but a text-only answer stays possible and is passed on as it is.
- ``parallel_tool_calls: false``: an instruction, and ``single_call`` tells the
  backend to keep only the first call of a turn.

With ``wait`` (the Chat backend, ``tool_wait`` > 0) the calls are not deferred:
they wait on the live process for the client's results (``_tool_gate``), so the
next round of a tool loop continues the same CLI turn.

Names the Messages API may refuse (longer than fits beside the prefix in 64
characters, or with characters outside ``[A-Za-z0-9_-]``) are registered under
a stable alias; :meth:`ClientTools.client_name` maps it back.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clawrap.core._request import CompletionRequest, NamedTool, ToolSpec
from clawrap.protocol._conversation_shape import offers_tools

if TYPE_CHECKING:
    from claude_agent_sdk import HookContext, HookInput, HookJSONOutput

SERVER_NAME = "clawrap"
PREFIX = f"mcp__{SERVER_NAME}__"

# Tool names the Messages API accepts: 1-64 of these characters, prefix included.
_NAME_LIMIT = 64 - len(PREFIX)
_VALID_NAME = re.compile(r"[A-Za-z0-9_-]+")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_-]")

HANDLER_ERROR = (
    "This tool is executed by the client application, not by this server; "
    "its result arrives in the next request."
)


def sdk_tool_name(name: str) -> str:
    """The name the model sees for the client's function ``name``.

    Valid short names keep their spelling (``get_weather`` ->
    ``mcp__clawrap__get_weather``); others get a stable alias made of a cleaned
    prefix and a hash, so the upstream request stays valid.
    """
    if len(name) <= _NAME_LIMIT and _VALID_NAME.fullmatch(name):
        return PREFIX + name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    stem = _INVALID_CHARS.sub("_", name)[: _NAME_LIMIT - len(digest) - 1]
    return f"{PREFIX}{stem}_{digest}"


def input_schema(spec: ToolSpec) -> dict[str, Any]:
    """The client's schema as sent upstream: verbatim, plus what the SDK needs to keep it so.

    The SDK passes a dict schema through only when it has a string ``type`` and
    a ``properties`` key; otherwise it reads the dict as ``{param: python_type}``
    and mangles it (``{"type": "object"}`` became a required string parameter
    named ``type``). A schema without parameters is common, so both are filled in.
    """
    schema = dict(spec.input_schema)
    if not isinstance(schema.get("type"), str):
        schema["type"] = "object"
    if "properties" not in schema:
        schema["properties"] = {}
    return schema


def _choice_key(request: CompletionRequest) -> str:
    choice = request.tool_choice
    return f"function:{choice.name}" if isinstance(choice, NamedTool) else choice


def system_suffix(request: CompletionRequest) -> str:
    """Instructions standing in for ``tool_choice`` and ``parallel_tool_calls``."""
    lines: list[str] = []
    choice = request.tool_choice
    if isinstance(choice, NamedTool):
        lines.append(
            f"In this reply you must call the tool `{choice.name}` "
            "(as `" + sdk_tool_name(choice.name) + "`); do not answer with text alone."
        )
    elif choice == "required":
        lines.append(
            "In this reply you must call at least one tool; do not answer with text alone."
        )
    if not request.parallel_tool_calls:
        lines.append("Call at most one tool per reply.")
    return "\n".join(lines)


def tools_signature(request: CompletionRequest) -> str:
    """A stable hash of everything about the tools that is fixed when a CLI spawns.

    Tools are sorted by name: the CLI lists them sorted upstream, so the order a
    client happens to send them in does not matter.
    """
    tools = [
        [t.name, t.description, input_schema(t)]
        for t in sorted(request.tools, key=lambda t: t.name)
    ]
    material = {
        "tools": tools,
        "choice": _choice_key(request),
        "parallel": request.parallel_tool_calls,
    }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass(slots=True)
class ClientTools:
    """What to add to ``ClaudeAgentOptions`` so the model sees the client's tools.

    ``signature`` identifies the tool set for process reuse: processes spawned
    with equal signatures are interchangeable. ``system_suffix`` (possibly empty)
    must be appended to the system prompt; it is covered by ``signature``.
    ``single_call``: keep only the first tool call of a turn
    (``parallel_tool_calls: false``). ``names`` maps each name the model sees to
    the client's name.
    """

    mcp_servers: dict[str, Any] = field(default_factory=dict)
    allowed_tools: list[str] = field(default_factory=list)
    hooks: dict[str, list[Any]] = field(default_factory=dict)
    signature: str = ""
    system_suffix: str = ""
    single_call: bool = False
    names: dict[str, str] = field(default_factory=dict)
    # Set when calls wait for the client's results on the live process (``_tool_gate``):
    # (name without the prefix, description, schema) for each tool; each process spawned
    # with these gets its own gate server, and ``mcp_servers``/``hooks`` are not used.
    gated: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def client_name(self, sdk_name: str) -> str | None:
        """``mcp__clawrap__get_weather`` -> ``get_weather``; None if not a client tool."""
        known = self.names.get(sdk_name)
        if known is not None:
            return known
        if self.names:
            return None
        # Built without a name table (tests, older callers): undo the prefix.
        return sdk_name[len(PREFIX) :] if sdk_name.startswith(PREFIX) else None


async def _defer(
    hook_input: HookInput, tool_use_id: str | None, context: HookContext
) -> HookJSONOutput:
    """PreToolUse: stop the run; the client runs the call and sends the result back."""
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "defer"}}


async def _refuse(arguments: dict[str, Any]) -> dict[str, Any]:
    """The MCP handler: never runs anything; only reached if the defer hook did not stop the run."""
    return {"content": [{"type": "text", "text": HANDLER_ERROR}], "is_error": True}


def _unique_specs(request: CompletionRequest) -> list[tuple[str, ToolSpec]]:
    """(name the model sees, spec) pairs, sorted; the first definition of a name wins."""
    named: dict[str, ToolSpec] = {}
    for spec in request.tools:
        named.setdefault(sdk_tool_name(spec.name), spec)
    return sorted(named.items())


def sdk_tools(request: CompletionRequest) -> list[Any]:
    """The request's tools as ``SdkMcpTool``s (names without the MCP prefix)."""
    from claude_agent_sdk import SdkMcpTool

    handler: Callable[[dict[str, Any]], Any] = _refuse
    return [
        SdkMcpTool(name[len(PREFIX) :], spec.description, input_schema(spec), handler)
        for name, spec in _unique_specs(request)
    ]


def build_client_tools(request: CompletionRequest, *, wait: bool = False) -> ClientTools | None:
    """The tools to spawn the CLI with; None when the request offers none.

    ``wait``: calls wait on the live process for the client's results (see
    ``_tool_gate``) instead of ending the run.
    """
    if not offers_tools(request):
        return None
    specs = _unique_specs(request)
    if wait:
        return ClientTools(
            allowed_tools=[name for name, _ in specs],
            signature=tools_signature(request) + ":wait",
            system_suffix=system_suffix(request),
            single_call=not request.parallel_tool_calls,
            names={name: spec.name for name, spec in specs},
            gated=[(n[len(PREFIX) :], s.description, input_schema(s)) for n, s in specs],
        )
    from claude_agent_sdk import HookMatcher, create_sdk_mcp_server

    return ClientTools(
        mcp_servers={SERVER_NAME: create_sdk_mcp_server(SERVER_NAME, tools=sdk_tools(request))},
        allowed_tools=[name for name, _ in specs],
        hooks={"PreToolUse": [HookMatcher(matcher=f"{PREFIX}.*", hooks=[_defer])]},
        signature=tools_signature(request),
        system_suffix=system_suffix(request),
        single_call=not request.parallel_tool_calls,
        names={name: spec.name for name, spec in specs},
    )


__all__ = [
    "HANDLER_ERROR",
    "PREFIX",
    "SERVER_NAME",
    "ClientTools",
    "build_client_tools",
    "input_schema",
    "offers_tools",
    "sdk_tool_name",
    "sdk_tools",
    "system_suffix",
    "tools_signature",
]
