"""The session store: persistence, history matching, branches, expiry, locks, routes."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from storage_fixtures import open_engine

from clawrap.claude._transcript import split_history
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Usage
from clawrap.core._request import (
    CompletionRequest,
    ImagePart,
    TextPart,
    ToolResultPart,
    ToolSpec,
    ToolUsePart,
    Turn,
)
from clawrap.http._session_routes import session_route
from clawrap.sessions._store import (
    SessionLocks,
    SessionStore,
    SessionStoreError,
    open_session_store,
    run_expiry,
    session_db_path,
)


class FakeClock:
    """Unix time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def user(text: str) -> Turn:
    return Turn("user", (TextPart(text),))


def assistant(text: str) -> Turn:
    return Turn("assistant", (TextPart(text),))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "sessions.sqlite3"


@pytest.fixture
async def file_store(db_path: Path, clock: FakeClock) -> AsyncIterator[SessionStore]:
    """A store in a SQLite file (for what only a file has)."""
    opened = await SessionStore.open(db_path, ttl=3600, clock=clock)
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
async def store(
    engine: str, db_path: Path, clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[SessionStore]:
    """A store on each engine in turn: a SQLite file, then a PostgreSQL database."""
    if engine == "sqlite":
        opened = await SessionStore.open(db_path, ttl=3600, clock=clock)
    else:
        database = await open_engine(engine, request, db_path.parent)
        opened = await SessionStore.open_on(database, ttl=3600, clock=clock, owned=True)
    try:
        yield opened
    finally:
        await opened.aclose()


async def exchange(
    store: SessionStore,
    session_id: str,
    incoming: list[Turn],
    answer: str,
    usage: Usage | None = None,
) -> str:
    """One request: resolve, 'run' (the answer is given), commit. Returns the stored id."""
    resolution = await store.resolve(session_id, incoming)
    return await store.commit(
        resolution, assistant(answer), model="sonnet", usage=usage, system="be brief"
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def texts(store: SessionStore, session_id: str) -> list[str]:
    session = await store.get(session_id)
    assert session is not None
    return [t.text for t in session.turns]


# ---------------------------------------------------------------- persistence


async def test_a_session_survives_a_restart_and_the_model_sees_its_turns(
    db_path: Path, clock: FakeClock
) -> None:
    first = await SessionStore.open(db_path, clock=clock)
    await exchange(first, "chat", [user("My name is Ada.")], "Hello Ada.")
    await first.aclose()

    second = await SessionStore.open(db_path, clock=clock)
    try:
        resolution = await second.resolve("chat", [user("What is my name?")])
        request = resolution.request(
            CompletionRequest(model="sonnet", requested_model="sonnet", turns=(user("x"),))
        )
    finally:
        await second.aclose()
    assert [t.text for t in request.turns] == ["My name is Ada.", "Hello Ada.", "What is my name?"]
    assert request.system == "be brief"
    assert request.session_id == "chat"


async def test_every_kind_of_part_is_stored_and_read_back_unchanged(store: SessionStore) -> None:
    turn = Turn("user", (TextPart("see"), ImagePart("image/png", "iVBORw0KGgo=")))
    reply = Turn("assistant", (ToolUsePart("call_1", "look", {"at": [1, 2]}),))
    resolution = await store.resolve("s", [turn])
    await store.commit(resolution, reply, model="m", usage=None, system=None)
    session = await store.get("s")
    assert session is not None
    assert session.turns == (turn, reply)


async def test_the_database_directory_and_file_are_private(
    db_path: Path, file_store: SessionStore
) -> None:
    await exchange(file_store, "s", [user("secret")], "ok")
    assert mode(db_path.parent) == 0o700
    assert mode(db_path) == 0o600


async def test_an_in_memory_store_works_without_a_file(clock: FakeClock) -> None:
    memory = await SessionStore.open(":memory:", clock=clock)
    try:
        await exchange(memory, "s", [user("hi")], "hello")
        assert await texts(memory, "s") == ["hi", "hello"]
        assert (await memory.stats()).db_bytes == 0
    finally:
        await memory.aclose()


def test_the_default_database_lives_in_the_data_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert session_db_path(settings) == str(tmp_path / "sessions.sqlite3")
    assert session_db_path(Settings(session_db="/x/y.db")) == "/x/y.db"


async def test_open_session_store_uses_the_settings_path_and_ttl(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", session_ttl=10.0)
    async with open_session_store(settings) as opened:
        assert opened.ttl == 10.0
    assert (tmp_path / "d" / "sessions.sqlite3").exists()


# ---------------------------------------------------------------- matching the history


async def test_sending_only_the_new_message_continues_the_session(store: SessionStore) -> None:
    await exchange(store, "s", [user("one")], "1")
    await exchange(store, "s", [user("two")], "2")
    assert await texts(store, "s") == ["one", "1", "two", "2"]


async def test_resending_the_whole_history_three_times_stores_each_turn_once(
    store: SessionStore,
) -> None:
    history: list[Turn] = []
    for question in ("one", "two", "three"):
        history.append(user(question))
        await exchange(store, "s", list(history), question.upper())
        history.append(assistant(question.upper()))
    assert await texts(store, "s") == ["one", "ONE", "two", "TWO", "three", "THREE"]


async def test_an_edited_earlier_message_forks_and_leaves_the_session_intact(
    store: SessionStore,
) -> None:
    await exchange(store, "s", [user("one")], "1")
    await exchange(store, "s", [user("two")], "2")
    resolution = await store.resolve("s", [user("one"), assistant("1"), user("TWO")])
    assert resolution.session_id == "s.1"
    assert resolution.branched
    stored = await store.commit(resolution, assistant("II"), model="m", usage=None, system=None)
    assert stored == "s.1"
    assert await texts(store, "s") == ["one", "1", "two", "2"]
    assert await texts(store, "s.1") == ["one", "1", "TWO", "II"]
    fork = await store.get("s.1")
    assert fork is not None
    assert (fork.info.parent, fork.info.fork_turn, fork.info.root) == ("s", 2, "s")


async def test_resending_a_forked_history_under_the_old_id_continues_the_fork(
    store: SessionStore,
) -> None:
    await exchange(store, "s", [user("one")], "1")
    await exchange(store, "s", [user("two")], "2")
    edited = [user("one"), assistant("1"), user("TWO")]
    assert await exchange(store, "s", edited, "II") == "s.1"
    resolution = await store.resolve("s", [*edited, assistant("II"), user("three")])
    assert resolution.session_id == "s.1"
    assert resolution.merge.new == (user("three"),)
    await store.commit(resolution, assistant("3"), model="m", usage=None, system=None)
    assert (await store.list())[1] == 2
    assert await texts(store, "s.1") == ["one", "1", "TWO", "II", "three", "3"]


async def test_an_edited_first_message_with_a_rewritten_answer_branches_and_the_branch_goes_on(
    store: SessionStore,
) -> None:
    await exchange(store, "s", [user("one")], "1")
    edited = [user("ONE"), assistant("1, reformatted"), user("two")]
    assert await exchange(store, "s", edited, "2") == "s.1"
    resolution = await store.resolve("s", [*edited, assistant("2"), user("three")])
    assert resolution.session_id == "s.1"
    assert resolution.merge.new == (user("three"),)
    assert await texts(store, "s") == ["one", "1"]


async def test_asking_again_for_an_answer_regenerates_it_on_a_branch(
    store: SessionStore,
) -> None:
    await exchange(store, "s", [user("one")], "1")
    await exchange(store, "s", [user("two")], "2")
    resolution = await store.resolve("s", [user("one"), assistant("1"), user("two")])
    assert resolution.merge.kind == "regenerate"
    stored = await store.commit(
        resolution, assistant("2 again"), model="m", usage=None, system=None
    )
    assert await texts(store, stored) == ["one", "1", "two", "2 again"]
    assert await texts(store, "s") == ["one", "1", "two", "2"]


async def test_a_resend_with_nothing_new_is_a_400(store: SessionStore) -> None:
    await exchange(store, "s", [user("one")], "1")
    with pytest.raises(ClawrapError) as caught:
        await store.resolve("s", [user("one"), assistant("1")])
    assert caught.value.status == 400


async def test_a_session_changed_since_it_was_read_gets_a_branch_not_a_mix(
    store: SessionStore,
) -> None:
    await exchange(store, "s", [user("one")], "1")
    first = await store.resolve("s", [user("a")])
    second = await store.resolve("s", [user("b")])
    await store.commit(first, assistant("A"), model="m", usage=None, system=None)
    stored = await store.commit(second, assistant("B"), model="m", usage=None, system=None)
    assert stored == "s.1"
    assert await texts(store, "s") == ["one", "1", "a", "A"]
    assert await texts(store, "s.1") == ["one", "1", "b", "B"]


async def test_a_branch_of_a_maximal_id_still_has_a_valid_id(store: SessionStore) -> None:
    long_id = "x" * 200
    await exchange(store, long_id, [user("one")], "1")
    await exchange(store, long_id, [user("two")], "2")
    resolution = await store.resolve(long_id, [user("one"), assistant("1"), user("2!")])
    assert len(resolution.session_id) == 200
    assert resolution.session_id.endswith(".1")


async def test_a_tool_result_sent_alone_completes_the_stored_call_for_the_cli(
    store: SessionStore,
) -> None:
    call = Turn("assistant", (ToolUsePart("call_1", "weather", {"city": "Oslo"}),))
    resolution = await store.resolve("s", [user("Weather in Oslo?")])
    await store.commit(resolution, call, model="m", usage=None, system=None)
    result = Turn("user", (ToolResultPart("call_1", (TextPart("-3 C"),)),))
    resolution = await store.resolve("s", [result])
    request = resolution.request(
        CompletionRequest(
            model="m",
            requested_model="m",
            turns=(result,),
            tools=(ToolSpec("weather", "", {"type": "object"}),),
        )
    )
    messages, prompt = split_history(request)
    assert prompt is None  # the CLI resumes the turn on the tool result by itself
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][0]["id"] == "call_1"


# ---------------------------------------------------------------- totals, listing, deleting


async def test_usage_and_cost_are_summed_over_requests(store: SessionStore) -> None:
    await exchange(store, "s", [user("one")], "1", Usage(10, 2, 100, 5, cost_usd=0.5))
    await exchange(store, "s", [user("two")], "2", Usage(20, 3, cost_usd=0.25))
    session = await store.get("s")
    assert session is not None
    info = session.info
    assert (info.input_tokens, info.output_tokens) == (30, 5)
    assert (info.cache_read_input_tokens, info.cache_creation_input_tokens) == (100, 5)
    assert info.cost_usd == pytest.approx(0.75)
    assert (info.requests, info.turns, info.model) == (2, 4, "sonnet")


async def test_sessions_are_listed_most_recent_first_in_pages(
    store: SessionStore, clock: FakeClock
) -> None:
    for name in ("a", "b", "c"):
        clock.now += 1
        await exchange(store, name, [user("hi")], "hello")
    page, total = await store.list(limit=2, offset=0)
    assert [i.id for i in page] == ["c", "b"]
    assert total == 3
    page, _ = await store.list(limit=2, offset=2)
    assert [i.id for i in page] == ["a"]


async def test_deleting_a_session_removes_its_branches_too(store: SessionStore) -> None:
    await exchange(store, "s", [user("one")], "1")
    await exchange(store, "s", [user("one!"), assistant("1"), user("two")], "2")
    await exchange(store, "other", [user("hi")], "hello")
    assert await store.delete("s") == 2
    assert await store.get("s") is None
    assert await store.get("s.1") is None
    assert await store.get("other") is not None


async def test_deleting_an_unknown_session_removes_nothing(store: SessionStore) -> None:
    assert await store.delete("nobody") == 0


async def test_stats_count_sessions_branches_turns_and_tokens(store: SessionStore) -> None:
    await exchange(store, "s", [user("one")], "1", Usage(10, 2, cost_usd=0.1))
    await exchange(store, "s", [user("one!"), assistant("1"), user("two")], "2", Usage(1, 1))
    stats = await store.stats()
    assert (stats.sessions, stats.branches, stats.turns, stats.requests) == (2, 1, 6, 2)
    assert (stats.input_tokens, stats.output_tokens) == (11, 3)
    assert stats.db_bytes > 0


# ---------------------------------------------------------------- expiry


async def test_an_idle_session_is_gone_once_its_ttl_passes(
    store: SessionStore, clock: FakeClock
) -> None:
    await exchange(store, "s", [user("one")], "1")
    clock.now += 3601
    assert await store.get("s") is None
    assert (await store.list())[1] == 0
    resolution = await store.resolve("s", [user("again")])
    assert resolution.merge.conversation == (user("again"),)


async def test_using_a_session_keeps_it_alive(store: SessionStore, clock: FakeClock) -> None:
    await exchange(store, "s", [user("one")], "1")
    clock.now += 3000
    await exchange(store, "s", [user("two")], "2")
    clock.now += 3000
    assert await store.expire() == 0
    assert await texts(store, "s") == ["one", "1", "two", "2"]


async def test_expiry_deletes_the_rows_and_their_text_from_the_file(
    db_path: Path, file_store: SessionStore, clock: FakeClock
) -> None:
    await exchange(file_store, "s", [user("the secret word is zanzibar")], "noted")
    clock.now += 3601
    assert await file_store.expire() == 1
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("SELECT count(*) FROM turns").fetchone() == (0,)
        assert raw.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
    for path in (db_path, Path(f"{db_path}-wal")):
        if path.exists():
            assert b"zanzibar" not in path.read_bytes()


async def test_an_expired_id_can_start_a_new_session_before_the_sweep(
    store: SessionStore, clock: FakeClock
) -> None:
    await exchange(store, "s", [user("old")], "1")
    clock.now += 3601
    assert await exchange(store, "s", [user("new")], "2") == "s"
    assert await texts(store, "s") == ["new", "2"]


class SweepWatchingStore(SessionStore):
    """A store that says when a sweep removed something."""

    swept: trio.Event

    async def expire(self, now: float | None = None) -> int:
        removed = await super().expire(now)
        if removed:
            self.swept.set()
        return removed


async def test_the_expiry_loop_sweeps_in_the_background(db_path: Path, clock: FakeClock) -> None:
    # Not the autojump clock: it jumps ahead while a worker thread runs the query.
    swept = await SweepWatchingStore.open(db_path, ttl=60, clock=clock)
    assert isinstance(swept, SweepWatchingStore)
    swept.swept = trio.Event()
    try:
        await exchange(swept, "s", [user("one")], "1")
        clock.now += 61
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(run_expiry, swept, interval=0.01))
            with trio.fail_after(10):
                await swept.swept.wait()
            nursery.cancel_scope.cancel()
        with sqlite3.connect(db_path) as raw:
            assert raw.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
    finally:
        await swept.aclose()


# ---------------------------------------------------------------- one request at a time


async def test_a_second_request_on_a_session_waits_for_the_first() -> None:
    locks = SessionLocks()
    order: list[str] = []
    first_holds = trio.Event()
    release_first = trio.Event()

    async def first() -> None:
        async with locks.hold("s", wait=10):
            first_holds.set()
            await release_first.wait()
            order.append("first done")

    async def second() -> None:
        await first_holds.wait()
        async with locks.hold("s", wait=10):
            order.append("second runs")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        nursery.start_soon(second)
        await first_holds.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert locks.busy("s")
        assert order == []
        release_first.set()
    assert order == ["first done", "second runs"]
    assert not locks.busy("s")


async def test_waiting_too_long_for_a_busy_session_is_a_409(
    autojump_clock: trio.testing.MockClock,
) -> None:
    locks = SessionLocks()
    release = trio.Event()

    async def hold_until_released(task_status: trio.TaskStatus[None]) -> None:
        async with locks.hold("s", wait=1):
            task_status.started()
            await release.wait()

    async with trio.open_nursery() as nursery:
        await nursery.start(hold_until_released)
        with pytest.raises(ClawrapError) as caught:
            async with locks.hold("s", wait=5):
                pass  # pragma: no cover
        release.set()
    assert caught.value.status == 409
    assert caught.value.code == "session_busy"
    assert caught.value.retry_after is not None
    assert not locks.busy("s")


async def test_other_sessions_do_not_wait() -> None:
    locks = SessionLocks()
    async with locks.hold("a", wait=0), locks.hold("b", wait=0):
        assert locks.busy("a") and locks.busy("b")


async def test_a_waiter_whose_client_left_leaves_no_lock_behind() -> None:
    locks = SessionLocks()
    release = trio.Event()

    async def hold_until_released(task_status: trio.TaskStatus[None]) -> None:
        async with locks.hold("s", wait=10):
            task_status.started()
            await release.wait()

    async with trio.open_nursery() as nursery:
        await nursery.start(hold_until_released)
        with trio.CancelScope() as gone:
            gone.cancel()
            async with locks.hold("s", wait=10):
                pass  # pragma: no cover
        release.set()
    assert not locks.busy("s")
    async with locks.hold("s", wait=0):
        assert locks.busy("s")


# ---------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "bad_id", ["", "x" * 201, "a b", "a/b", "../etc", "a\nb", "é", "a;DROP TABLE sessions", "%2F"]
)
async def test_a_hostile_session_id_is_a_400(store: SessionStore, bad_id: str) -> None:
    for call in (store.get(bad_id), store.delete(bad_id), store.resolve(bad_id, [user("x")])):
        with pytest.raises(ClawrapError) as caught:
            await call
        assert caught.value.status == 400
        assert caught.value.code == "invalid_session_id"


