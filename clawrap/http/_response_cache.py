"""An opt-in cache of whole completion responses, keyed by the normalized request.

A request opts in with an ``X-Enable-Cache: true`` header, or every request does
with ``CLAWRAP_RESPONSE_CACHE``. Only requests with no state and no side effects
are cached: not streamed, no session, not agent mode, one choice. The key is a
hash of the dialect and the *decoded* request (what the model would see: the
same conversation, system text, tools, limits and model, however the JSON was
spelled), so key order, whitespace and ignored fields do not split entries.

A hit answers with the stored body byte for byte (same id, same text, same
usage) and ``x-clawrap-cache: hit``; no run slot, process or upstream call is
used. Entries live ``cache_ttl`` seconds; at most ``cache_max_entries`` are kept
(least recently used dropped first), and bodies over :data:`MAX_ENTRY_BYTES` are
not stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import trio

from clawrap.core._config import Settings
from clawrap.core._request import CompletionRequest
from clawrap.http._asgi import Message, Send

MAX_ENTRY_BYTES = 1024 * 1024
HIT_HEADER = ("x-clawrap-cache", "hit")
_TRUE = {"1", "true", "yes", "on"}
# Wire options that differ per response, not per request.
_PER_RESPONSE = {"completion_id", "created", "message_id"}


@dataclass(slots=True)
class _Entry:
    body: bytes
    expires: float


def wants_cache(settings: Settings, headers: Mapping[str, str]) -> bool:
    """Whether this request asked for (or the server turned on) the response cache."""
    asked = headers.get("x-enable-cache")
    if asked is not None:
        return asked.strip().lower() in _TRUE
    return settings.response_cache


def cache_key(dialect: str, request: CompletionRequest, options: Any) -> str | None:
    """The request's key, or None when it must not be cached."""
    if request.stream or request.session_id is not None or request.agent is not None:
        return None
    if getattr(options, "n", 1) != 1:
        return None
    wire: dict[str, Any] = {}
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        wire = {
            f.name: getattr(options, f.name)
            for f in dataclasses.fields(options)
            if f.name not in _PER_RESPONSE
        }
    normal = dataclasses.replace(request, metadata={})
    text = f"{dialect}\0{normal!r}\0{sorted(wire.items())!r}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ResponseCache:
    """Stored bodies by key, with hit and miss counts."""

    def __init__(self, settings: Settings) -> None:
        self.ttl = settings.cache_ttl
        self.max_entries = max(0, settings.cache_max_entries)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.stored = 0

    def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires > trio.current_time():
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.body
        if entry is not None:
            del self._entries[key]
        self.misses += 1
        return None

    def put(self, key: str, body: bytes) -> None:
        if self.max_entries == 0 or len(body) > MAX_ENTRY_BYTES:
            return
        self._entries[key] = _Entry(body, trio.current_time() + self.ttl)
        self._entries.move_to_end(key)
        self.stored += 1
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> int:
        count = len(self._entries)
        self._entries.clear()
        return count

    def stats(self) -> dict[str, Any]:
        now = trio.current_time()
        live = sum(1 for e in self._entries.values() if e.expires > now)
        return {
            "object": "cache.stats",
            "entries": live,
            "bytes": sum(len(e.body) for e in self._entries.values() if e.expires > now),
            "hits": self.hits,
            "misses": self.misses,
            "stored": self.stored,
            "ttl": self.ttl,
            "max_entries": self.max_entries,
        }


class Capture:
    """Wraps ``send`` to keep a successful JSON response's body for the cache."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None
        self._chunks: list[bytes] = []
        self.complete = False

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            self.status = int(message["status"])
        elif kind == "http.response.body" and self.status == 200:
            self._chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self.complete = True
        await self._send(message)

    def body(self) -> bytes | None:
        return b"".join(self._chunks) if self.complete and self.status == 200 else None


__all__ = ["HIT_HEADER", "Capture", "ResponseCache", "cache_key", "wants_cache"]
