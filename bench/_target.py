"""What the scenarios measure against: a server, its client, and what can be observed around it.

A :class:`Target` is an OpenAI-compatible base URL plus, when available, the scripted model's
control URL (its recorded requests; with the benchmark's own upstream, its open streams),
clawrap's ``GET /v1/pool``, and the server's pid (for RSS and its ``claude`` processes).
Scenarios skip what their target cannot show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import trio

from ._client import make_openai
from ._procs import Watcher

CONTROL_TIMEOUT = 5.0


@dataclass
class Target:
    base_url: str  # the OpenAI base, ending in /v1
    api_key: str
    model: str
    mock_url: str | None = None
    watcher: Watcher | None = None
    sdk_env: dict[str, str] | None = None  # environment for bare-SDK runs (needs mock_url)
    sdk_cwd: str | None = None
    has_pool: bool = False
    has_tally: bool = False
    client: openai.AsyncOpenAI = field(init=False)
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = make_openai(self.base_url, self.api_key)
        self.http = httpx.AsyncClient(timeout=CONTROL_TIMEOUT)

    @property
    def root(self) -> str:
        url = self.base_url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    async def probe(self) -> None:
        """Find out what this target can show (pool status, stream tally)."""
        self.has_pool = await self.pool() is not None
        if self.mock_url:
            self.has_tally = await self.streams() is not None

    async def settle(self, limit: float = 10.0) -> None:
        """Let earlier requests' aftermath (process resets, warming) finish before measuring."""
        if not self.has_pool:
            return
        with trio.move_on_after(limit):
            while True:
                pool = await self.pool() or {}
                if pool.get("busy", 0) == 0 and pool.get("starting", 0) == 0:
                    return
                await trio.sleep(0.05)

    async def aclose(self) -> None:
        await self.client.close()
        await self.http.aclose()

    async def _get(self, url: str) -> Any:
        try:
            response = await self.http.get(url, headers={"authorization": f"Bearer {self.api_key}"})
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    async def pool(self) -> dict[str, Any] | None:
        body = await self._get(f"{self.root}/v1/pool")
        return body if isinstance(body, dict) else None

    async def streams(self) -> dict[str, int] | None:
        """The benchmark upstream's stream tally: open, completed, cut."""
        if not self.mock_url:
            return None
        body = await self._get(f"{self.mock_url}/_bench/streams")
        return body if isinstance(body, dict) else None

    async def clear_streams(self) -> None:
        if self.has_tally:
            await self.http.delete(f"{self.mock_url}/_bench/streams")

    async def upstream_requests(self) -> list[dict[str, Any]] | None:
        if not self.mock_url:
            return None
        body = await self._get(f"{self.mock_url}/_mock/requests")
        return body if isinstance(body, list) else None

    async def clear_upstream(self) -> None:
        if self.mock_url:
            await self.http.delete(f"{self.mock_url}/_mock/requests")


def message_posts(recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recorded ``POST /v1/messages`` requests (the model calls, not token counts)."""
    return [r for r in recorded if r.get("method") == "POST" and r.get("path") == "/v1/messages"]


def body_bytes(request: dict[str, Any]) -> int:
    """The size of a recorded request's body as sent (its content-length when it had one)."""
    length = (request.get("headers") or {}).get("content-length")
    if isinstance(length, str) and length.isdigit():
        return int(length)
    return len(json.dumps(request.get("body"), separators=(",", ":")).encode())
