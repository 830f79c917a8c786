"""The SQLite side of the session store: schema, opening, and small queries.

Everything here is synchronous and runs in a worker thread, called by
:class:`~clawrap.sessions._store.SessionStore` one call at a time on one connection.
Schema versions live in ``PRAGMA user_version``; a file from a newer version
is refused rather than misread.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clawrap.core._errors import ClawrapError
from clawrap.core._request import Turn
from clawrap.core._session_ids import MAX_ID_LENGTH
from clawrap.protocol._conversation import loads_turn

SCHEMA_VERSION = 1

_SCHEMA = """
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
) WITHOUT ROWID;
"""
COLUMNS = (
    "id, root, parent, fork_turn, created, last_used, model, system, turns, requests, "
    "input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens, cost_usd"
)


class SessionStoreError(ClawrapError):
    """The session database cannot be opened. Raised only by :meth:`SessionStore.open`,
    for the operator: the message names the file."""

    def __init__(self, message: str) -> None:
        super().__init__("api_error", message, status=500, code="session_store_unavailable")


def connect(path: str) -> sqlite3.Connection:
    """Open, create the schema if new, and prove the file is writable."""
    try:
        if path != ":memory:":
            directory = Path(path).parent
            if not directory.is_dir():
                directory.mkdir(mode=0o700, parents=True)
                directory.chmod(0o700)
            # Created private before SQLite sees it; its -wal and -shm files copy the mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise SessionStoreError(
            f"Cannot create or open the session database {path}: {exc}"
        ) from None
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SessionStoreError(
                f"The session database {path} was written by a newer clawrap "
                f"(schema {version}); use that version or another file (CLAWRAP_SESSION_DB)."
            )
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA secure_delete = ON")
        if version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise SessionStoreError(
                    f"{path} is a SQLite database but not a clawrap session database."
                )
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes before any table
            # One script, one transaction: a crash never leaves half a schema.
            conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # A real write: a read-only file or directory fails here, not at the first commit.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.Error as exc:
        conn.close()
        raise SessionStoreError(
            f"The session database {path} is unusable ({exc}). Move it away or set "
            "CLAWRAP_SESSION_DB to another file."
        ) from None
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def load_turns(conn: sqlite3.Connection, session_id: str) -> tuple[Turn, ...]:
    rows = conn.execute(
        "SELECT body FROM turns WHERE session_id = ? ORDER BY idx", (session_id,)
    ).fetchall()
    return tuple(loads_turn(r[0]) for r in rows)


def load_digests(conn: sqlite3.Connection, session_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT digest FROM turns WHERE session_id = ? ORDER BY idx", (session_id,)
    ).fetchall()
    return [r[0] for r in rows]


def insert_turns(
    conn: sqlite3.Connection, session_id: str, start: int, rows: Sequence[tuple[str, str]]
) -> None:
    conn.executemany(
        "INSERT INTO turns (session_id, idx, body, digest) VALUES (?, ?, ?, ?)",
        [(session_id, start + i, body, digest) for i, (body, digest) in enumerate(rows)],
    )


def free_id(conn: sqlite3.Connection, root: str) -> str:
    """The first unused branch id ``<root>.<n>`` (root shortened to keep ids valid)."""
    n = 1
    while True:
        suffix = f".{n}"
        candidate = root[: MAX_ID_LENGTH - len(suffix)] + suffix
        if not taken(conn, candidate):
            return candidate
        n += 1


def reclaim(conn: sqlite3.Connection) -> None:
    """Give deleted pages back to the file system and empty the WAL of deleted text."""
    conn.execute("PRAGMA incremental_vacuum")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# ---------------------------------------------------------------- queries

Row = tuple[Any, ...]
# input, output, cache read, cache creation tokens, cost in USD
Totals = tuple[int, int, int, int, float]


def session_row(conn: sqlite3.Connection, session_id: str, cutoff: float) -> Row | None:
    """The session's row (in :data:`COLUMNS` order) if used at or after ``cutoff``."""
    row: Row | None = conn.execute(
        f"SELECT {COLUMNS} FROM sessions WHERE id = ? AND last_used >= ?", (session_id, cutoff)
    ).fetchone()
    return row


def family_rows(conn: sqlite3.Connection, root: str, cutoff: float, limit: int = 64) -> list[Row]:
    """The live sessions of one family (a session and its branches), latest first."""
    return conn.execute(
        f"SELECT {COLUMNS} FROM sessions WHERE root = ? AND last_used >= ? "
        "ORDER BY last_used DESC LIMIT ?",
        (root, cutoff, limit),
    ).fetchall()


def list_rows(
    conn: sqlite3.Connection, cutoff: float, limit: int, offset: int
) -> tuple[list[Row], int]:
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM sessions WHERE last_used >= ? "
        "ORDER BY last_used DESC, id LIMIT ? OFFSET ?",
        (cutoff, limit, offset),
    ).fetchall()
    total = conn.execute("SELECT count(*) FROM sessions WHERE last_used >= ?", (cutoff,))
    return rows, int(total.fetchone()[0])


def stats_row(conn: sqlite3.Connection, cutoff: float) -> Row:
    """Sessions, branches, turns, requests, the four token totals, cost."""
    row: Row = conn.execute(
        "SELECT count(*), count(parent), total(turns), total(requests), total(input_tokens), "
        "total(output_tokens), total(cache_read_input_tokens), "
        "total(cache_creation_input_tokens), total(cost_usd) FROM sessions WHERE last_used >= ?",
        (cutoff,),
    ).fetchone()
    return row


def append(
    conn: sqlite3.Connection,
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
    conn: sqlite3.Connection,
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


def taken(conn: sqlite3.Connection, session_id: str) -> bool:
    return conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None


def delete_idle(conn: sqlite3.Connection, cutoff: float, session_id: str | None = None) -> int:
    """Delete sessions last used before ``cutoff`` (only ``session_id``, if given)."""
    if session_id is None:
        cur = conn.execute("DELETE FROM sessions WHERE last_used < ?", (cutoff,))
    else:
        cur = conn.execute(
            "DELETE FROM sessions WHERE id = ? AND last_used < ?", (session_id, cutoff)
        )
    return cur.rowcount


def delete_family(conn: sqlite3.Connection, session_id: str) -> int:
    """Delete a session and every branch whose root it is."""
    cur = conn.execute("DELETE FROM sessions WHERE id = ? OR root = ?", (session_id, session_id))
    return cur.rowcount


def family_ids(conn: sqlite3.Connection, session_id: str) -> list[str]:
    """The ids :func:`delete_family` would delete."""
    rows = conn.execute(
        "SELECT id FROM sessions WHERE id = ? OR root = ?", (session_id, session_id)
    ).fetchall()
    return [str(r[0]) for r in rows]


def idle_ids(conn: sqlite3.Connection, cutoff: float) -> list[str]:
    """The ids :func:`delete_idle` (without a session id) would delete."""
    rows = conn.execute("SELECT id FROM sessions WHERE last_used < ?", (cutoff,)).fetchall()
    return [str(r[0]) for r in rows]


__all__ = [
    "COLUMNS",
    "MAX_ID_LENGTH",
    "SCHEMA_VERSION",
    "Row",
    "SessionStoreError",
    "Totals",
    "append",
    "connect",
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
    "reclaim",
    "session_row",
    "stats_row",
    "taken",
    "transaction",
]
