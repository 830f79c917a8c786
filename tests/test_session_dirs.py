"""Per-session agent working directories, and the session store telling who ended."""

from __future__ import annotations

from clawrap.agent._workdir import SessionDirs
from clawrap.core._request import TextPart, Turn
from clawrap.sessions._store import SessionStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def turn(role: str, text: str) -> Turn:
    return Turn(role, (TextPart(text),))  # type: ignore[arg-type]


async def store_with(ids: list[str], clock: FakeClock) -> SessionStore:
    store = await SessionStore.open(":memory:", ttl=60, clock=clock)
    for session_id in ids:
        resolution = await store.resolve(session_id, [turn("user", f"hi {session_id}")])
        await store.commit(
            resolution, turn("assistant", "hello"), model="sonnet", usage=None, system=None
        )
    return store


def test_a_session_gets_one_private_directory_that_later_requests_reuse() -> None:
    dirs = SessionDirs()
    first = dirs.acquire("s")
    dirs.release("s")
    second = dirs.acquire("s")
    dirs.release("s")
    assert first.path == second.path
    assert first.path.stat().st_mode & 0o777 == 0o700
    assert not first.temporary  # the end of a run leaves it in place
    dirs.close()
    assert not first.path.exists()


def test_forgetting_a_session_removes_its_directory_and_only_that() -> None:
    dirs = SessionDirs()
    gone, kept = dirs.acquire("a").path, dirs.acquire("b").path
    dirs.release("a")
    dirs.release("b")
    dirs.forget(["a", "never-seen"])
    assert not gone.exists()
    assert kept.is_dir()
    assert dirs.path("a") is None
    dirs.close()


def test_a_directory_in_use_is_removed_when_its_run_ends() -> None:
    dirs = SessionDirs()
    path = dirs.acquire("s").path
    dirs.forget(["s"])
    assert path.is_dir()
    dirs.release("s")
    assert not path.exists()


def test_a_directory_removed_from_outside_is_made_again() -> None:
    dirs = SessionDirs()
    path = dirs.acquire("s").path
    dirs.release("s")
    path.rmdir()
    again = dirs.acquire("s").path
    assert again.is_dir()
    dirs.release("s")
    dirs.close()


async def test_the_store_names_the_sessions_a_delete_removes() -> None:
    store = await store_with(["a", "b"], FakeClock())
    heard: list[list[str]] = []
    store.on_removed(heard.append)
    assert await store.delete("a") == 1
    assert await store.delete("a") == 0
    assert heard == [["a"]]
    await store.aclose()


async def test_the_store_names_the_sessions_that_expire() -> None:
    clock = FakeClock()
    store = await store_with(["a", "b"], clock)
    heard: list[list[str]] = []
    store.on_removed(heard.append)
    clock.now += 61
    assert await store.expire() == 2
    assert [sorted(ids) for ids in heard] == [["a", "b"]]
    await store.aclose()


async def test_a_failing_listener_does_not_fail_the_delete() -> None:
    store = await store_with(["a"], FakeClock())

    def broken(ids: list[str]) -> None:
        raise RuntimeError("listener bug")

    store.on_removed(broken)
    assert await store.delete("a") == 1
    await store.aclose()
