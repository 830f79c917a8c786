"""The session store's SQL: schema migrations and small queries, for both engines.

Everything here is synchronous and runs in a worker thread, called by
:class:`~clawrap.sessions._store.SessionStore` through a
:class:`~clawrap.storage._database.Database` (SQLite or PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clawrap.core._errors import ClawrapError
from clawrap.core._request import Turn
from clawrap.core._session_ids import MAX_ID_LENGTH
from clawrap.protocol._conversation import loads_turn
from clawrap.storage._database import Conn
from clawrap.storage._migrations import Migration, Schema

_V1_SQLITE = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY, root TEXT NOT NULL, parent TEXT, fork_turn INTEGER,
    created REAL NOT NULL, last_used REAL NOT NULL, model TEXT, system TEXT,
    turns INTEGER NOT NULL, requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    cache_read_input_tokens INTEGER NOT NULL, cache_creation_input_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL
);
CREATE INDEX sessions_root ON sessions (root);
CREATE INDEX sessions_last_used ON sessions (last_used);
CREATE TABLE turns (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL, digest TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (session_id, idx)
) WITHOUT ROWID
"""
_V1_POSTGRES = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY, root TEXT NOT NULL, parent TEXT, fork_turn INTEGER,
    created DOUBLE PRECISION NOT NULL, last_used DOUBLE PRECISION NOT NULL,
    model TEXT, system TEXT, turns INTEGER NOT NULL, requests BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
    cache_read_input_tokens BIGINT NOT NULL, cache_creation_input_tokens BIGINT NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL
);
CREATE INDEX sessions_root ON sessions (root);
CREATE INDEX sessions_last_used ON sessions (last_used);
CREATE TABLE turns (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL, digest TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (session_id, idx)
)
"""
SCHEMA = Schema("session", (Migration(1, _V1_SQLITE, _V1_POSTGRES),))
SCHEMA_VERSION = SCHEMA.latest

COLUMNS = (
    "id, root, parent, fork_turn, created, last_used, model, system, turns, requests, "
    "input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens, cost_usd"
)


class SessionStoreError(ClawrapError):
    """The session database cannot be opened. Raised only by :meth:`SessionStore.open`,
    for the operator: the message names the file or server."""

    def __init__(self, message: str) -> None:
        super().__init__("api_error", message, status=500, code="session_store_unavailable")


def load_turns(conn: Conn, session_id: str) -> tuple[Turn, ...]:
    rows = conn.execute(
        "SELECT body FROM turns WHERE session_id = ? ORDER BY idx", (session_id,)
    ).fetchall()
    return tuple(loads_turn(r[0]) for r in rows)


def load_digests(conn: Conn, session_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT digest FROM turns WHERE session_id = ? ORDER BY idx", (session_id,)
    ).fetchall()
    return [r[0] for r in rows]


def insert_turns(conn: Conn, session_id: str, start: int, rows: Sequence[tuple[str, str]]) -> None:
    conn.executemany(
        "INSERT INTO turns (session_id, idx, body, digest) VALUES (?, ?, ?, ?)",
        [(session_id, start + i, body, digest) for i, (body, digest) in enumerate(rows)],
    )


def free_id(conn: Conn, root: str) -> str:
    """The first unused branch id ``<root>.<n>`` (root shortened to keep ids valid)."""
    n = 1
    while True:
        suffix = f".{n}"
        candidate = root[: MAX_ID_LENGTH - len(suffix)] + suffix
        if not taken(conn, candidate):
            return candidate
        n += 1


def reclaim(conn: Conn) -> None:
    """Give deleted pages back to the file system and empty the WAL of deleted text
    (SQLite; PostgreSQL's autovacuum does this on its own)."""
    if conn.dialect != "sqlite":
        return
    conn.execute("PRAGMA incremental_vacuum")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# ---------------------------------------------------------------- queries

Row = tuple[Any, ...]
# input, output, cache read, cache creation tokens, cost in USD
Totals = tuple[int, int, int, int, float]


def session_row(
    conn: Conn, session_id: str, cutoff: float, *, for_update: bool = False
) -> Row | None:
    """The session's row (in :data:`COLUMNS` order) if used at or after ``cutoff``.

    ``for_update`` (in a transaction): on PostgreSQL, other instances' commits to this
    session wait until this transaction ends (SQLite's write lock already covers it).
    """
    lock = " FOR UPDATE" if for_update and conn.dialect == "postgres" else ""
    row: Row | None = conn.execute(
        f"SELECT {COLUMNS} FROM sessions WHERE id = ? AND last_used >= ?{lock}",
        (session_id, cutoff),
    ).fetchone()
    return row


def family_rows(conn: Conn, root: str, cutoff: float, limit: int = 64) -> list[Row]:
    """The live sessions of one family (a session and its branches), latest first."""
    return conn.execute(
        f"SELECT {COLUMNS} FROM sessions WHERE root = ? AND last_used >= ? "
        "ORDER BY last_used DESC LIMIT ?",
        (root, cutoff, limit),
    ).fetchall()


def list_rows(conn: Conn, cutoff: float, limit: int, offset: int) -> tuple[list[Row], int]:
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM sessions WHERE last_used >= ? "
        "ORDER BY last_used DESC, id LIMIT ? OFFSET ?",
        (cutoff, limit, offset),
    ).fetchall()
    total = conn.execute("SELECT count(*) FROM sessions WHERE last_used >= ?", (cutoff,))
    return rows, int(total.fetchone()[0])


