"""Stripping a Markdown fence around a JSON answer, however the text is split."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clawrap.protocol._json_fences import JsonFenceStripper


def strip(parts: Iterable[str]) -> str:
    stripper = JsonFenceStripper()
    return "".join(stripper.feed(p) for p in parts) + stripper.close()


def pieces(text: str, cuts: Iterable[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


FIXTURES = [
    ('```json\n{"a": 1}\n```', '{"a": 1}'),
    ('```\n{"a": 1}\n```\n', '{"a": 1}'),
    ("  \n```JSON  \r\n[1, 2]\r\n```  \n", "[1, 2]"),
    ('```json\n{"code": "```"}\n```', '{"code": "```"}'),
    ('```json\n{"a": "``"}', '{"a": "``"}'),
    ('```json\n{"a": 1}', '{"a": 1}'),
    ('{"a": 1}', '{"a": 1}'),
    ('  {"a": 1}\n', '  {"a": 1}\n'),
    ('{"a": "```"}\n```', '{"a": "```"}\n```'),
    ("Sure! ```json\n{}\n```", "Sure! ```json\n{}\n```"),
    ('```python\nprint("x")\n```', 'print("x")'),
    ("```json", ""),
    ("", ""),
    ("``", "``"),
    ('```json\n{"a": 1}\n``` trailing', '{"a": 1}\n``` trailing'),
]


@pytest.mark.parametrize(("text", "expected"), FIXTURES)
def test_fences_are_stripped_the_same_at_every_pair_of_split_points(
    text: str, expected: str
) -> None:
    assert strip([text]) == expected
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            assert strip(pieces(text, [i, j])) == expected


def test_text_without_a_fence_passes_at_once() -> None:
    stripper = JsonFenceStripper()
    assert stripper.feed('{"a"') == '{"a"'
    assert stripper.feed("```") == "```"


def test_only_a_possible_closing_fence_is_held_back() -> None:
    stripper = JsonFenceStripper()
    assert stripper.feed("```json\n") == ""
    assert stripper.feed('{"a": 1}\n`') == '{"a": 1}'
    assert stripper.feed("``") == ""
    assert stripper.close() == ""


def test_backticks_that_do_not_end_the_answer_are_released() -> None:
    stripper = JsonFenceStripper()
    stripper.feed("```json\n[")
    assert stripper.feed("``") == ""
    assert stripper.feed("x]") == "``x]"


JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='a`\n {}"', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
OPENINGS = st.sampled_from(["```json\n", "```\n", "\n```json\n", "  ```JSON\r\n", "``` json \n"])
CLOSINGS = st.sampled_from(["\n```", "\n```\n", "```", "  \n```  ", "", "\n"])


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, OPENINGS, CLOSINGS, st.booleans(), st.lists(st.integers(0), max_size=6))
def test_any_fenced_json_comes_out_as_the_json_however_split(
    value: Any, opening: str, closing: str, indent: bool, cuts: list[int]
) -> None:
    body = json.dumps(value, indent=2 if indent else None)
    got = strip(pieces(opening + body + closing, cuts))
    # whitespace with no closing fence after it is the answer's own, and is kept
    assert got == (body if "`" in closing else body + closing)
    assert json.loads(got) == value


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.sampled_from(["", " ", "\n"]), st.lists(st.integers(0), max_size=6))
def test_any_unfenced_json_passes_unchanged_however_split(
    value: Any, padding: str, cuts: list[int]
) -> None:
    text = padding + json.dumps(value) + padding
    assert strip(pieces(text, cuts)) == text
