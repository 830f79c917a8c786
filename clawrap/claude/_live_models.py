"""The live model list: ``GET /v1/models`` of the Messages API the CLI talks to, cached.

Only with an API key (``ANTHROPIC_API_KEY`` in the CLI's environment, not Bedrock or
Vertex): the list is read from ``$ANTHROPIC_BASE_URL/v1/models`` (default
``https://api.anthropic.com``) with that key, the way the CLI itself would
authenticate. A good list is kept for ``TTL`` seconds; after a failed fetch the
next try waits only ``RETRY_TTL`` seconds, and callers get None meanwhile (the
static catalogue stands in). :meth:`LiveModels.get` with ``refresh=True`` fetches
at once. Fetches run in a worker thread with a timeout; one at a time.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import trio

log = logging.getLogger("clawrap.models")

TTL = 3600.0
RETRY_TTL = 60.0
FETCH_TIMEOUT = 10.0
MAX_BODY = 4 * 1024 * 1024
DEFAULT_BASE_URL = "https://api.anthropic.com"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def list_url(env: Mapping[str, str]) -> str | None:
    """Where the live list is read, or None when the CLI does not use an API key."""
    if not env.get("ANTHROPIC_API_KEY"):
        return None
    if _truthy(env.get("CLAUDE_CODE_USE_BEDROCK")) or _truthy(env.get("CLAUDE_CODE_USE_VERTEX")):
        return None
    base = (env.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    if not base.startswith(("http://", "https://")):
        return None
    return f"{base}/v1/models?limit=1000"


def parse_models(body: Any) -> list[dict[str, Any]]:
    """The usable entries of a Messages API model list (``{"data": [{"id", ...}]}``)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ValueError("no data list")
    out: list[dict[str, Any]] = []
    for entry in data:
        if not isinstance(entry, dict) or not _short_text(entry.get("id")):
            continue
        kept = {
            k: entry[k] for k in ("id", "display_name", "created_at") if _short_text(entry.get(k))
        }
        for k in ("max_input_tokens", "max_tokens"):
            value = entry.get(k)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                kept[k] = value
        out.append(kept)
    return out


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 200


def _fetch(url: str, api_key: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        url,
        headers={"x-api-key": api_key, "anthropic-version": "2023-06-01"},
    )
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
        raw = response.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ValueError("model list too large")
    return parse_models(json.loads(raw))


class LiveModels:
    """The upstream's model list for one backend's CLI environment, cached."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.url = list_url(env)
        self._key = env.get("ANTHROPIC_API_KEY", "")
        self._models: list[dict[str, Any]] | None = None
        self._expires = 0.0
        self._lock = trio.Lock()

    @property
    def enabled(self) -> bool:
        return self.url is not None

    async def get(self, *, refresh: bool = False) -> list[dict[str, Any]] | None:
        """The list (None: no live list, or the last fetch failed)."""
        if self.url is None:
            return None
        async with self._lock:
            if refresh or trio.current_time() >= self._expires:
                await self._update(self.url)
            return self._models

    async def _update(self, url: str) -> None:
        try:
            models = await trio.to_thread.run_sync(_fetch, url, self._key, abandon_on_cancel=True)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            log.warning("could not read the live model list from %s: %s", url, exc)
            self._models = None
            self._expires = trio.current_time() + RETRY_TTL
            return
        self._models = models
        self._expires = trio.current_time() + TTL


__all__ = ["LiveModels", "list_url", "parse_models"]
