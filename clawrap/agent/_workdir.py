"""Agent mode's working directories: inside the operator's roots, or private and temporary.

:func:`check_agent_roots` validates ``CLAWRAP_AGENT_ROOTS`` at start-up;
:func:`resolve_cwd` turns a request's directory into a :class:`WorkDir` after
resolving symlinks and ``..`` (400 unless inside a root), or makes a fresh
private temporary one that :meth:`WorkDir.cleanup` removes when the run ends.
A request of a session without a directory of its own works in the session's
private temporary directory instead (:class:`SessionDirs`), so what turn 1
wrote is there in turn 2; it goes when the session is deleted or expires, and
at shutdown.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError, invalid_request


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


def _make_private(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))  # mkdtemp makes it 0700


class SessionDirs:
    """One private temporary working directory per session, kept across its requests.

    :meth:`acquire` makes the directory on a session's first run and hands the
    same one to later runs; :meth:`forget` (wired to the session store's
    deletions and expiry) removes it, waiting for a run still using it to
    finish first; :meth:`close` removes every one, at shutdown.
    """

    def __init__(self) -> None:
        self._dirs: dict[str, Path] = {}
        self._busy: dict[str, int] = {}
        self._doomed: set[str] = set()

    def path(self, session_id: str) -> Path | None:
        """The directory of ``session_id``, if it has one."""
        return self._dirs.get(session_id)

    def acquire(self, session_id: str) -> WorkDir:
        """The session's directory (made now if new or gone); pair with :meth:`release`."""
        path = self._dirs.get(session_id)
        if path is None or not path.is_dir():
            path = _make_private("clawrap-session-")
            self._dirs[session_id] = path
        self._doomed.discard(session_id)  # a request reached it again: the session lives on
        self._busy[session_id] = self._busy.get(session_id, 0) + 1
        return WorkDir(path)  # not temporary: it outlives the run

    def release(self, session_id: str) -> None:
        """A run in the session's directory ended; removes it if the session ended meanwhile."""
        left = self._busy.get(session_id, 1) - 1
        if left > 0:
            self._busy[session_id] = left
            return
        self._busy.pop(session_id, None)
        if session_id in self._doomed:
            self._remove(session_id)

    def forget(self, session_ids: Iterable[str]) -> None:
        """The sessions ended: remove their directories (once no run uses them)."""
        for session_id in session_ids:
            if session_id not in self._dirs:
                continue
            if self._busy.get(session_id):
                self._doomed.add(session_id)
            else:
                self._remove(session_id)

    def close(self) -> None:
        """Remove every session's directory (at shutdown, once no run is left)."""
        for session_id in list(self._dirs):
            self._remove(session_id)
        self._busy.clear()

    def _remove(self, session_id: str) -> None:
        self._doomed.discard(session_id)
        path = self._dirs.pop(session_id, None)
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


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
        return WorkDir(_make_private("clawrap-agent-"), temporary=True)
    if not requested or "\x00" in requested or len(requested) > 4096:
        raise bad_value(param, requested, "is not a usable path")
    if not os.path.isabs(requested):
        raise bad_value(param, requested, "must be an absolute path")
    try:
        real = Path(os.path.realpath(requested))
    except (OSError, RuntimeError, ValueError):
        # A component the server may not read (/proc/1/root as non-owner), a loop.
        raise bad_value(param, requested, "is not a usable path") from None
    if not any(real == root or real.is_relative_to(root) for root in _roots(settings)):
        raise bad_value(param, requested, "is not inside a directory this server allows")
    try:
        path = Path(requested).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, no permission
        raise bad_value(param, requested, "does not exist") from None
    if path != real or not path.is_dir():
        raise bad_value(param, requested, "is not a directory")
    return WorkDir(path)


__all__ = ["SessionDirs", "WorkDir", "bad_value", "check_agent_roots", "resolve_cwd"]
