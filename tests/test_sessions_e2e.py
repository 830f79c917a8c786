"""Sessions end to end: HTTP -> clawrap -> SDK -> CLI -> scripted model, and back to SQLite.

What the model sees of a session (its earlier turns, once each, in order), across a server
restart, with whole-history resends and with an edited earlier message (a branch), plus the
session routes with and without an API key. Every server is shut down and proven to leave no
CLI process behind.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from e2e import (
    CLIENT_TIMEOUT,
    SDK_READER_LEFT_OPEN,
    TEST_LIMIT,
    Clawrap,
    Upstream,
    in_thread,
    serving_claude,
    start_upstream,
    wait_until,
)

from clawrap.core._config import Settings
from clawrap.scripted._model import RecordedRequest

pytestmark = [pytest.mark.e2e, SDK_READER_LEFT_OPEN]

Messages = list[dict[str, Any]]


def scripted(question: str, answer: str) -> str:
    """User text the scripted model answers with exactly ``answer``."""
    return f"{question} [[mock:{json.dumps({'text': answer})}]]"


def post_chat(
    url: str, messages: Messages, *, session: str | None = None, **fields: Any
) -> httpx.Response:
    headers = {"x-session-id": session} if session is not None else {}
    body = {"model": "sonnet", "messages": messages, **fields}
    return httpx.post(
        url + "/v1/chat/completions", json=body, headers=headers, timeout=CLIENT_TIMEOUT
    )


async def chat(server: Clawrap, messages: Messages, **kwargs: Any) -> httpx.Response:
    response = await in_thread(lambda: post_chat(server.url, messages, **kwargs))
    assert response.status_code == 200, response.text
    return response


def answer(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


def completions(server: Clawrap) -> list[RecordedRequest]:
    return [r for r in server.model.requests if r.body.get("stream")]


def upstream_turns(recorded: RecordedRequest) -> list[tuple[str, list[str]]]:
    """(role, text of each text block) of the user and assistant messages upstream; the
    CLI's own system entries and reminders left out."""
    out = []
    for message in recorded.body["messages"]:
        if message["role"] not in ("user", "assistant"):
            continue
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        texts = [
            b["text"]
            for b in blocks
            if b.get("type") == "text" and not b["text"].lstrip().startswith("<system-reminder>")
        ]
        out.append((message["role"], texts))
    return out


async def get(server: Clawrap, path: str, **kwargs: Any) -> httpx.Response:
    return await in_thread(lambda: httpx.get(server.url + path, timeout=CLIENT_TIMEOUT, **kwargs))


@asynccontextmanager
async def running(
    nursery: trio.Nursery, tmp_path: Path, upstream: Upstream, **overrides: Any
) -> AsyncIterator[Clawrap]:
    """clawrap on the given scripted model, its data (sessions) in ``tmp_path/data``."""
    settings = Settings(
        port=0, pool_size=1, upstream_retries=0, data_dir=tmp_path / "data", **overrides
    )
    async with serving_claude(nursery, tmp_path, upstream, settings) as server:
        yield server


# ---------------------------------------------------------------- what the model sees


async def test_a_four_turn_history_reaches_the_model_as_its_messages_and_blocks(
    clawrap_server: Clawrap,
) -> None:
    messages: Messages = [
        {"role": "system", "content": "Be exact."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
        },
        {"role": "assistant", "content": "Three."},
        {"role": "user", "content": "Four."},
        {"role": "assistant", "content": "Five."},
        {"role": "user", "content": "Six?"},
    ]
    with trio.fail_after(TEST_LIMIT):
        await chat(clawrap_server, messages)
    [recorded] = completions(clawrap_server)
    assert upstream_turns(recorded) == [
        ("user", ["One.", "Two."]),
        ("assistant", ["Three."]),
        ("user", ["Four."]),
        ("assistant", ["Five."]),
        ("user", ["Six?"]),
    ]
    assert "Be exact." in recorded.system_text


