"""Sessions: conversations kept in SQLite across requests and server restarts.

A client names a conversation with ``session_id`` (or ``X-Session-Id``).
:meth:`SessionStore.resolve` matches the request's turns against the stored
ones (:func:`~clawrap.protocol._conversation.merge_history`: only the new message, a
full resend, a window of recent turns, an edit); after the run
:meth:`SessionStore.commit` stores the new turns and the reply.

Branching: an edited earlier message never rewrites a session. The conversation
is stored as a new branch ``<root>.<n>`` (its ``parent`` and ``fork_turn`` say
where it left). The id where the conversation now lives is
:attr:`Resolution.session_id`, which the server sends back as ``X-Session-Id``.
A client that keeps resending its whole history under the old id lands on that
branch again, so an edit does not fork on every later request; one that sends
only new messages continues exactly the id it names.

Concurrency: two requests on one session are served one after the other
(:class:`~clawrap.sessions._lifetime.SessionLocks`). Commits also check that
the session did not change underneath (several servers on one database): if it
did, the conversation goes to a new branch rather than over it.

Storage: a :class:`~clawrap.storage._database.Database`, SQLite (one file in WAL
mode, the default) or PostgreSQL (shared by several instances), its schema
migrated at open. Expired sessions (idle longer than the TTL) are invisible at
once and deleted by :func:`~clawrap.sessions._lifetime.run_expiry`; on SQLite
with ``secure_delete``, so their text leaves the file too.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial

import trio

from clawrap.core._config import Settings
from clawrap.core._events import Usage
from clawrap.core._request import Turn
from clawrap.protocol._conversation import (
    dumps_turn,
    match_history,
    merge_history,
    turn_digest,
    turn_shape,
)
from clawrap.sessions import _session_sql as db
from clawrap.sessions._database_store import DatabaseStore
from clawrap.sessions._lifetime import SessionLocks, run_expiry
from clawrap.sessions._records import (
    Resolution,
    Session,
    SessionInfo,
    SessionStats,
    check_session_id,
)
from clawrap.sessions._session_sql import MAX_ID_LENGTH, SessionStoreError
from clawrap.storage._database import Conn, Database, DatabaseError, SqliteDatabase
from clawrap.storage._migrations import SchemaError, migrate
from clawrap.storage._open import sqlite_path

log = logging.getLogger("clawrap.sessions")


def session_db_path(settings: Settings) -> str:
    """``settings.session_db``, else ``<data_dir>/sessions.sqlite3`` (``:memory:`` keeps none)."""
    return sqlite_path(settings, "sessions")


_INFO_FIELDS = [f.name for f in dataclasses.fields(SessionInfo)][:15]
_STATS_FIELDS = [f.name for f in dataclasses.fields(SessionStats)][:8]


class SessionStore(DatabaseStore):
    """Sessions in a database. Open with :meth:`open` (a SQLite file) or :meth:`open_on`
    (a database the caller opened and closes), close with :meth:`aclose`.

    Every method raises a 500 :class:`ClawrapError` (``session_store_error``;
    details logged, none in the message) when the database fails, and a 400
    for a malformed session id. ``clock`` gives Unix time (tests replace it).
    """

    what = "session store"
    code = "session_store_error"

    def __init__(
        self, database: Database, ttl: float, clock: Callable[[], float], *, owned: bool
    ) -> None:
        super().__init__(database, owned=owned)
        self.path = database.where
        self.ttl = ttl
        self.clock = clock
        self._removed: list[Callable[[list[str]], None]] = []

    def on_removed(self, listener: Callable[[list[str]], None]) -> None:
        """Call ``listener`` with the ids of sessions deleted or expired from now on.

        So what a session holds outside the database (an agent run's working
        directory) ends with it. A listener must not raise or block.
        """
        self._removed.append(listener)

    def _notify(self, ids: list[str]) -> None:
        if not ids:
            return
        for listener in self._removed:
            try:
                listener(ids)
            except Exception:
                log.warning("a session removal listener failed", exc_info=True)

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> SessionStore:
        """Open (creating if needed) the SQLite file at ``path``; ``ttl <= 0`` never expires.

        Raises :class:`SessionStoreError` when the file cannot be created, opened
        or written, or is not a session database of a version this server reads.
        """
        path = os.fspath(path)
        try:
            database = await trio.to_thread.run_sync(SqliteDatabase.connect, path)
        except DatabaseError as exc:
            raise SessionStoreError(
                f"Cannot create or open the session database {exc.where}: {exc.reason}"
            ) from None
        try:
            return await cls.open_on(database, ttl=ttl, clock=clock, owned=True)
        except BaseException:
            with trio.CancelScope(shield=True):
                await database.aclose()
            raise

    @classmethod
    async def open_on(
        cls,
        database: Database,
        *,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
        owned: bool = False,
    ) -> SessionStore:
        """The store on ``database``, its schema migrated; closed by the caller unless
        ``owned``. :class:`SessionStoreError` names a database it cannot use."""
        try:
            await database.run(partial(migrate, schema=db.SCHEMA))
        except SchemaError as exc:
            raise SessionStoreError(
                f"The session database {database.where} cannot be used: {exc}; use the "
                "clawrap that wrote it or another database (CLAWRAP_SESSION_DB)."
            ) from None
        except DatabaseError as exc:
            raise SessionStoreError(
                f"The session database {exc.where} is unusable ({exc.reason}). Move it away or set "
                "CLAWRAP_SESSION_DB to another file."
            ) from None
        return cls(database, ttl, clock, owned=owned)

    def _cutoff(self) -> float:
        """Sessions last used before this are expired. Read in the trio task, not the thread."""
        return self.clock() - self.ttl if self.ttl > 0 else -math.inf

    def _info(self, row: db.Row) -> SessionInfo:
        expires = row[5] + self.ttl if self.ttl > 0 else None
        return SessionInfo(**dict(zip(_INFO_FIELDS, row, strict=True)), expires_at=expires)

    def _live(self, conn: Conn, session_id: str, cutoff: float) -> SessionInfo | None:
        row = db.session_row(conn, session_id, cutoff)
        return None if row is None else self._info(row)

    async def get(self, session_id: str) -> Session | None:
        """The live session ``session_id`` with its turns, or None."""
        check_session_id(session_id)
        cutoff = self._cutoff()

        def get(conn: Conn) -> Session | None:
            info = self._live(conn, session_id, cutoff)
            return None if info is None else Session(info, db.load_turns(conn, session_id))

        return await self._call(get)

    async def resolve(self, session_id: str, incoming: Sequence[Turn]) -> Resolution:
        """Match a request's ``incoming`` turns against session ``session_id``.

        Nothing is written. Raises a 400 when there is nothing to answer.
        """
        check_session_id(session_id)
        new = [turn_digest(t) for t in incoming]
        new_shapes = [turn_shape(t) for t in incoming]
        cutoff = self._cutoff()

        def resolve(conn: Conn) -> Resolution:
            info = self._live(conn, session_id, cutoff)
            if info is None:
                return Resolution(session_id, session_id, merge_history((), incoming), None)
            digests = db.load_digests(conn, info.id)
            stored = db.load_turns(conn, info.id)
            shapes = ([turn_shape(t) for t in stored], new_shapes)
            if match_history(digests, new, shapes=shapes).base < len(digests):
                # A fork, unless the client is resending a branch made by an earlier edit.
                branch = self._branch(conn, info, new, cutoff)
                if branch is not None:
                    info, digests = branch
                    stored = db.load_turns(conn, info.id)
            merge = merge_history(stored, incoming, stored_digests=digests)
            target = db.free_id(conn, info.root) if merge.forks else info.id
            return Resolution(session_id, target, merge, info)

        return await self._call(resolve)

    def _branch(
        self, conn: Conn, info: SessionInfo, new: list[str], cutoff: float
    ) -> tuple[SessionInfo, list[str]] | None:
        """The longest other conversation of ``info``'s family that ``new`` fully resends."""
        best: tuple[SessionInfo, list[str]] | None = None
        for row in db.family_rows(conn, info.root, cutoff):
            branch = self._info(row)
            if branch.id == info.id:
                continue
            digests = db.load_digests(conn, branch.id)
            if match_history(digests, new).kind == "resend" and (
                best is None or len(digests) > len(best[1])
            ):
                best = (branch, digests)
        return best

    async def commit(
        self,
        resolution: Resolution,
        reply: Turn | None,
        *,
        model: str | None,
        usage: Usage | None,
        system: str | None,
    ) -> str:
        """Store the request's new turns and the ``reply``; return the session id used.

        That is ``resolution.session_id`` unless the session changed since
        :meth:`resolve` (another server on the same file), in which case the
        conversation goes to a fresh branch instead of over it.
        """
        merge, source = resolution.merge, resolution.source
        added = [(dumps_turn(t), turn_digest(t)) for t in merge.new]
        if reply is not None:
            added.append((dumps_turn(reply), turn_digest(reply)))
        u = usage or Usage(0, 0)
        totals: db.Totals = (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_input_tokens,
            u.cache_creation_input_tokens,
            u.cost_usd or 0.0,
        )

        now, cutoff = self.clock(), self._cutoff()

        def commit(conn: Conn) -> str:
            target = resolution.session_id
            root = source.root if source is not None else resolution.requested
            with conn.transaction():
                db.lock_family(conn, root)
                if source is not None and not merge.forks:
                    row = db.session_row(conn, target, cutoff)
                    if row is not None and row[8] == merge.base:
                        db.append(conn, target, merge.base, added, now=now, model=model,
                                  system=system, totals=totals)  # fmt: skip
                        return target
                # A new session or branch: the whole conversation goes in.
                db.delete_idle(conn, cutoff, target)
                if db.taken(conn, target):
                    target = db.free_id(conn, root)
                kept = zip(
                    merge.conversation[: merge.base], merge.digests[: merge.base], strict=True
                )
                db.create(
                    conn,
                    target,
                    root=root,
                    parent=source.id if source is not None else None,
                    fork_turn=merge.base if source is not None else None,
                    now=now,
                    model=model,
                    system=system,
                    rows=[(dumps_turn(t), d) for t, d in kept] + added,
                    totals=totals,
                )
                return target

        return await self._call(commit)

    async def delete(self, session_id: str) -> int:
        """Delete a live session and the branches made from it; how many went (0: none)."""
        check_session_id(session_id)
        cutoff = self._cutoff()

        def delete(conn: Conn) -> list[str]:
            with conn.transaction():
                if self._live(conn, session_id, cutoff) is None:
                    return []
                ids = db.family_ids(conn, session_id)
                db.delete_family(conn, session_id)
            db.reclaim(conn)
            return ids

        ids = await self._call(delete)
        self._notify(ids)
        return len(ids)

    async def list(self, limit: int = 20, offset: int = 0) -> tuple[list[SessionInfo], int]:
        """Live sessions, most recently used first, and how many there are in all."""

        cutoff = self._cutoff()

        def list_(conn: Conn) -> tuple[list[SessionInfo], int]:
            rows, total = db.list_rows(conn, cutoff, limit, offset)
            return [self._info(r) for r in rows], total

        return await self._call(list_)

    async def stats(self) -> SessionStats:
        cutoff = self._cutoff()

        def stats(conn: Conn) -> SessionStats:
            row = db.stats_row(conn, cutoff)
            if conn.dialect == "postgres":
                size = db.postgres_bytes(conn)
            else:
                files = (self.path, self.path + "-wal") if self.path != ":memory:" else ()
                size = sum(os.path.getsize(p) for p in files if os.path.exists(p))
            counts = dict(zip(_STATS_FIELDS, (int(v) for v in row[:8]), strict=True))
            cost = float(row[8])
            return SessionStats(**counts, cost_usd=cost, ttl=self.ttl, db_bytes=size)

        return await self._call(stats)

    async def expire(self, now: float | None = None) -> int:
        """Delete sessions idle longer than the TTL (as of ``now``); how many went."""
        if self.ttl <= 0:
            return 0
        cutoff = (self.clock() if now is None else now) - self.ttl

        def expire(conn: Conn) -> list[str]:
            with conn.transaction():
                ids = db.idle_ids(conn, cutoff)
                db.delete_idle(conn, cutoff)
            if ids:
                db.reclaim(conn)
            return ids

        ids = await self._call(expire)
        self._notify(ids)
        return len(ids)


@asynccontextmanager
async def open_session_store(settings: Settings) -> AsyncIterator[SessionStore]:
    """The store for ``settings`` (path, TTL), closed on exit."""
    store = await SessionStore.open(session_db_path(settings), ttl=settings.session_ttl)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()


__all__ = [
    "MAX_ID_LENGTH",
    "Resolution",
    "Session",
    "SessionInfo",
    "SessionLocks",
    "SessionStats",
    "SessionStore",
    "SessionStoreError",
    "check_session_id",
    "open_session_store",
    "run_expiry",
    "session_db_path",
]
