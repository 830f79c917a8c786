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
moment its stream ends finds it. Storage: a
:class:`~clawrap.storage._database.Database` beside the sessions' (its own SQLite
file, or the PostgreSQL database several instances share), its schema migrated at
open.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._request import Turn
from clawrap.protocol._conversation import turn_from_json, turn_to_json
from clawrap.sessions._database_store import DatabaseStore
from clawrap.storage._database import Conn, Database, DatabaseError
from clawrap.storage._migrations import Migration, Schema, SchemaError, migrate
from clawrap.storage._open import open_database, sqlite_path

MAX_CHAIN = 10_000  # responses followed back along one chain

_V1_SQLITE = """
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
_V1_POSTGRES = """
CREATE TABLE responses (
    id TEXT PRIMARY KEY, parent TEXT, created DOUBLE PRECISION NOT NULL,
    last_used DOUBLE PRECISION NOT NULL, size BIGINT NOT NULL, body TEXT NOT NULL,
    input_items TEXT NOT NULL, turns TEXT NOT NULL, system TEXT NOT NULL
);
CREATE INDEX responses_last_used ON responses (last_used);
CREATE TABLE items (
    id TEXT PRIMARY KEY,
    response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    body TEXT NOT NULL
);
CREATE INDEX items_response ON items (response_id);
"""
SCHEMA = Schema("response", (Migration(1, _V1_SQLITE, _V1_POSTGRES),))
SCHEMA_VERSION = SCHEMA.latest

_UPSERT_RESPONSE = (
    "INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "parent = excluded.parent, created = excluded.created, last_used = excluded.last_used, "
    "size = excluded.size, body = excluded.body, input_items = excluded.input_items, "
    "turns = excluded.turns, system = excluded.system"
)
_UPSERT_ITEM = (
    "INSERT INTO items VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "response_id = excluded.response_id, body = excluded.body"
)


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
    return sqlite_path(settings, "responses")


class ResponseStore(DatabaseStore):
    """Stored responses in a database. Open with :meth:`open`, close with :meth:`aclose`.

    Database failures are a 500 ``response_store_error`` (details in the log).
    """

    what = "response store"
    code = "response_store_error"
    failures = (DatabaseError, ValueError, KeyError, TypeError)

    def __init__(
        self,
        database: Database,
        *,
        ttl: float,
        max_bytes: int,
        clock: Callable[[], float] = time.time,
        owned: bool = False,
    ) -> None:
        super().__init__(database, owned=owned)
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.clock = clock
        self._held: dict[str, StoredResponse] = {}

    @classmethod
    async def open(cls, settings: Settings, database: Database | None = None) -> ResponseStore:
        """The store on ``database`` (closed by the caller), else on a database of its own
        for ``settings``; its schema migrated. A 500 ClawrapError names what failed."""
        owned = database is None
        try:
            if database is None:
                database = await open_database(settings, "responses")
            try:
                await database.run(partial(migrate, schema=SCHEMA))
            except BaseException:
                if owned:
                    with trio.CancelScope(shield=True):
                        await database.aclose()
                raise
        except (DatabaseError, SchemaError) as exc:
            raise ClawrapError(
                "api_error", f"Cannot open the response store: {exc}", status=500
            ) from None
        return cls(
            database,
            ttl=settings.response_ttl,
            max_bytes=settings.response_store_mb * 1024 * 1024,
            owned=owned,
        )

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

        def write(conn: Conn) -> None:
            with conn.transaction():
                conn.execute(_UPSERT_RESPONSE, response.row(now))
                conn.executemany(
                    _UPSERT_ITEM,
                    [
                        (i["id"], response.id, json.dumps(i, ensure_ascii=False))
                        for i in response.items
                        if isinstance(i.get("id"), str)
                    ],
                )
                conn.execute("DELETE FROM responses WHERE last_used < ?", (cutoff,))
                total = conn.execute("SELECT coalesce(sum(size), 0) FROM responses").fetchone()[0]
                while total > limit:
                    row = conn.execute(
                        "SELECT id, size FROM responses ORDER BY last_used, created LIMIT 1"
                    ).fetchone()
                    if row is None or row[0] == response.id:
                        break  # the newest alone is over the bound: keep it, it is the one in use
                    conn.execute("DELETE FROM responses WHERE id = ?", (row[0],))
                    total -= row[1]

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

        def get(conn: Conn) -> StoredResponse | None:
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

        def item(conn: Conn) -> dict[str, Any] | None:
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

        def walk(conn: Conn) -> list[StoredResponse] | None:
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

        def delete(conn: Conn) -> bool:
            cur = conn.execute(
                "DELETE FROM responses WHERE id = ? AND last_used >= ?", (response_id, cutoff)
            )
            return cur.rowcount > 0

        return await self._call(delete) or held is not None


__all__ = ["ResponseStore", "StoredResponse", "response_db_path"]
