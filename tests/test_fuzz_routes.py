"""Fuzzing every JSON route with hypothesis: whatever the body, no 5xx and no internal text.

The app with the real dialects and a scripted backend; bodies are arbitrary JSON,
valid requests with fields replaced by arbitrary values, and raw bytes. A bounded
number of cases per route, so it runs with the rest of the suite.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from asgi_fakes import AsgiCall, body_messages, http_scope
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted_backend import ScriptedBackend

from clawrap.core._config import Settings
from clawrap.core._events import Finished, TextDelta, Usage
from clawrap.http._app import create_app

ROUTES = ["/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens"]
CASES = 150
# What a response must never show: the server's inner workings.
INTERNAL = ("Traceback", 'File "', ".py", "Error(", "clawrap/", "site-packages", "0x7f")

VALID: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "model": "sonnet",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
        "stream": False,
        "max_tokens": 10,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "response_format": {"type": "json_object"},
    },
    "/v1/messages": {
        "model": "sonnet",
        "max_tokens": 10,
        "system": "s",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    },
}
VALID["/v1/messages/count_tokens"] = {
    k: v for k, v in VALID["/v1/messages"].items() if k != "max_tokens"
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "\x00", "\ud800", "user", "system", "text", "#", "sonnet", "-1"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode()


@st.composite
def mutated(draw: st.DrawFn, route: str) -> bytes:
    body = json.loads(json.dumps(VALID[route]))
    for _ in range(draw(st.integers(1, 3))):
        target = body
        path = draw(st.sampled_from(_paths(body)))
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = draw(values)
    return _dumps(body)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, inner in items:
        found.append((*prefix, key))
        found.extend(_paths(inner, (*prefix, key)))
    return found


def bodies(route: str) -> st.SearchStrategy[bytes]:
    return mutated(route) | values.map(_dumps) | st.binary(max_size=64)


async def _post(route: str, body: bytes) -> tuple[int, bytes]:
    backend = ScriptedBackend([TextDelta('{"a": 1}'), Usage(3, 1), Finished("end_turn")])
    app = create_app(Settings(), backend)
    asgi = AsgiCall(body_messages(body))
    headers = {"content-length": str(len(body))}
    with trio.fail_after(10):
        await app(http_scope("POST", route, headers), asgi.receive, asgi.send)
    assert asgi.response is not None and asgi.response.complete
    return asgi.response.status, asgi.response.body


@pytest.mark.parametrize("route", ROUTES)
def test_no_body_makes_a_json_route_fail_inside_or_show_internals(route: str) -> None:
    @settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies(route))
    def check(body: bytes) -> None:
        status, answer = trio.run(_post, route, body)
        assert status < 500, answer
        text = answer.decode("utf-8", "replace")
        assert not any(marker in text for marker in INTERNAL), text

    check()
