"""The store of Responses API responses: held then written, chains, expiry, the size bound."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clawrap.core._config import Settings
from clawrap.core._request import TextPart, Turn
from clawrap.sessions._responses import ResponseStore, StoredResponse
from clawrap.storage._database import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path, database: Database) -> AsyncIterator[ResponseStore]:
    """A store on each engine in turn."""
    opened = await ResponseStore.open(Settings(data_dir=tmp_path, response_ttl=60), database)
    opened.clock = Clock()
    try:
        yield opened
    finally:
        await opened.aclose()


def response(rid: str, parent: str | None, text: str, size: int = 0) -> StoredResponse:
    turns = (Turn("user", (TextPart(text),)), Turn("assistant", (TextPart(text.upper()),)))
    body = {"id": rid, "object": "response", "pad": "x" * size}
    return StoredResponse(rid, parent, body, [{"id": f"msg_{rid}"}], turns, ("dev",))


async def test_a_held_response_is_found_before_and_after_it_is_written(
    store: ResponseStore,
) -> None:
    store.hold(response("r1", None, "a"))
    held = await store.get("r1")
    assert held is not None and held.body["id"] == "r1"
    await store.flush("r1")
    written = await store.get("r1")
    assert written == held


async def test_a_chain_is_rebuilt_from_the_first_response(store: ResponseStore) -> None:
    for rid, parent, text in (("r1", None, "a"), ("r2", "r1", "b"), ("r3", "r2", "c")):
        store.hold(response(rid, parent, text))
        if rid != "r3":
            await store.flush(rid)
    chain = await store.chain("r3")
    assert chain is not None
    assert [t.text for r in chain for t in r.turns] == ["a", "A", "b", "B", "c", "C"]
    assert await store.delete("r1")
    assert await store.chain("r3") is None  # a chain with a gap cannot be continued


async def test_unused_responses_expire_and_continuing_refreshes_the_chain(
    store: ResponseStore, tmp_path: Path
) -> None:
    clock = store.clock
    assert isinstance(clock, Clock)
    for rid, parent in (("r1", None), ("r2", "r1")):
        store.hold(response(rid, parent, rid))
        await store.flush(rid)
    clock.now += 50
    assert await store.chain("r2") is not None  # refreshes r1 and r2
    clock.now += 50
    assert await store.get("r1") is not None
    clock.now += 61
    assert await store.get("r2") is None


async def test_past_the_size_bound_the_least_recently_used_go_first(
    tmp_path: Path, database: Database
) -> None:
    store = await ResponseStore.open(Settings(data_dir=tmp_path, response_store_mb=1), database)
    clock = Clock()
    store.clock = clock
    try:
        for n in range(5):
            clock.now += 1
            store.hold(response(f"r{n}", None, "t", size=300_000))
            await store.flush(f"r{n}")
        kept = [n for n in range(5) if await store.get(f"r{n}") is not None]
        assert kept == [2, 3, 4]
    finally:
        await store.aclose()


async def test_an_output_item_is_found_by_id_while_held_and_once_written(
    store: ResponseStore,
) -> None:
    item = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
    stored = response("r1", None, "a")
    store.hold(StoredResponse(*[getattr(stored, f) for f in ("id", "parent", "body",
               "input_items", "turns", "system")], items=(item,)))  # fmt: skip
    assert await store.item("msg_1") == item
    await store.flush("r1")
    assert await store.item("msg_1") == item
    assert await store.delete("r1")
    assert await store.item("msg_1") is None
