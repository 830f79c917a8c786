"""Agent mode: Claude Code's own tool calls and their results as compact progress notes.

Sans-IO. :func:`tool_use_progress` turns a tool call of the CLI (``Read``,
``Bash``, an MCP tool, ...) into an :class:`~clawrap.core._events.AgentProgress`
whose summary is the one thing a person watching wants to see (the file, the
command, the pattern); :func:`tool_result_progress` does the same for its
outcome (the first line, how many more, or the error). Encoders add the tool's
name and cut long summaries.
"""

from __future__ import annotations

import json
import os
from typing import Any

from clawrap.core._events import AgentProgress

SUMMARY_LIMIT = 200  # the encoders cut shorter still; this only bounds the work

_PATH_KEYS = ("file_path", "notebook_path", "path")
_FIRST_KEYS: dict[str, tuple[str, ...]] = {
    "Bash": ("command",),
    "Glob": ("pattern",),
    "Grep": ("pattern",),
    "WebFetch": ("url",),
    "WebSearch": ("query",),
    "Task": ("description",),
    "Agent": ("description",),
    "TodoWrite": (),
}


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= SUMMARY_LIMIT else line[: SUMMARY_LIMIT - 3] + "..."


def _shown_path(path: str, cwd: str | None) -> str:
    """``path`` relative to the working directory when it lies inside it."""
    if cwd and os.path.isabs(path):
        try:
            relative = os.path.relpath(path, cwd)
        except ValueError:
            return path
        if not relative.startswith(".."):
            return relative
    return path


def tool_use_summary(name: str, tool_input: Any, cwd: str | None = None) -> str:
    """``src/app.py`` for Read, ``ls -la`` for Bash, compact JSON for anything unknown."""
    if not isinstance(tool_input, dict):
        return ""
    keys = _FIRST_KEYS.get(name)
    if keys is None:
        path = next((tool_input[k] for k in _PATH_KEYS if isinstance(tool_input.get(k), str)), None)
        if path is not None:
            return _one_line(_shown_path(path, cwd))
        return _one_line(json.dumps(tool_input, ensure_ascii=False, default=str)[:SUMMARY_LIMIT])
    parts = [str(tool_input[k]) for k in keys if isinstance(tool_input.get(k), str)]
    where = tool_input.get("path")
    if name in ("Glob", "Grep") and isinstance(where, str):
        parts.append("in " + _shown_path(where, cwd))
    return _one_line(" ".join(parts))


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [b.get("text") for b in content if isinstance(b, dict)]
        return "\n".join(t for t in texts if isinstance(t, str))
    return ""


def tool_result_summary(name: str, content: Any, is_error: bool) -> str:
    """The outcome in a few words: ``3 lines``, ``first line (+4 more lines)``, ``error: ...``."""
    lines = [line for line in _result_text(content).splitlines() if line.strip()]
    if is_error:
        return "error: " + _one_line(lines[0]) if lines else "error"
    if not lines:
        return "done (no output)"
    if name == "Read":
        return f"{len(lines)} line{'s' if len(lines) != 1 else ''}"
    more = f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""
    return _one_line(lines[0]) + more


def tool_use_progress(
    tool_id: str, name: str, tool_input: Any, cwd: str | None = None
) -> AgentProgress:
    return AgentProgress(
        "tool_use",
        name,
        tool_use_summary(name, tool_input, cwd),
        {"id": tool_id, "input": tool_input if isinstance(tool_input, dict) else {}},
    )


def tool_result_progress(tool_id: str, name: str, content: Any, is_error: bool) -> AgentProgress:
    return AgentProgress(
        "tool_result",
        name,
        tool_result_summary(name, content, is_error),
        {"id": tool_id, "is_error": is_error},
    )


__all__ = [
    "tool_result_progress",
    "tool_result_summary",
    "tool_use_progress",
    "tool_use_summary",
]
