"""The usage ledger: per key, model and UTC day, what was asked and what it cost.

One row per (key, model, day) holds the requests, input / output / cache-read /
cache-write tokens, cost in USD (the SDK's own figure for the run) and errors.
Each finished run adds to its row with one upsert, in a worker thread. The rows
live in a :class:`~clawrap.storage._database.Database`: an SQLite file of its own
(``usage.sqlite3``) or the PostgreSQL database several instances share, so their
totals and spend ceilings count every instance's runs. ``bench/accounting.py``
measures what a request's accounting costs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import trio

from clawrap.core._events import Usage
from clawrap.storage._database import Conn, Database, DatabaseError, SqliteDatabase
from clawrap.storage._migrations import Migration, Schema, SchemaError, migrate

_V1_SQLITE = """
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
_V1_POSTGRES = """
CREATE TABLE IF NOT EXISTS usage (
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    day TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key, day, model)
)
"""


def _has_usage_table(conn: Conn) -> bool:
    """A ledger file from before versions were recorded holds just the usage table."""
    found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    names = {r[0] for r in found}
    return names == {"usage"}


_T = TypeVar("_T")
SCHEMA = Schema("usage", (Migration(1, _V1_SQLITE, _V1_POSTGRES),), adopt=_has_usage_table)

_UPSERT = """
INSERT INTO usage VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key, day, model) DO UPDATE SET
    requests = usage.requests + 1,
    input_tokens = usage.input_tokens + excluded.input_tokens,
    output_tokens = usage.output_tokens + excluded.output_tokens,
    cache_read_tokens = usage.cache_read_tokens + excluded.cache_read_tokens,
    cache_write_tokens = usage.cache_write_tokens + excluded.cache_write_tokens,
    cost_usd = usage.cost_usd + excluded.cost_usd,
    errors = usage.errors + excluded.errors
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
    """The ledger's database cannot be opened or used; the message names it."""


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


def _usage_row(r: Any) -> UsageRow:
    # PostgreSQL's sums and BIGINTs arrive as ints or Decimals; both engines give floats here.
    return UsageRow(
        key=r[0],
        model=r[1],
        day=r[2],
        requests=int(r[3]),
        input_tokens=int(r[4]),
        output_tokens=int(r[5]),
        cache_read_tokens=int(r[6]),
        cache_write_tokens=int(r[7]),
        cost_usd=float(r[8]),
        errors=int(r[9]),
    )


class Ledger:
    """The ledger on ``database``; without one, in memory (it lives with the process).

    Reads and writes raise :class:`LedgerError` when the database fails.
    """

    def __init__(self, database: Database | None = None, *, owned: bool = False) -> None:
        if database is None:
            database = SqliteDatabase.connect(":memory:")
            database.run_now(partial(migrate, schema=SCHEMA))
            owned = True
        self.database = database
        self._owned = owned

    @classmethod
    async def open(cls, database: Database, *, owned: bool = False) -> Ledger:
        """The ledger on ``database``, its schema migrated (closed with it if ``owned``)."""
        try:
            await database.run(partial(migrate, schema=SCHEMA))
        except (DatabaseError, SchemaError) as exc:
            raise LedgerError(f"cannot use the usage ledger {database.where}: {exc}") from None
        return cls(database, owned=owned)

    async def aclose(self) -> None:
        if self._owned:
            with trio.CancelScope(shield=True):
                await self.database.aclose()

    async def _run(self, fn: Callable[[Conn], _T]) -> _T:
        try:
            return await self.database.run(fn)
        except DatabaseError as exc:
            raise LedgerError(f"the usage ledger failed: {exc}") from None

    async def record(
        self, key: str, model: str, day: str, usage: Usage | None, error: bool
    ) -> None:
        """Add one run to its (key, model, day) row."""
        u = usage or Usage(0, 0)
        row = (
            key,
            model,
            day,
            u.input_tokens,
            u.output_tokens,
            u.cache_read_input_tokens,
            u.cache_creation_input_tokens,
            u.cost_usd or 0.0,
            int(error),
        )
        await self._run(lambda conn: conn.execute(_UPSERT, row))

    async def spent(self, key: str, day: str) -> tuple[int, float, float]:
        """(tokens today, USD today, USD this month) for ``key``; ``day`` is today."""

        def spent(conn: Conn) -> tuple[int, float, float]:
            today = conn.execute(
                "SELECT coalesce(sum(input_tokens + output_tokens + cache_write_tokens), 0), "
                "coalesce(sum(cost_usd), 0) FROM usage WHERE key = ? AND day = ?",
                (key, day),
            ).fetchone()
            month = conn.execute(
                "SELECT coalesce(sum(cost_usd), 0) FROM usage "
                "WHERE key = ? AND day >= ? AND day <= ?",
                (key, day[:7] + "-01", day),
            ).fetchone()
            return int(today[0]), float(today[1]), float(month[0])

        return await self._run(spent)

    async def rows(
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

        def rows(conn: Conn) -> list[UsageRow]:
            found = conn.execute(sql, args).fetchall()
            return [_usage_row(r) for r in found]

        return await self._run(rows)


__all__ = ["COLUMNS", "SCHEMA", "Ledger", "LedgerError", "UsageRow"]
