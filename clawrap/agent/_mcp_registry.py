"""The operator's MCP servers: loaded once at start-up, picked by name per request.

The file named by ``settings.mcp_config`` uses Claude Code's own format::

    {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "some-server"], "env": {"TOKEN": "..."}},
        "docs": {"type": "http", "url": "https://example.com/mcp",
                 "headers": {"Authorization": "..."}}
    }}

A request may only name servers from this file (``mcp_servers`` in agent mode);
it can never bring a command line or URL of its own. :meth:`McpRegistry.select`
gives the dict for ``ClaudeAgentOptions(mcp_servers=...)``;
:meth:`McpRegistry.describe` gives the public view for ``GET /v1/mcp/servers``,
which never shows env values, headers, arguments or URL credentials.
An invalid file stops start-up with a message naming the problem.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from clawrap.core._config import Settings
from clawrap.core._errors import invalid_request

ServerType = Literal["stdio", "http", "sse"]

# Server names become part of tool names (mcp__<server>__<tool>), so keep them plain.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_STDIO_KEYS = {"type", "command", "args", "env"}
_REMOTE_KEYS = {"type", "url", "headers"}
_MAX_FILE_BYTES = 1024 * 1024


class McpConfigError(ValueError):
    """The MCP configuration is invalid; the message says where and why."""


@dataclass(frozen=True, slots=True)
class McpServer:
    """One configured server. ``config`` is exactly what the SDK receives."""

    name: str
    type: ServerType
    config: Mapping[str, Any]

    def public(self) -> dict[str, Any]:
        """Name, type and where it runs, without secrets."""
        view: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type == "stdio":
            # Only the program's name: arguments and env often carry tokens.
            view["command"] = Path(str(self.config["command"])).name
        else:
            view["url"] = _public_url(str(self.config["url"]))
        return view


def _public_url(url: str) -> str:
    """The URL without credentials, query or fragment (where keys tend to hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise McpConfigError(f"{where} must be an object of strings")
    return dict(value)


def _parse_server(name: str, raw: Any) -> McpServer:
    where = f"mcpServers.{name}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise McpConfigError(
            f"server name {name!r} must be 1-64 letters, digits, '_' or '-' "
            "(starting with a letter or digit)"
        )
    if not isinstance(raw, dict):
        raise McpConfigError(f"{where} must be an object")
    kind = raw.get("type", "stdio")
    if kind == "stdio":
        allowed = _STDIO_KEYS
    elif kind in ("http", "sse"):
        allowed = _REMOTE_KEYS
    else:
        raise McpConfigError(f"{where}.type must be 'stdio', 'http' or 'sse', not {kind!r}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise McpConfigError(
            f"{where} has unknown field(s) {', '.join(unknown)}; "
            f"a {kind} server takes {', '.join(sorted(allowed))}"
        )
    config: dict[str, Any] = {"type": kind}
    if kind == "stdio":
        command = raw.get("command")
        if not isinstance(command, str) or not command.strip():
            raise McpConfigError(f"{where}.command must be a non-empty string")
        config["command"] = command
        args = raw.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise McpConfigError(f"{where}.args must be a list of strings")
        config["args"] = list(args)
        if "env" in raw:
            config["env"] = _string_map(raw["env"], f"{where}.env")
    else:
        url = raw.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise McpConfigError(f"{where}.url must be an http:// or https:// URL")
        if not urlsplit(url).hostname:
            raise McpConfigError(f"{where}.url has no host")
        config["url"] = url
        if "headers" in raw:
            config["headers"] = _string_map(raw["headers"], f"{where}.headers")
    return McpServer(name=name, type=kind, config=config)


