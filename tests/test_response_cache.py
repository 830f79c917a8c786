"""The opt-in response cache: a hit is the same body with no upstream call; bounds and routes.

Units of the key (normalization, what is never cached) and the store (TTL on trio's
clock, size bound), then end to end with the openai package against the real CLI:
the scripted model's record shows the second request never reached it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap, in_thread

from clawrap.core._config import Settings
from clawrap.http._response_cache import ResponseCache, cache_key, wants_cache
from clawrap.protocol.openai._dialect import decode_chat_request


def decoded(body: dict[str, Any]) -> tuple[Any, Any]:
    return decode_chat_request(body, {}, Settings())


BODY = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}


def test_the_key_is_the_normalized_request() -> None:
    request, options = decoded(BODY)
    again, options_again = decoded({"messages": BODY["messages"], "model": "sonnet", "user": "x"})
    # New ids and timestamps per response, ignored fields: the same key.
    assert cache_key("openai", request, options) == cache_key("openai", again, options_again)
    other, other_options = decoded({**BODY, "max_tokens": 5})
    assert cache_key("openai", other, other_options) != cache_key("openai", request, options)
    assert cache_key("anthropic", request, options) != cache_key("openai", request, options)


def test_streams_sessions_and_several_choices_are_never_cached() -> None:
    request, options = decoded(BODY)
    assert cache_key("openai", replace(request, stream=True), options) is None
    assert cache_key("openai", replace(request, session_id="s"), options) is None
    assert cache_key("openai", request, replace(options, n=2)) is None


def test_opt_in_by_header_or_setting() -> None:
    assert not wants_cache(Settings(), {})
    assert wants_cache(Settings(), {"x-enable-cache": "true"})
    assert wants_cache(Settings(response_cache=True), {})
    assert not wants_cache(Settings(response_cache=True), {"x-enable-cache": "false"})


async def test_entries_expire_and_the_oldest_go_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cache = ResponseCache(Settings(cache_ttl=10.0, cache_max_entries=2))
    cache.put("a", b"A")
    cache.put("b", b"B")
    assert cache.get("a") == b"A"
    cache.put("c", b"C")  # "b" is the least recently used
    assert cache.get("b") is None and cache.get("c") == b"C"
    await trio.sleep(10.0)
    assert cache.get("a") is None
    assert cache.stats()["entries"] == 0


# -- end to end


def ask(server: Clawrap, text: str, cache: bool) -> Any:
    headers = {"X-Enable-Cache": "true"} if cache else {}
    with server.openai() as client:
        return client.chat.completions.with_raw_response.create(
            model="sonnet",
            messages=[{"role": "user", "content": text}],
            extra_headers=headers,
        )


@pytest.mark.e2e
@SDK_READER_LEFT_OPEN
async def test_a_cache_hit_is_the_same_body_without_an_upstream_call(
    clawrap_server: Clawrap,
) -> None:
    text = 'CACHED [[mock:{"tokens": 4}]]'
    with trio.fail_after(TEST_LIMIT):
        first = await in_thread(lambda: ask(clawrap_server, text, True))
        second = await in_thread(lambda: ask(clawrap_server, text, True))
        uncached = await in_thread(lambda: ask(clawrap_server, text, False))
        stats = await in_thread(
            lambda: httpx.get(clawrap_server.url + "/v1/cache/stats", timeout=30).json()
        )
        cleared = await in_thread(
            lambda: httpx.post(clawrap_server.url + "/v1/cache/clear", timeout=30).json()
        )
    assert second.content == first.content
    assert second.headers["x-clawrap-cache"] == "hit"
    assert "x-clawrap-cache" not in first.headers
    assert second.parse().choices[0].message.content == "tok1 tok2 tok3 tok4"
    assert uncached.parse().id != first.parse().id
    # Two upstream calls: the first request and the one that did not opt in.
    assert len(clawrap_server.requests("CACHED")) == 2
    assert stats["hits"] == 1 and stats["entries"] == 1
    assert cleared["cleared"] == 1
