"""The usage ledger: per key, model and UTC day, what was asked and what it cost (SQLite).

One row per (key, model, day) holds the requests, input / output / cache-read /
cache-write tokens, cost in USD (the SDK's own figure for the run) and errors.
Each finished run adds to its row with one upsert. The calls are synchronous and
short (an upsert on a WAL database, no fsync per commit), made from the event loop
at the end of a run; ``bench/accounting.py`` measures what they cost.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from clawrap.core._events import Usage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    day TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key, day, model)
) WITHOUT ROWID
"""

_UPSERT = """
INSERT INTO usage VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key, day, model) DO UPDATE SET
    requests = requests + 1,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
    cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
    cost_usd = cost_usd + excluded.cost_usd,
    errors = errors + excluded.errors
"""

COLUMNS = (
    "key",
    "model",
    "day",
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "errors",
)


class LedgerError(Exception):
    """The ledger's database cannot be opened or used; the message names the file."""


@dataclass(frozen=True, slots=True)
class UsageRow:
    key: str
    model: str
    day: str  # YYYY-MM-DD, UTC
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    errors: int


class Ledger:
    """The ledger at ``path`` (":memory:" for one that lives with the process)."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"cannot use the usage ledger {self.path}: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    def record(self, key: str, model: str, day: str, usage: Usage | None, error: bool) -> None:
        """Add one run to its (key, model, day) row."""
        u = usage or Usage(0, 0)
        self._conn.execute(
            _UPSERT,
            (
                key,
                model,
                day,
                u.input_tokens,
                u.output_tokens,
                u.cache_read_input_tokens,
                u.cache_creation_input_tokens,
                u.cost_usd or 0.0,
                int(error),
            ),
        )

    def spent(self, key: str, day: str) -> tuple[int, float, float]:
        """(tokens today, USD today, USD this month) for ``key``; ``day`` is today."""
        today = self._conn.execute(
            "SELECT total(input_tokens + output_tokens + cache_write_tokens), total(cost_usd) "
            "FROM usage WHERE key = ? AND day = ?",
            (key, day),
        ).fetchone()
        month = self._conn.execute(
            "SELECT total(cost_usd) FROM usage WHERE key = ? AND day >= ? AND day <= ?",
            (key, day[:7] + "-01", day),
        ).fetchone()
        return int(today[0]), float(today[1]), float(month[0])

    def rows(
        self, key: str | None = None, start: str | None = None, end: str | None = None
    ) -> list[UsageRow]:
        """Rows by day, key and model; ``start``/``end`` are inclusive days."""
        where, args = [], []
        for clause, value in (("key = ?", key), ("day >= ?", start), ("day <= ?", end)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"SELECT {', '.join(COLUMNS)} FROM usage"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY day, key, model"
        return [UsageRow(*row) for row in self._conn.execute(sql, args)]


__all__ = ["COLUMNS", "Ledger", "LedgerError", "UsageRow"]
