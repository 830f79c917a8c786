"""Client-defined functions as real tool definitions for the CLI.

(Placeholder: no client tools yet; the in-process MCP server replaces it.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._request import CompletionRequest

SERVER_NAME = "clawrap"


@dataclass(slots=True)
class ClientTools:
    """What to add to ``ClaudeAgentOptions`` so the model sees the client's tools.

    ``signature`` identifies the tool set for process reuse: processes spawned
    with equal signatures are interchangeable.
    """

    mcp_servers: dict[str, Any] = field(default_factory=dict)
    allowed_tools: list[str] = field(default_factory=list)
    hooks: dict[str, list[Any]] = field(default_factory=dict)
    signature: str = ""

    def client_name(self, sdk_name: str) -> str | None:
        """``mcp__clawrap__get_weather`` -> ``get_weather``; None if not a client tool."""
        prefix = f"mcp__{SERVER_NAME}__"
        return sdk_name[len(prefix) :] if sdk_name.startswith(prefix) else None


def build_client_tools(request: CompletionRequest) -> ClientTools | None:
    """None when the request carries no tools."""
    return None


__all__ = ["SERVER_NAME", "ClientTools", "build_client_tools"]
