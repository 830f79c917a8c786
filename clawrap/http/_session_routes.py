"""The session routes' JSON: list, get, delete and stats, ready for the app to send.

``GET /v1/sessions`` (``?limit=&offset=``), ``GET /v1/sessions/stats``,
``GET /v1/sessions/{id}``, ``DELETE /v1/sessions/{id}``: :func:`session_route`
answers all four from the part of the path after ``/v1/sessions`` and raises
:class:`~clawrap.core._errors.ClawrapError` (400 bad id or query, 404 unknown
session, 405 wrong method), so the app only routes and renders. A session
named ``stats`` exists but is reached by the stats route, not by its id.

Images and documents are listed without their data (its size and SHA-256
instead): a session's detail stays small and safe to log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from clawrap.core._errors import ClawrapError, invalid_request
from clawrap.core._request import Turn
from clawrap.protocol._conversation import turn_to_json
from clawrap.sessions._store import (
    Session,
    SessionInfo,
    SessionStats,
    SessionStore,
    check_session_id,
)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _usage(
    input_tokens: int, output_tokens: int, cache_read: int, cache_creation: int
) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_creation,
        "total_tokens": input_tokens + output_tokens + cache_read + cache_creation,
    }


def session_summary(info: SessionInfo) -> dict[str, Any]:
    """One session as the list and get routes show it (Unix times in seconds)."""
    return {
        "id": info.id,
        "object": "session",
        "created": int(info.created),
        "last_used": int(info.last_used),
        "expires_at": int(info.expires_at) if info.expires_at is not None else None,
        "model": info.model,
        "turns": info.turns,
        "requests": info.requests,
        "parent": info.parent,
        "fork_turn": info.fork_turn,
        "usage": _usage(
            info.input_tokens,
            info.output_tokens,
            info.cache_read_input_tokens,
            info.cache_creation_input_tokens,
        ),
        "cost_usd": round(info.cost_usd, 6),
    }


def _elide(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") in ("image", "document") and part.get("data"):
        data = part["data"]
        part = {**part, "data": None, "data_chars": len(data)}
        part["data_sha256"] = hashlib.sha256(data.encode("utf-8")).hexdigest()
    if part.get("type") == "tool_result":
        part = {**part, "content": [_elide(p) for p in part["content"]]}
    return part


def turn_json(turn: Turn) -> dict[str, Any]:
    """A stored turn for display: role and parts, binary data left out."""
    raw = turn_to_json(turn)
    return {"role": raw["role"], "content": [_elide(p) for p in raw["parts"]]}


def session_detail(session: Session) -> dict[str, Any]:
    """The get route: the summary, the system prompt and every turn."""
    return {
        **session_summary(session.info),
        "system": session.info.system,
        "messages": [turn_json(t) for t in session.turns],
    }


def stats_json(stats: SessionStats) -> dict[str, Any]:
    return {
        "object": "session.stats",
        "sessions": stats.sessions,
        "branches": stats.branches,
        "turns": stats.turns,
        "requests": stats.requests,
        "usage": _usage(
            stats.input_tokens,
            stats.output_tokens,
            stats.cache_read_input_tokens,
            stats.cache_creation_input_tokens,
        ),
        "cost_usd": round(stats.cost_usd, 6),
        "ttl_seconds": stats.ttl,
        "db_bytes": stats.db_bytes,
    }


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and low <= int(raw) <= high):
        raise invalid_request(f"'{name}' must be a whole number from {low} to {high}.", param=name)
    return int(raw)


def list_params(query: Mapping[str, str]) -> tuple[int, int]:
    """``limit`` (1 to 100, default 20) and ``offset`` from a query string's values."""
    limit = _int_param(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_param(query, "offset", 0, 0, 10**9)
    return limit, offset


def _not_found(session_id: str) -> ClawrapError:
    return ClawrapError("not_found", f"No session '{session_id}'.", code="session_not_found")


async def session_route(
    store: SessionStore, method: str, tail: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """Answer a session route. ``tail``: the path after ``/v1/sessions`` ("", "/stats",
    "/<id>"), already percent-decoded."""
    tail = tail.strip("/")
    allowed = "GET" if tail in ("", "stats") else "GET, DELETE"
    if method not in allowed.split(", "):
        raise ClawrapError(
            "method_not_allowed", f"Use {allowed} on this route.", code="method_not_allowed"
        )
    if tail == "":
        limit, offset = list_params(query)
        infos, total = await store.list(limit, offset)
        return {
            "object": "list",
            "data": [session_summary(i) for i in infos],
            "total": total,
            "limit": limit,
            "offset": offset,
            "has_more": offset + len(infos) < total,
        }
    if tail == "stats":
        return stats_json(await store.stats())
    session_id = check_session_id(tail, "id")
    if method == "DELETE":
        removed = await store.delete(session_id)
        if not removed:
            raise _not_found(session_id)
        return {"id": session_id, "object": "session.deleted", "deleted": True, "removed": removed}
    session = await store.get(session_id)
    if session is None:
        raise _not_found(session_id)
    return session_detail(session)


__all__ = [
    "list_params",
    "session_detail",
    "session_route",
    "session_summary",
    "stats_json",
    "turn_json",
]