class McpRegistry:
    """The configured servers, and the status each last reported."""

    def __init__(self, servers: Iterable[McpServer] = ()) -> None:
        self._servers: dict[str, McpServer] = {s.name: s for s in servers}
        self._status: dict[str, str] = {}

    @classmethod
    def parse(cls, data: Any) -> McpRegistry:
        """Build from decoded JSON. Raises :class:`McpConfigError`."""
        if not isinstance(data, dict):
            raise McpConfigError("the top level must be an object with an 'mcpServers' object")
        unknown = sorted(set(data) - {"mcpServers"})
        if unknown:
            raise McpConfigError(f"unknown top-level field(s) {', '.join(unknown)}")
        servers = data.get("mcpServers", {})
        if not isinstance(servers, dict):
            raise McpConfigError("'mcpServers' must be an object of name -> server")
        return cls(_parse_server(name, raw) for name, raw in servers.items())

    @classmethod
    def read(cls, settings: Settings) -> McpRegistry:
        """The servers in ``settings.mcp_config`` (none when unset). Raises
        :class:`McpConfigError` (its message names no path) or OSError."""
        if not settings.mcp_config:
            return cls()
        path = Path(settings.mcp_config).expanduser()
        with path.open("rb") as f:
            raw = f.read(_MAX_FILE_BYTES + 1)
        if len(raw) > _MAX_FILE_BYTES:
            raise McpConfigError("the file is larger than 1 MiB")
        try:
            return cls.parse(json.loads(raw))
        except McpConfigError:
            raise
        except (ValueError, RecursionError) as exc:
            raise McpConfigError(f"not valid JSON ({type(exc).__name__})") from None

    def replace_with(self, other: McpRegistry) -> None:
        """Take ``other``'s servers in place (every holder of this registry sees them);
        statuses of servers that remain are kept."""
        self._servers = dict(other._servers)
        self._status = {k: v for k, v in self._status.items() if k in self._servers}

    @classmethod
    def load(cls, settings: Settings) -> McpRegistry:
        """The servers in ``settings.mcp_config`` (none when it is unset).

        Raises SystemExit with a message naming the file and the problem.
        """
        if not settings.mcp_config:
            return cls()
        path = Path(settings.mcp_config).expanduser()
        try:
            with path.open("rb") as f:
                raw = f.read(_MAX_FILE_BYTES + 1)
            if len(raw) > _MAX_FILE_BYTES:
                raise McpConfigError("the file is larger than 1 MiB")
            data = json.loads(raw)
            return cls.parse(data)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise SystemExit(f"clawrap: cannot read MCP config {path}: {reason}") from None
        except (ValueError, RecursionError) as exc:
            # McpConfigError is a ValueError, as are JSON and UTF-8 decoding errors.
            raise SystemExit(f"clawrap: invalid MCP config {path}: {exc}") from None

    def names(self) -> tuple[str, ...]:
        """The configured server names, sorted."""
        return tuple(sorted(self._servers))

    def __contains__(self, name: object) -> bool:
        return name in self._servers

    def __len__(self) -> int:
        return len(self._servers)

    def select(self, names: Iterable[str], *, param: str = "mcp_servers") -> dict[str, Any]:
        """The SDK's ``mcp_servers`` dict for these names (fresh copies).

        Raises a 400 :class:`ClawrapError` naming ``param`` for an unknown name.
        """
        chosen: dict[str, Any] = {}
        for name in names:
            server = self._servers.get(name)
            if server is None:
                known = ", ".join(self.names()) or "none are configured"
                raise invalid_request(
                    f"unknown MCP server {name!r} in {param} (configured: {known})",
                    param=param,
                    code="unknown_mcp_server",
                )
            chosen[name] = copy.deepcopy(dict(server.config))
        return chosen

    def record_status(self, reported: Any) -> None:
        """Remember statuses from a CLI ``system/init`` message's ``mcp_servers``.

        The CLI reports ``[{"name": ..., "status": "connected" | "failed" | ...}]``;
        anything else (or a name we did not configure) is ignored.
        """
        if not isinstance(reported, list):
            return
        for entry in reported:
            if isinstance(entry, dict):
                name, status = entry.get("name"), entry.get("status")
                if name in self._servers and isinstance(status, str):
                    self._status[name] = status[:40]

    def describe(self) -> list[dict[str, Any]]:
        """The public view: name, type, command name or bare URL, status once known."""
        out = []
        for name in self.names():
            view = self._servers[name].public()
            view["status"] = self._status.get(name, "unknown")
            out.append(view)
        return out


__all__ = ["McpConfigError", "McpRegistry", "McpServer", "ServerType"]
