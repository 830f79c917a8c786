"""The pool's two sets of CLI processes that no request is using: idle ones and parked ones.

:class:`IdleSet` holds warm processes with an empty conversation, by spawn key;
a request takes the newest (on its model if there is one), so the oldest are
the ones expiry and eviction end. :class:`ParkedSet` holds processes that keep
a conversation for its next turn, by that conversation's key, oldest first,
at most ``limit`` of them. Both only keep order; the pool decides what to do.
"""

from __future__ import annotations

from collections import OrderedDict

from clawrap.claude._cli_process import CliProcess
from clawrap.claude._sdk_options import SpawnKey


class IdleSet:
    """Warm processes with an empty conversation, by spawn key."""

    def __init__(self) -> None:
        self._by_key: dict[SpawnKey, list[CliProcess]] = {}

    def count(self, key: SpawnKey | None = None) -> int:
        if key is not None:
            return len(self._by_key.get(key, ()))
        return sum(len(ps) for ps in self._by_key.values())

    def all(self) -> list[CliProcess]:
        return [p for ps in self._by_key.values() for p in ps]

    def spawn_keys(self) -> list[SpawnKey]:
        return list(self._by_key)

    def of(self, key: SpawnKey) -> list[CliProcess]:
        return list(self._by_key.get(key, ()))

    def add(self, proc: CliProcess) -> None:
        self._by_key.setdefault(proc.key, []).append(proc)

    def remove(self, proc: CliProcess) -> bool:
        procs = self._by_key.get(proc.key, [])
        if proc not in procs:
            return False
        procs.remove(proc)
        return True

    def take(self, key: SpawnKey, model: str, *, any_model: bool = True) -> CliProcess | None:
        """The newest process of ``key``, on ``model`` if one is, else (with
        ``any_model``) on another; None if there is none."""
        procs = self._by_key.get(key)
        if not procs:
            return None
        same = [p for p in procs if p.model == model]
        if not same and not any_model:
            return None
        proc = same[-1] if same else procs[-1]
        procs.remove(proc)
        return proc

    def pop_oldest(self) -> CliProcess | None:
        procs = self.all()
        if not procs:
            return None
        victim = min(procs, key=lambda p: p.idle_since)
        self.remove(victim)
        return victim

    def clear(self) -> list[CliProcess]:
        procs = self.all()
        self._by_key.clear()
        return procs


class ParkedSet:
    """Processes holding a conversation, by that conversation's key, oldest first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._by_conversation: OrderedDict[str, CliProcess] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_conversation)

    def all(self) -> list[CliProcess]:
        return list(self._by_conversation.values())

    def put(self, conversation: str, proc: CliProcess) -> list[CliProcess]:
        """Park ``proc``; returns those it displaces: an older holder of the same
        conversation (a request sent twice: the newer is kept) and any beyond ``limit``."""
        displaced = [p for p in [self._by_conversation.pop(conversation, None)] if p is not None]
        self._by_conversation[conversation] = proc
        while len(self._by_conversation) > self.limit:
            displaced.append(self._by_conversation.popitem(last=False)[1])
        return displaced

    def take(self, conversation: str, key: SpawnKey) -> CliProcess | None:
        """The process holding ``conversation`` if it has spawn key ``key``."""
        proc = self._by_conversation.get(conversation)
        if proc is None or proc.key != key:
            return None
        del self._by_conversation[conversation]
        return proc

    def pop_oldest(self, key: SpawnKey | None = None) -> CliProcess | None:
        """The oldest parked process (of ``key``, if given), taken out; None if none."""
        found = next((c for c, p in self._by_conversation.items() if key in (None, p.key)), None)
        return None if found is None else self._by_conversation.pop(found)

    def expired(
        self, now: float, expiry: float, open_expiry: float | None = None
    ) -> list[CliProcess]:
        """Take out and return the dead ones and those parked longer than ``expiry``
        (``open_expiry`` for those waiting with tool calls open)."""
        gone = [
            c
            for c, p in self._by_conversation.items()
            if not p.alive
            or now - p.idle_since
            > (open_expiry if p.open_calls and open_expiry is not None else expiry)
        ]
        return [self._by_conversation.pop(c) for c in gone]

    def remove(self, proc: CliProcess) -> bool:
        """Take ``proc`` out if it is parked; whether it was."""
        found = next((c for c, p in self._by_conversation.items() if p is proc), None)
        if found is None:
            return False
        del self._by_conversation[found]
        return True

    def clear(self) -> list[CliProcess]:
        procs = self.all()
        self._by_conversation.clear()
        return procs


__all__ = ["IdleSet", "ParkedSet"]