async def test_a_file_that_is_not_a_database_is_refused_with_its_path(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes " * 20)
    with pytest.raises(SessionStoreError) as caught:
        await SessionStore.open(path)
    assert str(path) in caught.value.message
    assert "not a database" in caught.value.message


async def test_a_path_that_cannot_be_created_is_refused_with_its_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SessionStoreError) as caught:
        await SessionStore.open(blocker / "sessions.sqlite3")
    assert str(blocker) in caught.value.message


async def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 99")
    with pytest.raises(SessionStoreError, match="newer"):
        await SessionStore.open(path)


async def test_some_other_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE notes (x)")
    with pytest.raises(SessionStoreError, match="not a clawrap session database"):
        await SessionStore.open(path)


async def test_a_corrupt_stored_turn_is_a_500_without_internal_text(
    db_path: Path, file_store: SessionStore
) -> None:
    await exchange(file_store, "s", [user("one")], "1")
    with sqlite3.connect(db_path) as raw:
        raw.execute("UPDATE turns SET body = '{\"role\": 5}'")
    with pytest.raises(ClawrapError) as caught:
        await file_store.get("s")
    assert caught.value.status == 500
    assert caught.value.code == "session_store_error"
    assert str(db_path) not in caught.value.message


async def test_a_closed_store_answers_with_an_error(store: SessionStore) -> None:
    await store.aclose()
    with pytest.raises(ClawrapError):
        await store.get("s")


