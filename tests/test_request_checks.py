"""The 400s every decoded request is checked for before it queues, and the one table of
effort levels every surface takes its names from."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import trio
from asgi_fakes import AsgiCall, FakeDialect, call, simple_request
from scripted_backend import ScriptedBackend

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Finished, TextDelta, Usage
from clawrap.core._request import EFFORT_LEVELS, CompletionRequest, ResponseFormat, TextPart, Turn
from clawrap.http._app import create_app
from clawrap.http._exchange import run_exchange
from clawrap.http._exchange_sessions import Sessions
from clawrap.protocol._request_checks import check_request
from clawrap.sessions._store import SessionLocks
from tests.test_queue_deadline import Store

HELLO = [TextDelta("Hello"), Usage(3, 1), Finished("end_turn")]
CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "sonnet", "max_tokens": 64, "messages": CHAT["messages"]}
REMOTE_REF = {"type": "object", "properties": {"x": {"$ref": "http://127.0.0.1:9/x.json"}}}


def refused(**changes: Any) -> ClawrapError:
    with pytest.raises(ClawrapError) as caught:
        check_request(dataclasses.replace(simple_request(), **changes))
    assert caught.value.status == 400
    return caught.value


def test_a_request_that_can_run_passes_unchanged() -> None:
    request = dataclasses.replace(
        simple_request(), effort="xhigh", thinking_budget=2048, session_id="chat-1"
    )
    assert check_request(request) is request


def test_an_unknown_effort_names_every_level() -> None:
    error = refused(effort="extreme")
    assert error.param == "effort"
    assert all(f"'{level}'" in error.message for level in EFFORT_LEVELS)


@pytest.mark.parametrize("budget", [0, -5, True])
def test_a_thinking_budget_must_be_a_positive_number(budget: Any) -> None:
    assert "thinking budget" in refused(thinking_budget=budget).message


def test_an_unusable_schema_is_refused() -> None:
    error = refused(response_format=ResponseFormat("json_schema", schema=REMOTE_REF))
    assert error.code == "invalid_json_schema"


def test_a_bad_session_id_is_refused() -> None:
    assert refused(session_id="no spaces").code == "invalid_session_id"


# -- through the app, with the real dialects: refused before a run slot is taken


async def checked_at_decode(path: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    backend = ScriptedBackend(HELLO)
    app = create_app(Settings(), backend)
    with trio.fail_after(10):
        response = await call(app, "POST", path, json_body=body, headers=headers)
    assert response.status == 400
    assert backend.runs == 0
    error: dict[str, Any] = response.json()["error"]
    return error


async def test_an_openai_schema_the_answer_cannot_be_checked_against_is_a_400_at_decode() -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "X", "schema": REMOTE_REF}}
    error = await checked_at_decode("/v1/chat/completions", {**CHAT, "response_format": schema})
    assert error["code"] == "invalid_json_schema"


async def test_an_anthropic_schema_the_answer_cannot_be_checked_against_is_a_400_at_decode() -> (
    None
):
    config = {"format": {"type": "json_schema", "schema": REMOTE_REF}}
    error = await checked_at_decode("/v1/messages", {**MESSAGES, "output_config": config})
    assert "Invalid JSON schema" in error["message"]


async def test_an_anthropic_session_id_follows_the_one_rule() -> None:
    error = await checked_at_decode("/v1/messages", MESSAGES, **{"X-Session-Id": "a b"})
    assert "'X-Session-Id' must be 1 to 200 characters" in error["message"]


# -- one table of effort levels


async def run_with(path: str, body: dict[str, Any], **headers: str) -> CompletionRequest:
    backend = ScriptedBackend(HELLO)
    app = create_app(Settings(), backend)
    with trio.fail_after(10):
        response = await call(app, "POST", path, json_body=body, headers=headers)
    assert response.status == 200, response.text
    return backend.requests[0]


@pytest.mark.parametrize("level", EFFORT_LEVELS)
async def test_every_level_is_accepted_by_every_surface(level: str) -> None:
    anthropic = await run_with("/v1/messages", {**MESSAGES, "output_config": {"effort": level}})
    header = await run_with("/v1/chat/completions", CHAT, **{"X-Claude-Effort": level})
    openai = await run_with("/v1/chat/completions", {**CHAT, "reasoning_effort": level})
    assert (anthropic.effort, header.effort) == (level, level)
    # OpenAI's highest level, "xhigh", is Claude Code's highest.
    assert openai.effort == ("max" if level == "xhigh" else level)


async def test_the_openai_refusal_names_every_level_it_takes() -> None:
    body = {**CHAT, "reasoning_effort": "extreme"}
    error = await checked_at_decode("/v1/chat/completions", body)
    for level in ("none", "minimal", *EFFORT_LEVELS):
        assert f"'{level}'" in error["message"]


# -- the conversation's shape


async def test_a_prefill_is_a_400_at_decode() -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "{"}]
    error = await checked_at_decode("/v1/chat/completions", {**CHAT, "messages": messages})
    assert "prefill" in error["message"]


async def test_a_tool_call_without_its_result_is_a_400_at_decode() -> None:
    tool = {"name": "get", "description": "d", "input_schema": {"type": "object"}}
    call = {"type": "tool_use", "id": "toolu_9", "name": "get", "input": {}}
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": "and?"},
    ]
    body = {**MESSAGES, "tools": [tool], "messages": messages}
    error = await checked_at_decode("/v1/messages", body)
    assert "toolu_9" in error["message"]


async def test_a_sessions_merged_conversation_is_checked_before_a_run_slot() -> None:
    backend = ScriptedBackend(HELLO)
    limiter = trio.CapacityLimiter(1)
    asgi = AsgiCall([])
    prefill = (Turn("user", (TextPart("hi"),)), Turn("assistant", (TextPart("{"),)))
    request = dataclasses.replace(simple_request(), turns=prefill, session_id="s")
    with trio.fail_after(10):
        await run_exchange(
            asgi.receive,
            asgi.send,
            dialect=FakeDialect(),
            request=request,
            options=None,
            backend=backend,
            settings=Settings(),
            limiter=limiter,
            sessions=Sessions(Store(), SessionLocks()),  # type: ignore[arg-type]
        )
    assert asgi.response is not None and asgi.response.status == 400
    assert "prefill" in asgi.response.json()["error"]["message"]
    assert backend.runs == 0
