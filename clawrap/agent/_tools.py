"""The body of ``GET /v1/tools``: the tools agent mode offers, before and after the CLI says.

Pure: settings and what the CLI reported in, a JSON-ready dict out. The HTTP shell answers
with it when the backend has no listing of its own; the Claude backend's agent runner fills
in what the CLI reported at its first run.
"""

from __future__ import annotations

from typing import Any

from clawrap.agent._mode import DEFAULT_AGENT_TOOLS
from clawrap.core._config import Settings

TOOLS_NOTE_CONFIGURED = (
    "The tools agent mode offers by default; the list is confirmed by the CLI itself "
    "at the first agent run."
)
TOOLS_NOTE_CLI = "The tools the CLI reported when an agent run started."
TOOLS_NOTE_OFF = "Agent mode is off: the operator has not set CLAWRAP_AGENT_ROOTS."


def tools_body(
    settings: Settings,
    reported: tuple[str, ...] | None = None,
    mcp_tools: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The body of ``GET /v1/tools``: the CLI's own list once ``reported``, else the defaults.

    Before any agent run the configured default set is shown (and said to be
    so) rather than spawning a CLI just to ask: a listing must not cost a
    process of ~230 MB and a core for a third of a second, and the set is
    exactly what agent runs pass as ``tools``.
    """
    if not settings.agent_roots:
        return {"object": "list", "agent_mode": False, "note": TOOLS_NOTE_OFF, "data": []}
    builtin = reported if reported is not None else DEFAULT_AGENT_TOOLS
    data: list[dict[str, Any]] = [{"name": name, "type": "builtin"} for name in builtin]
    for server, names in sorted((mcp_tools or {}).items()):
        data += [{"name": name, "type": "mcp", "server": server} for name in names]
    return {
        "object": "list",
        "agent_mode": True,
        "source": "cli" if reported is not None else "configured",
        "note": TOOLS_NOTE_CLI if reported is not None else TOOLS_NOTE_CONFIGURED,
        "data": data,
    }


__all__ = ["tools_body"]
