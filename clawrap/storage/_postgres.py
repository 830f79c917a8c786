"""PostgreSQL for several clawrap instances sharing one state (``CLAWRAP_DATABASE_URL``).

A ``psycopg_pool.ConnectionPool`` of synchronous psycopg 3 connections in
autocommit mode (a store opens a transaction where it needs one). Each
:meth:`PostgresDatabase.run` borrows a connection inside a worker thread, so up to
``pool`` calls run at once without touching the event loop; a trio
``CapacityLimiter`` of the same size keeps threads from queueing on the pool.
Borrowing waits at most :data:`CONNECT_TIMEOUT` seconds, then fails, so an
unreachable server is an error, not a hang. A cancelled call is not abandoned: its
thread finishes and returns its connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg_pool
import trio

from clawrap.storage._database import Conn, Database, DatabaseError, Dialect

log = logging.getLogger("clawrap.storage")

_T = TypeVar("_T")
CONNECT_TIMEOUT = 5.0  # seconds to get a connection before the call fails
STATEMENT_TIMEOUT_MS = 30_000  # no one statement runs longer


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresDatabase(Database):
    """A pool of connections to one PostgreSQL database."""

    dialect: Dialect = "postgres"

    def __init__(self, pool: psycopg_pool.ConnectionPool, url: str, size: int) -> None:
        self._pool: psycopg_pool.ConnectionPool | None = pool
        self._limiter = trio.CapacityLimiter(size)
        self.where = redact(url)

    @classmethod
    def connect(cls, url: str, size: int) -> PostgresDatabase:
        """Open the pool and prove the server answers; :class:`DatabaseError` otherwise."""
        pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=size,
            kwargs={
                "autocommit": True,
                "connect_timeout": int(CONNECT_TIMEOUT),
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                "application_name": "clawrap",
            },
            timeout=CONNECT_TIMEOUT,
            open=False,
            name="clawrap",
        )
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            pool.close()
            raise DatabaseError(redact(url), _reason(exc)) from None
        return cls(pool, url, size)

    async def run(self, fn: Callable[[Conn], _T]) -> _T:
        async with self._limiter:
            return await trio.to_thread.run_sync(self.run_now, fn)

    def run_now(self, fn: Callable[[Conn], _T]) -> _T:
        pool = self._pool
        if pool is None:
            raise DatabaseError(self.where, "closed")
        try:
            with pool.connection() as raw:
                return fn(Conn(raw, "postgres"))
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise DatabaseError(self.where, _reason(exc)) from None

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await trio.to_thread.run_sync(pool.close)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = ["CONNECT_TIMEOUT", "PostgresDatabase", "redact"]