async def test_a_session_continues_across_a_server_restart(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(TEST_LIMIT * 2):
        upstream = await start_upstream(nursery)
        first = scripted("My name is Ada.", "Hello Ada.")
        async with running(nursery, tmp_path, upstream) as server:
            reply = await chat(server, [{"role": "user", "content": first}], session="restart")
            assert answer(reply) == "Hello Ada."
            assert reply.headers["x-session-id"] == "restart"
        async with running(nursery, tmp_path, upstream) as server:
            reply = await chat(
                server, [{"role": "user", "content": "What is my name?"}], session="restart"
            )
            assert reply.headers["x-session-id"] == "restart"
            stored = (await get(server, "/v1/sessions/restart")).json()
    assert upstream_turns(completions(server)[-1]) == [
        ("user", [first]),
        ("assistant", ["Hello Ada."]),
        ("user", ["What is my name?"]),
    ]
    assert stored["turns"] == 4 and stored["requests"] == 2


async def test_resending_the_whole_history_three_times_duplicates_no_turn(
    clawrap_server: Clawrap,
) -> None:
    history: Messages = [{"role": "system", "content": "Be brief."}]
    with trio.fail_after(TEST_LIMIT):
        for n in range(3):
            history.append({"role": "user", "content": scripted(f"Q{n}.", f"A{n}.")})
            reply = await chat(clawrap_server, history, session="resend")
            history.append({"role": "assistant", "content": answer(reply)})
        stored = (await get(clawrap_server, "/v1/sessions/resend")).json()
    sent = [(m["role"], m["content"]) for m in history[1:]]
    upstream = completions(clawrap_server)
    assert [len(upstream_turns(r)) for r in upstream] == [1, 3, 5]
    assert [(role, texts) for role, texts in upstream_turns(upstream[-1])] == [
        (role, [text]) for role, text in sent[:-1]
    ]
    assert [(m["role"], m["content"][0]["text"]) for m in stored["messages"]] == sent
    assert stored["system"] == "Be brief."
    # Turns 2 and 3 went on on the process that held the conversation.
    assert clawrap_server.pool_status()["continued"] == 2


async def test_a_session_sent_only_new_messages_goes_on_on_the_live_process(
    clawrap_server: Clawrap,
) -> None:
    with trio.fail_after(TEST_LIMIT):
        for n in range(3):
            message = {"role": "user", "content": scripted(f"Next {n}.", f"Said {n}.")}
            await chat(clawrap_server, [message], session="only-new")
    last = upstream_turns(completions(clawrap_server)[-1])
    assert [role for role, _ in last] == ["user", "assistant"] * 2 + ["user"]
    assert clawrap_server.pool_status()["continued"] == 2


async def test_an_edited_earlier_message_branches_instead_of_rewriting_the_session(
    clawrap_server: Clawrap,
) -> None:
    first: Messages = [
        {"role": "user", "content": scripted("Call me Ada.", "Hello Ada.")},
        {"role": "assistant", "content": "Hello Ada."},
    ]
    tea = scripted("I like tea.", "Tea it is.")
    coffee = scripted("I like coffee.", "Coffee it is.")
    with trio.fail_after(TEST_LIMIT):
        await chat(clawrap_server, first[:1], session="edit")
        await chat(clawrap_server, [*first, {"role": "user", "content": tea}], session="edit")
        reply = await chat(
            clawrap_server, [*first, {"role": "user", "content": coffee}], session="edit"
        )
        original = (await get(clawrap_server, "/v1/sessions/edit")).json()
        branch = (await get(clawrap_server, "/v1/sessions/edit.1")).json()
    assert reply.headers["x-session-id"] == "edit.1"
    assert answer(reply) == "Coffee it is."
    assert upstream_turns(completions(clawrap_server)[-1]) == [
        ("user", [first[0]["content"]]),
        ("assistant", ["Hello Ada."]),
        ("user", [coffee]),
    ]
    texts = [m["content"][0]["text"] for m in original["messages"]]
    assert texts == [first[0]["content"], "Hello Ada.", tea, "Tea it is."]
    assert (branch["parent"], branch["fork_turn"], branch["turns"]) == ("edit", 2, 4)


async def test_an_edited_first_message_resent_with_its_history_branches_at_the_start(
    clawrap_server: Clawrap,
) -> None:
    ada = scripted("Call me Ada.", "Hello Ada.")
    grace = scripted("Call me Grace.", "Hello Grace.")
    tea = scripted("I like tea.", "Tea it is.")
    # The client's copy of the answer is not the stored one either (it reformatted it).
    history: Messages = [
        {"role": "user", "content": grace},
        {"role": "assistant", "content": "**Hello Ada!**"},
        {"role": "user", "content": tea},
    ]
    with trio.fail_after(TEST_LIMIT):
        await chat(clawrap_server, [{"role": "user", "content": ada}], session="first-edit")
        reply = await chat(clawrap_server, history, session="first-edit")
        original = (await get(clawrap_server, "/v1/sessions/first-edit")).json()
    assert reply.headers["x-session-id"] == "first-edit.1"
    assert upstream_turns(completions(clawrap_server)[-1]) == [
        ("user", [grace]),
        ("assistant", ["**Hello Ada!**"]),
        ("user", [tea]),
    ]
    assert [m["content"][0]["text"] for m in original["messages"]] == [ada, "Hello Ada."]


async def test_two_requests_on_one_session_are_served_one_after_the_other(
    clawrap_server: Clawrap,
) -> None:
    slow = f"Slow. [[mock:{json.dumps({'tokens': 10, 'delay': 0.05})}]]"
    replies: list[httpx.Response] = []

    async def send(text: str) -> None:
        replies.append(await chat(clawrap_server, [{"role": "user", "content": text}], session="q"))

    with trio.fail_after(TEST_LIMIT):
        async with trio.open_nursery() as both:
            both.start_soon(send, slow)
            # The slow reply is streaming: the first request holds the session.
            await wait_until(lambda: clawrap_server.upstream.open_responses > 0)
            both.start_soon(send, "Then this.")
        stored = (await get(clawrap_server, "/v1/sessions/q")).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"] * 2
    assert stored["messages"][2]["content"][0]["text"] == "Then this."


@pytest.mark.clawrap(queue_timeout=0.3)
async def test_a_request_waiting_too_long_for_its_session_gets_a_409(
    clawrap_server: Clawrap,
) -> None:
    slow = f"Slow. [[mock:{json.dumps({'tokens': 40, 'delay': 0.05})}]]"
    statuses: list[int] = []

    async def send(text: str) -> None:
        response = await in_thread(
            lambda: post_chat(clawrap_server.url, [{"role": "user", "content": text}], session="b")
        )
        statuses.append(response.status_code)

    with trio.fail_after(TEST_LIMIT):
        async with trio.open_nursery() as both:
            both.start_soon(send, slow)
            await wait_until(lambda: clawrap_server.upstream.open_responses > 0)
            both.start_soon(send, "Too soon.")
    assert statuses == [409, 200]


# ---------------------------------------------------------------- the routes


async def test_the_session_routes_list_get_count_and_delete(clawrap_server: Clawrap) -> None:
    with trio.fail_after(TEST_LIMIT):
        await chat(clawrap_server, [{"role": "user", "content": "Hello."}], session="routes")
        listing = (await get(clawrap_server, "/v1/sessions")).json()
        stats = (await get(clawrap_server, "/v1/sessions/stats")).json()
        detail = (await get(clawrap_server, "/v1/sessions/routes")).json()
        deleted = await in_thread(
            lambda: httpx.delete(clawrap_server.url + "/v1/sessions/routes", timeout=30)
        )
        gone = await get(clawrap_server, "/v1/sessions/routes")
    assert [s["id"] for s in listing["data"]] == ["routes"] and listing["total"] == 1
    assert stats["sessions"] == 1 and stats["turns"] == 2
    assert detail["turns"] == 2 and detail["model"] and detail["usage"]["output_tokens"] > 0
    assert detail["created"] <= detail["last_used"]
    assert deleted.json()["deleted"] is True
    assert gone.status_code == 404


@pytest.mark.clawrap(api_key="sekrit")
async def test_the_session_routes_need_the_api_key_when_one_is_set(
    clawrap_server: Clawrap,
) -> None:
    key = {"authorization": "Bearer sekrit"}
    with trio.fail_after(TEST_LIMIT):
        for path in ("/v1/sessions", "/v1/sessions/stats", "/v1/sessions/x"):
            assert (await get(clawrap_server, path)).status_code == 401
        assert (await get(clawrap_server, "/v1/sessions", headers=key)).status_code == 200
        assert (await get(clawrap_server, "/v1/sessions/stats", headers=key)).status_code == 200
        assert (await get(clawrap_server, "/v1/sessions/x", headers=key)).status_code == 404


async def test_a_malformed_session_id_is_a_400_naming_it(clawrap_server: Clawrap) -> None:
    with trio.fail_after(TEST_LIMIT):
        response = await in_thread(
            lambda: post_chat(clawrap_server.url, [{"role": "user", "content": "x"}], session="a b")
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "X-Session-Id"


async def test_an_anthropic_client_continues_a_session_by_header(clawrap_server: Clawrap) -> None:
    def post(text: str) -> httpx.Response:
        body = {
            "model": "sonnet",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": text}],
        }
        headers = {"x-session-id": "anth", "anthropic-version": "2023-06-01"}
        return httpx.post(
            clawrap_server.url + "/v1/messages", json=body, headers=headers, timeout=CLIENT_TIMEOUT
        )

    with trio.fail_after(TEST_LIMIT):
        first = await in_thread(lambda: post(scripted("I am Ada.", "Hi Ada.")))
        second = await in_thread(lambda: post("Who am I?"))
    assert first.status_code == second.status_code == 200
    assert second.headers["x-session-id"] == "anth"
    roles = [role for role, _ in upstream_turns(completions(clawrap_server)[-1])]
    assert roles == ["user", "assistant", "user"]