# ---------------------------------------------------------------- routes


async def test_the_list_route_pages_sessions(store: SessionStore) -> None:
    await exchange(store, "s", [user("one")], "1", Usage(3, 4))
    body = await session_route(store, "GET", "", {"limit": "1"})
    assert body["object"] == "list"
    assert body["total"] == 1
    assert body["has_more"] is False
    summary = body["data"][0]
    assert summary["id"] == "s"
    assert summary["turns"] == 2
    assert summary["usage"]["total_tokens"] == 7
    assert summary["expires_at"] == summary["last_used"] + 3600


async def test_the_get_route_shows_turns_without_image_data(store: SessionStore) -> None:
    turn = Turn("user", (TextPart("look"), ImagePart("image/png", "QUJD")))
    resolution = await store.resolve("s", [turn])
    await store.commit(resolution, assistant("a cat"), model="m", usage=None, system="sys")
    body = await session_route(store, "GET", "/s", {})
    assert body["system"] == "sys"
    image = body["messages"][0]["content"][1]
    assert image["data"] is None
    assert image["data_chars"] == 4
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "a cat"}],
    }


async def test_the_delete_route_deletes_and_then_404s(store: SessionStore) -> None:
    await exchange(store, "s", [user("one")], "1")
    body = await session_route(store, "DELETE", "/s", {})
    assert body["deleted"] is True
    with pytest.raises(ClawrapError) as caught:
        await session_route(store, "GET", "/s", {})
    assert caught.value.status == 404


async def test_the_stats_route_reports_totals(store: SessionStore) -> None:
    await exchange(store, "s", [user("one")], "1", Usage(1, 2, cost_usd=0.01))
    body = await session_route(store, "GET", "/stats", {})
    assert body["sessions"] == 1
    assert body["usage"]["output_tokens"] == 2
    assert body["ttl_seconds"] == 3600


@pytest.mark.parametrize(
    ("method", "tail", "query", "status"),
    [
        ("POST", "", {}, 405),
        ("DELETE", "/stats", {}, 405),
        ("GET", "", {"limit": "0"}, 400),
        ("GET", "", {"limit": "abc"}, 400),
        ("GET", "", {"offset": "-1"}, 400),
        ("GET", "/a b", {}, 400),
        ("GET", "/missing", {}, 404),
    ],
)
async def test_the_session_routes_refuse_what_they_cannot_answer(
    store: SessionStore, method: str, tail: str, query: dict[str, str], status: int
) -> None:
    with pytest.raises(ClawrapError) as caught:
        await session_route(store, method, tail, query)
    assert caught.value.status == status
