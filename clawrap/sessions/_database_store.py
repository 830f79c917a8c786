"""What every store on a :class:`~clawrap.storage._database.Database` does the same way.

Its calls run through the database (off the event loop); a failure is logged with
its traceback and answered as one 500 naming the store, never the database's own
words; a closed store refuses calls; the database is closed once, and only by a
store that opened it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ClassVar, TypeVar

from clawrap.core._errors import ClawrapError
from clawrap.storage._database import Conn, Database, DatabaseError

log = logging.getLogger("clawrap.storage")

_T = TypeVar("_T")


class DatabaseStore:
    """Base of the stores: ``what`` names it in errors, ``code`` is its errors' code, and
    ``failures`` are the exceptions of a call that count as the store failing."""

    what: ClassVar[str]
    code: ClassVar[str]
    failures: ClassVar[tuple[type[Exception], ...]] = (DatabaseError, ValueError)

    def __init__(self, database: Database, *, owned: bool) -> None:
        self.database = database
        self._owned = owned
        self._closed = False

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owned:
            await self.database.aclose()

    async def _call(self, fn: Callable[[Conn], _T]) -> _T:
        if self._closed:
            raise ClawrapError("api_error", f"The {self.what} is closed.", status=500)
        try:
            return await self.database.run(fn)
        except self.failures as exc:
            log.error("%s %s failed: %s", self.what, self.database.where, exc, exc_info=True)
            raise ClawrapError(
                "api_error",
                f"The {self.what} failed; the server log has the details.",
                status=500,
                code=self.code,
            ) from None


__all__ = ["DatabaseStore"]
