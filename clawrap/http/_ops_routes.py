"""Operator routes: request compatibility, the decoded request (debug), tool use, MCP reload.

- ``POST /v1/compatibility`` (``?api=anthropic`` or an ``anthropic-version`` header for
  the Messages API; chat completions otherwise): which fields of the body clawrap
  honours, ignores or refuses (:mod:`clawrap.protocol._compatibility`). Nothing runs.
- ``POST /v1/debug/request``: the internal request a completion body decodes to,
  long strings cut. Only with ``CLAWRAP_DEBUG``; a 404 otherwise.
- ``GET /v1/tools/stats``: agent mode's tool uses and failed results by tool, and
  uses by MCP server (from tool names ``mcp__<server>__<tool>``), since start.
- ``POST /v1/mcp/reload``: re-read the operator's ``CLAWRAP_MCP_CONFIG`` file. The
  servers it names are the only ones agent runs can use: servers are never
  registered over HTTP, which would let any key holder start programs on the host.
  An unreadable or invalid file keeps the servers loaded before.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

import trio

from clawrap.agent._mcp_registry import McpConfigError, McpRegistry
from clawrap.agent._mode import parse_claude_headers
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import AgentProgress
from clawrap.http._asgi import parse_json_object, read_body, send_json
from clawrap.http._route_call import Call, Handler, send_error
from clawrap.protocol._compatibility import known_fields, report
from clawrap.protocol._dialect import Dialect

_CUT = 500  # longest string shown by the debug route


class ToolStats:
    """Counts of agent-mode tool uses and failed results, fed by the exchanges."""

    def __init__(self) -> None:
        self.uses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def feed(self, event: AgentProgress) -> None:
        name = event.name[:128]
        if event.kind == "tool_use":
            self.uses[name] += 1
        elif event.detail is not None and event.detail.get("is_error"):
            self.errors[name] += 1

    def body(self, mcp: McpRegistry) -> dict[str, Any]:
        servers: Counter[str] = Counter()
        for name, count in self.uses.items():
            parts = name.split("__")
            if len(parts) >= 3 and parts[0] == "mcp":
                servers[parts[1]] += count
        return {
            "object": "tools.stats",
            "tools": {
                name: {"uses": self.uses[name], "errors": self.errors[name]}
                for name in sorted(set(self.uses) | set(self.errors))
            },
            "mcp_servers": {
                view["name"]: {"status": view["status"], "tool_uses": servers[view["name"]]}
                for view in mcp.describe()
            },
        }


def _shown(value: Any) -> Any:
    """``value`` as JSON, long strings cut (image data, big prompts)."""
    if isinstance(value, str):
        return value if len(value) <= _CUT else value[:_CUT] + f"... ({len(value)} chars)"
    if isinstance(value, dict):
        return {str(k): _shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shown(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return repr(value)[:_CUT]


class OpsRoutes:
    def __init__(
        self,
        settings: Settings,
        dialects: dict[str, Dialect],
        mcp: McpRegistry,
        tool_stats: ToolStats,
    ) -> None:
        self.settings = settings
        self.dialects = dialects
        self.mcp = mcp
        self.tool_stats = tool_stats

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/v1/compatibility"): self.compatibility,
            ("POST", "/v1/debug/request"): self.debug_request,
            ("GET", "/v1/tools/stats"): self.tools_stats,
            ("POST", "/v1/mcp/reload"): self.mcp_reload,
        }

    def _api(self, call: Call) -> str:
        try:
            query = dict(parse_qsl(call.request.query, max_num_fields=10))
        except ValueError:
            query = {}
        api = query.get("api")
        if api is None:
            api = "anthropic" if "anthropic-version" in call.request.headers else "openai"
        if api not in ("openai", "anthropic") or api not in self.dialects:
            raise ClawrapError(
                "invalid_request", "'api' must be 'openai' or 'anthropic'.", param="api"
            )
        return api

    async def _decode(self, call: Call) -> tuple[str, dict[str, Any], Any]:
        """(api, body, decoded request or the ClawrapError decoding raised)."""
        api = self._api(call)
        raw = await read_body(call.receive, call.request.headers, self.settings.max_body_bytes)
        body = parse_json_object(raw)
        headers = call.request.headers
        try:
            claude = parse_claude_headers(body, headers, self.settings, self.mcp)
            rest = {k: v for k, v in body.items() if k not in ("enable_tools", "claude")}
            request, options = self.dialects[api].decode(rest, headers, self.settings)
            return api, body, (claude.apply(request), options)
        except ClawrapError as error:
            return api, body, error

    async def compatibility(self, call: Call) -> None:
        try:
            api, body, decoded = await self._decode(call)
        except ClawrapError as error:
            await send_error(call, error)
            return
        refusal = decoded if isinstance(decoded, ClawrapError) else None
        await send_json(call.send, 200, report(api, body, known_fields(api), refusal))

    async def debug_request(self, call: Call) -> None:
        if not self.settings.debug:
            await send_error(
                call,
                ClawrapError(
                    "not_found",
                    "POST /v1/debug/request is available only with CLAWRAP_DEBUG=1.",
                    code="debug_off",
                ),
            )
            return
        try:
            api, _, decoded = await self._decode(call)
            if isinstance(decoded, ClawrapError):
                raise decoded
        except ClawrapError as error:
            await send_error(call, error)
            return
        request, options = decoded
        wire: dict[str, Any] = {}
        if dataclasses.is_dataclass(options) and not isinstance(options, type):
            wire = dataclasses.asdict(options)
        await send_json(
            call.send,
            200,
            {
                "object": "debug.request",
                "api": api,
                "request": _shown(dataclasses.asdict(request)),
                "options": _shown(wire),
            },
        )

    async def tools_stats(self, call: Call) -> None:
        await send_json(call.send, 200, self.tool_stats.body(self.mcp))

    async def mcp_reload(self, call: Call) -> None:
        try:
            fresh = await trio.to_thread.run_sync(McpRegistry.read, self.settings)
        except (McpConfigError, OSError) as exc:
            reason = str(exc) if isinstance(exc, McpConfigError) else "the file cannot be read"
            error = ClawrapError(
                "api_error",
                f"CLAWRAP_MCP_CONFIG was not reloaded: {reason}. The servers loaded before stay.",
                status=500,
                code="mcp_config_invalid",
            )
            await send_error(call, error)
            return
        self.mcp.replace_with(fresh)
        await send_json(
            call.send, 200, {"object": "mcp.reloaded", "servers": list(self.mcp.names())}
        )


__all__ = ["OpsRoutes", "ToolStats"]
