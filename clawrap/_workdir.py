"""Agent mode's working directories: inside the operator's roots, or private and temporary.

:func:`check_agent_roots` validates ``CLAWRAP_AGENT_ROOTS`` at start-up;
:func:`resolve_cwd` turns a request's directory into a :class:`WorkDir` after
resolving symlinks and ``..`` (400 unless inside a root), or makes a fresh
private temporary one that :meth:`WorkDir.cleanup` removes when the run ends.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._config import Settings
from ._errors import ClawrapError, invalid_request


def bad_value(where: str, value: Any, why: str) -> ClawrapError:
    """A 400 naming the header or field ``where`` and (a short form of) the bad value."""
    shown = value if isinstance(value, str) else json.dumps(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return invalid_request(f"Invalid {where} {shown!r}: {why}.", param=where)


@dataclass(frozen=True, slots=True)
class WorkDir:
    """An agent run's working directory; a temporary one goes away on :meth:`cleanup`."""

    path: Path
    temporary: bool = False

    def cleanup(self) -> None:
        """Remove a temporary directory (and what the run left in it); idempotent."""
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


def check_agent_roots(settings: Settings) -> tuple[Path, ...]:
    """The agent roots, resolved, for start-up. SystemExit names a root that is unusable."""
    roots = []
    for root in settings.agent_roots:
        if not os.path.isabs(root):
            raise SystemExit(f"clawrap: CLAWRAP_AGENT_ROOTS entry {root!r} is not absolute")
        path = Path(root)
        if not path.is_dir():
            raise SystemExit(f"clawrap: CLAWRAP_AGENT_ROOTS entry {root!r} is not a directory")
        roots.append(path.resolve(strict=True))
    return tuple(roots)


def _roots(settings: Settings) -> list[Path]:
    # Resolved on every call: a root that is itself a symlink counts as its target.
    return [Path(os.path.realpath(r)) for r in settings.agent_roots if os.path.isabs(r)]


def resolve_cwd(requested: str | None, settings: Settings, *, param: str = "cwd") -> WorkDir:
    """The directory an agent run works in.

    ``requested`` must be absolute and, once symlinks and ``..`` are resolved,
    lie inside one of ``settings.agent_roots`` (400 naming ``param`` otherwise).
    Containment is checked before existence, so the answer never tells whether
    a path outside the roots exists. None gives a fresh private (0700)
    temporary directory; call :meth:`WorkDir.cleanup` when the run ends.
    """
    if requested is None:
        return WorkDir(Path(tempfile.mkdtemp(prefix="clawrap-agent-")), temporary=True)
    if not requested or "\x00" in requested or len(requested) > 4096:
        raise bad_value(param, requested, "is not a usable path")
    if not os.path.isabs(requested):
        raise bad_value(param, requested, "must be an absolute path")
    real = Path(os.path.realpath(requested))
    if not any(real == root or real.is_relative_to(root) for root in _roots(settings)):
        raise bad_value(param, requested, "is not inside a directory this server allows")
    try:
        path = Path(requested).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, no permission
        raise bad_value(param, requested, "does not exist") from None
    if path != real or not path.is_dir():
        raise bad_value(param, requested, "is not a directory")
    return WorkDir(path)


__all__ = ["WorkDir", "bad_value", "check_agent_roots", "resolve_cwd"]
