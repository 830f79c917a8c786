"""Stored Responses API responses: SQLite beside the sessions, expiring and size-bounded.

A response created with ``store`` (the default) is kept so that ``GET
/v1/responses/{id}`` finds it and ``previous_response_id`` can continue it. Each
row holds the response object, the request's input items, the turns it added to
the conversation (its input and its reply) and the system text of its messages
along the chain; a continuation walks the ``parent`` links back to the first
response to rebuild the whole conversation (:meth:`ResponseStore.prior`).

Expiry: a response unused (neither read nor continued) for ``response_ttl``
seconds is gone; continuing one refreshes its whole chain. Size: past
``response_store_mb`` in total, the least recently used go first. A chain whose
earlier response is gone can no longer be continued (a 404, like an expired id).

A response that just ended is held in memory (:meth:`ResponseStore.hold`) until
it is written (:meth:`ResponseStore.flush`), so a client that continues it the
moment its stream ends finds it. Storage: stdlib ``sqlite3`` on one connection,
used from worker threads one call at a time, as the session store does.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._request import Turn
from clawrap.protocol._conversation import turn_from_json, turn_to_json

log = logging.getLogger("clawrap.responses")

_T = TypeVar("_T")
SCHEMA_VERSION = 1
MAX_CHAIN = 10_000  # responses followed back along one chain

_SCHEMA = """
CREATE TABLE responses (
    id TEXT PRIMARY KEY, parent TEXT, created REAL NOT NULL, last_used REAL NOT NULL,
    size INTEGER NOT NULL, body TEXT NOT NULL, input_items TEXT NOT NULL,
    turns TEXT NOT NULL, system TEXT NOT NULL
);
CREATE INDEX responses_last_used ON responses (last_used);
CREATE TABLE items (
    id TEXT PRIMARY KEY,
    response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    body TEXT NOT NULL
);
CREATE INDEX items_response ON items (response_id);
"""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One response as stored: ``turns`` are those it added, ``system`` the chain's.

    ``items``: its output items as ``item_reference`` resolves them (a reasoning item
    always with its thinking block), which need not be what the client was shown.
    """

    id: str
    parent: str | None
    body: dict[str, Any]
    input_items: list[dict[str, Any]]
    turns: tuple[Turn, ...]
    system: tuple[str, ...]
    items: tuple[dict[str, Any], ...] = ()

    def item(self, item_id: str) -> dict[str, Any] | None:
        return next((i for i in self.items if i.get("id") == item_id), None)

    def row(self, now: float) -> tuple[Any, ...]:
        body = json.dumps(self.body, ensure_ascii=False, separators=(",", ":"))
        items = json.dumps(self.input_items, ensure_ascii=False, separators=(",", ":"))
        turns = json.dumps([turn_to_json(t) for t in self.turns], ensure_ascii=False)
        system = json.dumps(list(self.system), ensure_ascii=False)
        size = len(body) + len(items) + len(turns) + len(system)
        return (self.id, self.parent, now, now, size, body, items, turns, system)


def _from_row(row: tuple[Any, ...]) -> StoredResponse:
    rid, parent, body, items, turns, system = row
    return StoredResponse(
        rid,
        parent,
        json.loads(body),
        json.loads(items),
        tuple(turn_from_json(t) for t in json.loads(turns)),
        tuple(json.loads(system)),
    )


def response_db_path(settings: Settings) -> str:
    """``<data dir>/responses.sqlite3``; in memory when sessions are (``:memory:``)."""
    if settings.session_db == ":memory:":
        return ":memory:"
    return str(Path(settings.data_dir) / "responses.sqlite3")


