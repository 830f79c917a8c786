"""Stop sequences and max_tokens applied to the event stream, however the text is split."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clawrap.core._events import (
    AgentProgress,
    Event,
    Finished,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from clawrap.protocol._output_limits import OutputLimiter, count_tokens, word_cost

USAGE = Usage(input_tokens=3, output_tokens=4)


def run(
    events: Iterable[Event], stop: Sequence[str] = (), max_tokens: int | None = None
) -> list[Event]:
    limiter = OutputLimiter(stop, max_tokens)
    out: list[Event] = []
    for event in events:
        out.extend(limiter.feed(event))
    return out + limiter.close()


def pieces(text: str, cuts: Iterable[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def outcome(
    parts: Iterable[str], stop: Sequence[str] = (), max_tokens: int | None = None
) -> tuple[str, list[Event]]:
    """(all text passed on, every other event) for text deltas followed by end_turn."""
    events: list[Event] = [TextDelta(p) for p in parts]
    out = run([*events, Finished("end_turn")], stop, max_tokens)
    text = "".join(e.text for e in out if isinstance(e, TextDelta))
    assert all(e.text for e in out if isinstance(e, TextDelta)), "no empty deltas"
    return text, [e for e in out if not isinstance(e, TextDelta)]


# -- stop sequences ------------------------------------------------------------------------

STOP_FIXTURES = [
    ("Hello world. END and more", ["END"], "Hello world. "),
    ("no stop here at all", ["END"], "no stop here at all"),
    ("abcabcabd tail", ["abcabd"], "abc"),
    ("one\n\nUser: two", ["\n\nUser:", "###"], "one"),
    ("xyz", ["xyz", "y"], "x"),
    ("ab", ["abc"], "ab"),
    ("emoji 🎉🎉 stop 🎉!", ["🎉!"], "emoji 🎉🎉 stop "),
]


@pytest.mark.parametrize(("text", "stops", "expected"), STOP_FIXTURES)
def test_stop_sequences_cut_the_same_at_every_split_point(
    text: str, stops: list[str], expected: str
) -> None:
    whole = outcome([text], stops)
    assert whole[0] == expected
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            assert outcome(pieces(text, [i, j]), stops) == whole


def test_a_stop_sequence_ends_the_text_with_finished_stop_sequence() -> None:
    text, rest = outcome(["Hello END more"], ["END"])
    assert text == "Hello "
    assert rest == [Finished("stop_sequence", stop_sequence="END")]


def test_text_that_may_start_a_stop_sequence_is_held_back() -> None:
    limiter = OutputLimiter(["STOP"], None)
    assert limiter.feed(TextDelta("Hello ST")) == [TextDelta("Hello ")]
    assert limiter.feed(TextDelta("ART")) == [TextDelta("START")]


def test_a_stop_sequence_split_across_deltas_is_found() -> None:
    limiter = OutputLimiter(["STOP"], None)
    assert limiter.feed(TextDelta("go S")) == [TextDelta("go ")]
    assert limiter.feed(TextDelta("TO")) == []
    assert limiter.feed(TextDelta("P!")) == [Finished("stop_sequence", stop_sequence="STOP")]
    assert limiter.finished


def test_upstream_finished_flushes_held_back_text_first() -> None:
    limiter = OutputLimiter(["STOP"], None)
    limiter.feed(TextDelta("end ST"))
    assert limiter.feed(Finished("end_turn")) == [TextDelta("ST"), Finished("end_turn")]


def test_a_tool_call_flushes_held_back_text_first() -> None:
    limiter = OutputLimiter(["STOP"], None)
    limiter.feed(TextDelta("S"))
    start = ToolCallStart(0, "c", "f")
    assert limiter.feed(start) == [TextDelta("S"), start]


def test_close_releases_held_back_text() -> None:
    limiter = OutputLimiter(["STOP"], None)
    limiter.feed(TextDelta("ST"))
    assert limiter.close() == [TextDelta("ST")]


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="abc \n", max_size=30),
    st.lists(st.text(alphabet="abc \n", min_size=1, max_size=4), min_size=1, max_size=3),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_any_split_gives_the_text_before_the_earliest_ending_stop(
    text: str, stops: list[str], cuts: list[int]
) -> None:
    got, rest = outcome(pieces(text, cuts), stops)
    ends = [(text.find(s) + len(s), text.find(s), s) for s in stops if s in text]
    if ends:
        _end, start, stop = min(ends, key=lambda e: (e[0], e[1]))
        assert got == text[:start]
        assert rest == [Finished("stop_sequence", stop_sequence=stop)]
    else:
        assert got == text
        assert rest == [Finished("end_turn")]


# -- max_tokens ---------------------------------------------------------------------------


def test_n_short_words_count_as_n_tokens() -> None:
    assert count_tokens("the quick brown fox jumps") == 5
    assert count_tokens("  spaced   out\nwords ") == 3


def test_punctuation_and_cjk_characters_count_one_each() -> None:
    assert count_tokens("Hi, you!") == 4
    assert count_tokens("你好世界") == 4


def test_long_words_count_about_one_token_per_four_characters() -> None:
    assert [word_cost(n) for n in (1, 8, 9, 12, 13, 40)] == [1, 1, 2, 2, 3, 9]


def test_max_tokens_cuts_after_that_many_words_and_finishes_with_max_tokens() -> None:
    text, rest = outcome(["one two three four five"], max_tokens=3)
    assert text == "one two three"
    assert rest == [Finished("max_tokens")]


def test_max_tokens_counts_words_split_across_deltas_once() -> None:
    text, rest = outcome(["on", "e t", "wo th", "ree fo", "ur"], max_tokens=3)
    assert (text, rest) == ("one two three", [Finished("max_tokens")])


def test_exactly_max_tokens_of_text_ends_normally() -> None:
    assert outcome(["one two three"], max_tokens=3) == ("one two three", [Finished("end_turn")])


def test_a_long_word_is_cut_inside_at_the_budget() -> None:
    text, rest = outcome(["x" * 100], max_tokens=3)
    assert text == "x" * 16
    assert count_tokens(text) == 3
    assert rest == [Finished("max_tokens")]


def test_whitespace_streams_at_once_while_the_budget_has_room() -> None:
    limiter = OutputLimiter([], 50)
    assert limiter.feed(TextDelta("w0 ")) == [TextDelta("w0 ")]
    assert limiter.feed(TextDelta("w1\n\n")) == [TextDelta("w1\n\n")]


def test_whitespace_after_the_last_token_that_fits_is_held_and_dropped_at_the_cut() -> None:
    limiter = OutputLimiter([], 2)
    assert limiter.feed(TextDelta("one two ")) == [TextDelta("one two")]
    assert limiter.feed(TextDelta("three")) == [Finished("max_tokens")]


def test_upstream_max_tokens_passes_through() -> None:
    assert outcome(["short"], max_tokens=50) == ("short", [Finished("end_turn")])
    out = run([TextDelta("a b"), Finished("max_tokens")], max_tokens=50)
    assert out[-1] == Finished("max_tokens")


TOKEN_TEXTS = [
    "The quick brown fox, it seems, jumped over 12 lazy dogs!",
    "supercalifragilisticexpialidocious words and 日本語のテキスト here",
    "   leading spaces\n\nand paragraphs...  ",
]


@pytest.mark.parametrize("text", TOKEN_TEXTS)
@pytest.mark.parametrize("limit", [1, 2, 5, 9])
def test_max_tokens_cuts_the_same_at_every_split_point(text: str, limit: int) -> None:
    whole = outcome([text], max_tokens=limit)
    assert text.startswith(whole[0])
    assert count_tokens(whole[0]) <= limit
    for i in range(len(text) + 1):
        assert outcome(pieces(text, [i]), max_tokens=limit) == whole


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab xyz,.\n日"), max_size=40),
    st.integers(min_value=1, max_value=8),
    st.lists(st.integers(min_value=0), max_size=8),
    st.lists(st.text(alphabet="ab x", min_size=1, max_size=3), max_size=2),
)
def test_any_split_gives_the_same_cut_within_the_budget(
    text: str, limit: int, cuts: list[int], stops: list[str]
) -> None:
    whole = outcome([text], stops, max_tokens=limit)
    assert outcome(pieces(text, cuts), stops, max_tokens=limit) == whole
    assert text.startswith(whole[0])
    assert count_tokens(whole[0]) <= limit
    if whole[1] == [Finished("max_tokens")]:
        assert count_tokens(text) > limit


# -- everything else -------------------------------------------------------------------------


def test_without_limits_events_pass_through_unchanged_and_unheld() -> None:
    limiter = OutputLimiter([], None)
    events: list[Event] = [
        TextDelta("a"),
        Finished("end_turn"),
        TextDelta("b"),
        Finished("end_turn"),
    ]
    assert [out for e in events for out in limiter.feed(e)] == events


def test_reasoning_and_tool_calls_pass_untouched_and_do_not_count() -> None:
    events: list[Event] = [
        ReasoningDelta("lots of reasoning words here"),
        ToolCallStart(0, "c", "f"),
        ToolCallDelta(0, '{"many": "argument words here"}'),
        AgentProgress("tool_use", "Bash", "ls"),
    ]
    assert run(events, ["here"], max_tokens=1) == events


def test_after_a_limit_content_is_dropped_but_usage_passes() -> None:
    limiter = OutputLimiter(["END"], None)
    assert limiter.feed(TextDelta("a END b"))[-1] == Finished("stop_sequence", stop_sequence="END")
    assert limiter.finished
    for late in (TextDelta("c"), ToolCallStart(0, "c", "f"), ReasoningDelta("r")):
        assert limiter.feed(late) == []
    assert limiter.feed(USAGE) == [USAGE]
    assert limiter.feed(Finished("end_turn")) == []


def test_usage_before_the_end_passes_and_keeps_text_held() -> None:
    limiter = OutputLimiter(["STOP"], None)
    limiter.feed(TextDelta("ST"))
    assert limiter.feed(USAGE) == [USAGE]
    assert limiter.feed(TextDelta("OP")) == [Finished("stop_sequence", stop_sequence="STOP")]


def test_finished_from_upstream_sets_finished() -> None:
    limiter = OutputLimiter(["x"], 10)
    assert not limiter.finished
    limiter.feed(Finished("end_turn"))
    assert limiter.finished