def stats_row(conn: Conn, cutoff: float) -> Row:
    """Sessions, branches, turns, requests, the four token totals, cost."""
    row: Row = conn.execute(
        "SELECT count(*), count(parent), coalesce(sum(turns), 0), coalesce(sum(requests), 0), "
        "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), "
        "coalesce(sum(cache_read_input_tokens), 0), "
        "coalesce(sum(cache_creation_input_tokens), 0), coalesce(sum(cost_usd), 0) "
        "FROM sessions WHERE last_used >= ?",
        (cutoff,),
    ).fetchone()
    return row


def lock_family(conn: Conn, root: str) -> None:
    """In a transaction on PostgreSQL: commits to one family (a session and its branches)
    from several instances take turns. SQLite's write lock already serialises them."""
    if conn.dialect == "postgres":
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (root,))


def postgres_bytes(conn: Conn) -> int:
    """What the session tables take on the PostgreSQL server."""
    row = conn.execute(
        "SELECT pg_total_relation_size('sessions') + pg_total_relation_size('turns')"
    ).fetchone()
    return int(row[0])


def append(
    conn: Conn,
    session_id: str,
    base: int,
    rows: Sequence[tuple[str, str]],
    *,
    now: float,
    model: str | None,
    system: str | None,
    totals: Totals,
) -> None:
    """Add ``rows`` (body, digest) after turn ``base`` and count the request."""
    insert_turns(conn, session_id, base, rows)
    conn.execute(
        "UPDATE sessions SET last_used = ?, model = ?, system = ?, turns = ?, "
        "requests = requests + 1, input_tokens = input_tokens + ?, "
        "output_tokens = output_tokens + ?, "
        "cache_read_input_tokens = cache_read_input_tokens + ?, "
        "cache_creation_input_tokens = cache_creation_input_tokens + ?, "
        "cost_usd = cost_usd + ? WHERE id = ?",
        (now, model, system, base + len(rows), *totals, session_id),
    )


def create(
    conn: Conn,
    session_id: str,
    *,
    root: str,
    parent: str | None,
    fork_turn: int | None,
    now: float,
    model: str | None,
    system: str | None,
    rows: Sequence[tuple[str, str]],
    totals: Totals,
) -> None:
    """A new session (or branch) holding ``rows`` (body, digest), its first request counted."""
    conn.execute(
        f"INSERT INTO sessions ({COLUMNS}) VALUES ({', '.join('?' * 15)})",
        (session_id, root, parent, fork_turn, now, now, model, system, len(rows), 1, *totals),
    )
    insert_turns(conn, session_id, 0, rows)


def taken(conn: Conn, session_id: str) -> bool:
    return conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None


def delete_idle(conn: Conn, cutoff: float, session_id: str | None = None) -> int:
    """Delete sessions last used before ``cutoff`` (only ``session_id``, if given)."""
    if session_id is None:
        cur = conn.execute("DELETE FROM sessions WHERE last_used < ?", (cutoff,))
    else:
        cur = conn.execute(
            "DELETE FROM sessions WHERE id = ? AND last_used < ?", (session_id, cutoff)
        )
    return cur.rowcount


def delete_family(conn: Conn, session_id: str) -> int:
    """Delete a session and every branch whose root it is."""
    cur = conn.execute("DELETE FROM sessions WHERE id = ? OR root = ?", (session_id, session_id))
    return cur.rowcount


def family_ids(conn: Conn, session_id: str) -> list[str]:
    """The ids :func:`delete_family` would delete."""
    rows = conn.execute(
        "SELECT id FROM sessions WHERE id = ? OR root = ?", (session_id, session_id)
    ).fetchall()
    return [str(r[0]) for r in rows]


def idle_ids(conn: Conn, cutoff: float) -> list[str]:
    """The ids :func:`delete_idle` (without a session id) would delete."""
    rows = conn.execute("SELECT id FROM sessions WHERE last_used < ?", (cutoff,)).fetchall()
    return [str(r[0]) for r in rows]


__all__ = [
    "COLUMNS",
    "MAX_ID_LENGTH",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Row",
    "SessionStoreError",
    "Totals",
    "append",
    "create",
    "delete_family",
    "delete_idle",
    "family_ids",
    "family_rows",
    "free_id",
    "idle_ids",
    "insert_turns",
    "list_rows",
    "load_digests",
    "load_turns",
    "lock_family",
    "postgres_bytes",
    "reclaim",
    "session_row",
    "stats_row",
    "taken",
]