def _connect(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        directory = Path(path).parent
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema {version} is newer than this clawrap's")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA secure_delete = ON")
        if version == 0:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn


class ResponseStore:
    """Stored responses in one SQLite file. Open with :meth:`open`, close with :meth:`aclose`.

    Database failures are a 500 ``response_store_error`` (details in the log).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        ttl: float,
        max_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._lock = trio.Lock()
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.clock = clock
        self._held: dict[str, StoredResponse] = {}

    @classmethod
    async def open(cls, settings: Settings) -> ResponseStore:
        path = response_db_path(settings)
        try:
            conn = await trio.to_thread.run_sync(_connect, path)
        except (OSError, sqlite3.Error) as exc:
            raise ClawrapError(
                "api_error", f"Cannot open the response store {path}: {exc}", status=500
            ) from None
        return cls(
            conn,
            ttl=settings.response_ttl,
            max_bytes=settings.response_store_mb * 1024 * 1024,
        )

    async def aclose(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await trio.to_thread.run_sync(conn.close)

    async def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise ClawrapError("api_error", "The response store is closed.", status=500)
            try:
                return await trio.to_thread.run_sync(fn, conn)
            except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
                log.error("response store failed: %s", exc, exc_info=True)
                raise ClawrapError(
                    "api_error",
                    "The response store failed; the server log has the details.",
                    status=500,
                    code="response_store_error",
                ) from None

    def _cutoff(self) -> float:
        return self.clock() - self.ttl if self.ttl > 0 else -math.inf

    # -- writing ----------------------------------------------------------------------------

    def hold(self, response: StoredResponse) -> None:
        """Keep ``response`` in memory until :meth:`flush` writes it (synchronous)."""
        self._held[response.id] = response

    async def flush(self, response_id: str) -> None:
        """Write a held response, then expire and trim the store."""
        response = self._held.get(response_id)
        if response is None:
            return
        now, cutoff, limit = self.clock(), self._cutoff(), self.max_bytes

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    response.row(now),
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO items VALUES (?, ?, ?)",
                    [
                        (i["id"], response.id, json.dumps(i, ensure_ascii=False))
                        for i in response.items
                        if isinstance(i.get("id"), str)
                    ],
                )
                conn.execute("DELETE FROM responses WHERE last_used < ?", (cutoff,))
                total = conn.execute("SELECT total(size) FROM responses").fetchone()[0]
                while total > limit:
                    row = conn.execute(
                        "SELECT id, size FROM responses ORDER BY last_used, created LIMIT 1"
                    ).fetchone()
                    if row is None or row[0] == response.id:
                        break  # the newest alone is over the bound: keep it, it is the one in use
                    conn.execute("DELETE FROM responses WHERE id = ?", (row[0],))
                    total -= row[1]
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        try:
            await self._call(write)
        finally:
            self._held.pop(response_id, None)

    # -- reading ----------------------------------------------------------------------------

    async def get(self, response_id: str) -> StoredResponse | None:
        held = self._held.get(response_id)
        if held is not None:
            return held
        cutoff = self._cutoff()

        def get(conn: sqlite3.Connection) -> StoredResponse | None:
            row = conn.execute(
                "SELECT id, parent, body, input_items, turns, system FROM responses "
                "WHERE id = ? AND last_used >= ?",
                (response_id, cutoff),
            ).fetchone()
            return None if row is None else _from_row(row)

        return await self._call(get)

    async def item(self, item_id: str) -> dict[str, Any] | None:
        """The output item ``item_id`` of a live stored response (for ``item_reference``)."""
        for held in self._held.values():
            found = held.item(item_id)
            if found is not None:
                return found
        cutoff = self._cutoff()

        def item(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT items.body FROM items JOIN responses ON responses.id = items.response_id "
                "WHERE items.id = ? AND responses.last_used >= ?",
                (item_id, cutoff),
            ).fetchone()
            return None if row is None else dict(json.loads(row[0]))

        return await self._call(item)

    async def chain(self, response_id: str) -> list[StoredResponse] | None:
        """The responses from the first of the chain to ``response_id``, all refreshed; None
        when it, or one before it, is gone."""
        newest: list[StoredResponse] = []
        current: str | None = response_id
        while current is not None and current in self._held:
            newest.append(self._held[current])
            current = newest[-1].parent
        if current is None:
            return newest[::-1]
        now, cutoff, start = self.clock(), self._cutoff(), current

        def walk(conn: sqlite3.Connection) -> list[StoredResponse] | None:
            found: list[StoredResponse] = []
            ids: str | None = start
            while ids is not None and len(found) < MAX_CHAIN:
                row = conn.execute(
                    "SELECT id, parent, body, input_items, turns, system FROM responses "
                    "WHERE id = ? AND last_used >= ?",
                    (ids, cutoff),
                ).fetchone()
                if row is None:
                    return None
                found.append(_from_row(row))
                ids = found[-1].parent
            conn.executemany(
                "UPDATE responses SET last_used = ? WHERE id = ?", [(now, r.id) for r in found]
            )
            return found

        older = await self._call(walk)
        if older is None:
            return None
        return [*older[::-1], *newest[::-1]]

    async def delete(self, response_id: str) -> bool:
        held = self._held.pop(response_id, None)
        cutoff = self._cutoff()

        def delete(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM responses WHERE id = ? AND last_used >= ?", (response_id, cutoff)
            )
            return cur.rowcount > 0

        return await self._call(delete) or held is not None


__all__ = ["ResponseStore", "StoredResponse", "response_db_path"]
