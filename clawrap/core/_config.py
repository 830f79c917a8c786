"""Settings: one plain object, filled from defaults, ``CLAWRAP_*`` variables and flags.

Every field can be set from the environment as ``CLAWRAP_<FIELD NAME IN CAPITALS>``
(``CLAWRAP_MAX_CONCURRENCY=8``); lists are comma-separated, booleans accept
1/0/true/false/yes/no/on/off. Command-line flags override the environment.
Timeouts are seconds and are applied at call sites with trio scopes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints


def default_data_dir() -> Path:
    """The user's data directory for clawrap (XDG on Linux, the usual places elsewhere)."""
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "clawrap"
    home = Path.home()
    if os.uname().sysname == "Darwin":
        return home / "Library" / "Application Support" / "clawrap"
    return home / ".local" / "share" / "clawrap"


@dataclass(slots=True)
class Settings:
    # -- listening
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    keys_file: str | None = None  # per-key names, limits and admin flags (TOML or JSON)
    metrics_key: str | None = None  # a key that may read GET /metrics and nothing else
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    log_format: str = "text"  # text | json
    log_level: str = "info"

    # -- limits and time
    max_body_bytes: int = 20 * 1024 * 1024
    request_timeout: float = 600.0  # whole request deadline
    idle_timeout: float = 120.0  # longest gap between upstream events
    max_concurrency: int = 4  # concurrent CLI runs
    queue_timeout: float = 60.0  # longest wait for a free run slot

    # -- models
    default_model: str = "sonnet"
    models: tuple[str, ...] = ()  # overrides the advertised catalogue
    allow_any_model: bool = False  # pass unknown model ids through to the CLI

    # -- the Claude Code CLI
    cli_path: str | None = None
    # Longest wait for a CLI process to answer the SDK's initialize (~0.3 s normally; a first
    # run may be slowed by a malware scan of the binary). The SDK alone would wait 60 s.
    cli_start_timeout: float = 30.0
    upstream_retries: int = 2  # CLAUDE_CODE_MAX_RETRIES for the CLI
    offline: bool = False  # start the scripted model in-process and point the CLI at it
    config_dir: str | None = None  # CLAUDE_CONFIG_DIR for the CLI; None keeps the user's
    data_dir: Path = field(default_factory=default_data_dir)

    # -- warm processes
    pool_size: int = 2  # processes kept warm per common configuration
    pool_max: int = 8  # most CLI processes that may exist at once
    pool_idle_expiry: float = 600.0
    pool_memory_mb: int = 4096  # budget for all CLI processes (counted as 400 MB each)
    pool_parked: int = 4  # processes kept holding a conversation for its next turn (0: off)

    # -- sessions
    session_ttl: float = 3600.0
    session_db: str | None = None  # default: <data_dir>/sessions.sqlite3
    usage_db: str | None = None  # default: <data_dir>/usage.sqlite3

    # -- content
    allow_remote_images: bool = False  # http(s) image URLs go to the model as URL sources

    # -- agent mode
    agent_roots: tuple[str, ...] = ()  # empty: agent mode off
    agent_allow_bypass: bool = False
    agent_timeout: float = 1800.0
    mcp_config: str | None = None  # Claude Code's MCP JSON format

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``CLAWRAP_*`` from ``environ``, then non-None ``overrides``."""
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get("CLAWRAP_" + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, hints[f.name], raw)
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
        return cls(**values)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(name: str, hint: Any, raw: str) -> Any:
    text = str(hint)
    try:
        if hint is bool:
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(raw)
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is Path:
            return Path(raw).expanduser()
        if text.startswith("tuple"):
            return tuple(s.strip() for s in raw.split(",") if s.strip())
        if "None" in text:
            return raw or None
        return raw
    except ValueError:
        raise SystemExit(f"clawrap: CLAWRAP_{name.upper()}={raw!r} is not a valid value") from None


__all__ = ["Settings", "default_data_dir"]
