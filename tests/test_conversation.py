"""Canonical turns, digests, fingerprints and matching a request against a session."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clawrap.core._errors import ClawrapError
from clawrap.core._events import (
    AgentProgress,
    Finished,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from clawrap.core._request import (
    DocumentPart,
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
    Turn,
)
from clawrap.protocol._conversation import (
    ReplyRecorder,
    conversation_key,
    dumps_turn,
    loads_turn,
    merge_history,
    prefix_keys,
    turn_digest,
    turn_shape,
)


def user(text: str) -> Turn:
    return Turn("user", (TextPart(text),))


def assistant(text: str) -> Turn:
    return Turn("assistant", (TextPart(text),))


EVERY_PART = Turn(
    "assistant",
    (
        ThinkingPart("hmm", "sig"),
        TextPart("Here ✓"),
        ImagePart("image/png", "iVBORw0KGgo="),
        ImagePart("image/png", "", url="https://example.test/a.png"),
        DocumentPart("application/pdf", "JVBERi0=", title="spec"),
        ToolUsePart("call_1", "lookup", {"q": [1, {"b": None, "a": 2.5}]}),
        ToolResultPart("call_0", (TextPart("done"), ImagePart("image/gif", "R0lG")), True),
    ),
)

# ---------------------------------------------------------------- storage form


def test_a_turn_survives_dumps_and_loads_unchanged() -> None:
    assert loads_turn(dumps_turn(EVERY_PART)) == EVERY_PART


def test_dumps_is_canonical_whatever_the_key_order_of_tool_input() -> None:
    a = Turn("assistant", (ToolUsePart("c", "f", {"x": 1, "y": 2}),))
    b = Turn("assistant", (ToolUsePart("c", "f", {"y": 2, "x": 1}),))
    assert dumps_turn(a) == dumps_turn(b)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"role": "system", "parts": []}',
        '{"role": "user", "parts": {}}',
        '{"role": "user", "parts": [{"type": "video"}]}',
        '{"role": "user", "parts": [{"type": "text", "text": 3}]}',
        '{"role": "user", "parts": [{"type": "tool_use", "id": "c", "name": "f", "input": []}]}',
        '{"role": "user", "parts": [{"type": "tool_result", "tool_use_id": "c", "is_error": false,'
        ' "content": [{"type": "tool_use", "id": "c", "name": "f", "input": {}}]}]}',
    ],
)
def test_loads_refuses_anything_that_is_not_a_stored_turn(text: str) -> None:
    with pytest.raises(ValueError):
        loads_turn(text)


# ---------------------------------------------------------------- digests


def test_digest_ignores_whitespace_at_the_ends_and_line_ending_style() -> None:
    assert turn_digest(assistant("Hello\r\nthere\n")) == turn_digest(assistant("  Hello\nthere"))


def test_digest_joins_text_parts_however_they_were_split() -> None:
    split = Turn("assistant", (TextPart("Hel"), TextPart("lo")))
    assert turn_digest(split) == turn_digest(assistant("Hello"))


def test_digest_ignores_thinking_that_openai_clients_do_not_send_back() -> None:
    with_thinking = Turn("assistant", (ThinkingPart("plan", "sig"), TextPart("Hi")))
    assert turn_digest(with_thinking) == turn_digest(assistant("Hi"))


def test_digest_tells_roles_apart() -> None:
    assert turn_digest(user("Hi")) != turn_digest(assistant("Hi"))


def test_digest_tells_tool_call_ids_apart() -> None:
    a = Turn("assistant", (ToolUsePart("call_1", "f", {}),))
    b = Turn("assistant", (ToolUsePart("call_2", "f", {}),))
    assert turn_digest(a) != turn_digest(b)


def test_digest_tells_image_data_apart() -> None:
    a = Turn("user", (ImagePart("image/png", "AAAA"),))
    b = Turn("user", (ImagePart("image/png", "AAAB"),))
    assert turn_digest(a) != turn_digest(b)


def test_digest_tells_tool_result_errors_apart() -> None:
    ok = Turn("user", (ToolResultPart("c", (TextPart("x"),)),))
    failed = Turn("user", (ToolResultPart("c", (TextPart("x"),), is_error=True),))
    assert turn_digest(ok) != turn_digest(failed)


# ---------------------------------------------------------------- fingerprints


def test_prefix_keys_has_one_key_per_prefix_ending_with_the_conversation_key() -> None:
    turns = [user("a"), assistant("b"), user("c")]
    keys = prefix_keys("sys", turns)
    assert len(keys) == 4
    assert keys[-1] == conversation_key("sys", turns)
    assert keys[2] == conversation_key("sys", turns[:2])
    assert len(set(keys)) == 4


def test_conversation_key_depends_on_the_system_prompt() -> None:
    turns = [user("a")]
    assert conversation_key("one", turns) != conversation_key("two", turns)
    assert conversation_key(None, turns) != conversation_key("", turns)


def test_a_longer_conversation_finds_the_key_of_its_held_prefix() -> None:
    held = [user("a"), assistant("b")]
    later = [*held, user("c")]
    assert conversation_key("s", held) in prefix_keys("s", later)


# ---------------------------------------------------------------- merging

STORED = (user("u1"), assistant("a1"), user("u2"), assistant("a2"))


def test_everything_is_new_for_a_session_without_turns() -> None:
    merge = merge_history((), [user("hi")])
    assert merge.kind == "new"
    assert merge.conversation == merge.new == (user("hi"),)


def test_only_the_new_message_is_appended() -> None:
    merge = merge_history(STORED, [user("u3")])
    assert merge.kind == "append"
    assert merge.conversation == (*STORED, user("u3"))
    assert merge.new == (user("u3"),)
    assert not merge.forks


def test_one_message_is_new_even_when_it_repeats_the_first() -> None:
    merge = merge_history(STORED, [user("u1")])
    assert merge.conversation == (*STORED, user("u1"))


def test_a_full_resend_keeps_only_what_follows_the_stored_history() -> None:
    merge = merge_history(STORED, [*STORED, user("u3")])
    assert merge.kind == "resend"
    assert merge.new == (user("u3"),)
    assert merge.conversation == (*STORED, user("u3"))


def test_a_resend_keeps_the_stored_turns_with_their_signed_thinking() -> None:
    rich = (user("u1"), Turn("assistant", (ThinkingPart("t", "sig"), TextPart("a1"))))
    merge = merge_history(rich, [user("u1"), assistant("a1 "), user("u2")])
    assert merge.conversation[1] == rich[1]


def test_an_edited_earlier_message_forks_at_the_edit() -> None:
    incoming = [user("u1"), assistant("a1"), user("u2 edited")]
    merge = merge_history(STORED, incoming)
    assert merge.kind == "fork"
    assert merge.forks
    assert merge.base == 2
    assert merge.conversation == tuple(incoming)
    assert merge.new == (user("u2 edited"),)


def test_an_edited_first_message_forks_at_the_start() -> None:
    incoming = [user("u1 edited"), assistant("a1"), user("u2")]
    merge = merge_history(STORED, incoming)
    assert merge.kind == "fork"
    assert merge.base == 0
    assert merge.conversation == tuple(incoming)


def test_an_edited_first_message_forks_at_the_start_when_the_client_rewrote_the_answer_too() -> (
    None
):
    stored = (user("u1"), assistant("a1"))
    incoming = [user("u1 edited"), assistant("a1, as the client shows it"), user("u2")]
    merge = merge_history(stored, incoming)
    assert (merge.kind, merge.base) == ("fork", 0)
    assert merge.conversation == tuple(incoming)
    assert merge.new == tuple(incoming)


def test_a_resend_with_every_turn_differing_but_the_same_shape_forks_at_the_start() -> None:
    incoming = [user("v1"), assistant("b1"), user("v2"), assistant("b2"), user("v3")]
    merge = merge_history(STORED, incoming)
    assert (merge.kind, merge.base) == ("fork", 0)
    assert merge.conversation == tuple(incoming)


def test_new_messages_in_another_shape_than_the_history_are_appended() -> None:
    result = Turn("user", (ToolResultPart("c", (TextPart("r"),)),))
    incoming = [result, user("and then"), assistant("noted"), user("more")]
    merge = merge_history(STORED, incoming)
    assert merge.kind == "append"
    assert merge.conversation == (*STORED, *incoming)


def test_a_single_stored_turn_is_too_little_to_tell_a_resend_from_new_messages() -> None:
    merge = merge_history((user("u1"),), [user("u2"), user("u3")])
    assert merge.kind == "append"


def test_a_turns_shape_is_its_role_and_its_tool_calls_and_results() -> None:
    call = Turn("assistant", (TextPart("x"), ToolUsePart("c", "f", {})))
    result = Turn("user", (ToolResultPart("c", (TextPart("r"),)),))
    shapes = [turn_shape(t) for t in (user("q"), assistant("a"), call, result)]
    assert shapes == ["user", "assistant", "assistant+call", "user+result"]


def test_resending_the_history_up_to_a_question_regenerates_its_answer() -> None:
    merge = merge_history(STORED, STORED[:3])
    assert merge.kind == "regenerate"
    assert merge.forks
    assert merge.conversation == STORED[:3]
    assert merge.new == ()


def test_a_window_of_the_latest_turns_continues_the_session() -> None:
    merge = merge_history(STORED, [user("u2"), assistant("a2"), user("u3")])
    assert merge.kind == "window"
    assert merge.conversation == (*STORED, user("u3"))


def test_several_new_messages_without_overlap_are_all_appended() -> None:
    incoming = [Turn("user", (ToolResultPart("c", (TextPart("r"),)),)), user("and then")]
    merge = merge_history(STORED, incoming)
    assert merge.kind == "append"
    assert merge.new == tuple(incoming)


def test_resending_the_history_up_to_its_last_answer_is_a_400() -> None:
    with pytest.raises(ClawrapError) as caught:
        merge_history(STORED, STORED)
    assert caught.value.status == 400
    assert caught.value.code == "session_nothing_new"


def test_no_messages_at_all_is_a_400() -> None:
    with pytest.raises(ClawrapError) as caught:
        merge_history(STORED, [])
    assert caught.value.status == 400


def test_the_merge_carries_the_digests_of_its_conversation() -> None:
    merge = merge_history(STORED, [*STORED, user("u3")])
    assert merge.digests == tuple(turn_digest(t) for t in merge.conversation)


# ---------------------------------------------------------------- properties

texts = st.text(alphabet="ab \n", max_size=3)


@settings(max_examples=60, deadline=None)
@given(st.lists(texts, min_size=1, max_size=8), st.integers(1, 4))
def test_resending_the_full_history_never_duplicates_turns(
    questions: list[str], resends: int
) -> None:
    stored: tuple[Turn, ...] = ()
    for i, question in enumerate(questions):
        incoming = [*stored, user(question)]
        for _ in range(resends):
            merge = merge_history(stored, incoming)
            assert merge.conversation == tuple(incoming)
        stored = (*merge.conversation, assistant(f"answer {i}"))
    assert len(stored) == 2 * len(questions)


@settings(max_examples=60, deadline=None)
@given(st.lists(texts, min_size=1, max_size=8))
def test_sending_only_new_messages_builds_the_whole_conversation(questions: list[str]) -> None:
    stored: tuple[Turn, ...] = ()
    for i, question in enumerate(questions):
        merge = merge_history(stored, [user(question)])
        assert merge.new == (user(question),)
        stored = (*merge.conversation, assistant(f"answer {i}"))
    assert [t.text for t in stored[::2]] == questions


turns = st.builds(
    lambda role, text: Turn(role, (TextPart(text),)), st.sampled_from(["user", "assistant"]), texts
)


@settings(max_examples=200, deadline=None)
@given(st.lists(turns, max_size=6), st.lists(turns, min_size=1, max_size=6))
def test_the_model_always_sees_what_the_client_sent_at_the_end(
    stored: list[Turn], incoming: list[Turn]
) -> None:
    try:
        merge = merge_history(stored, incoming)
    except ClawrapError:
        return
    digests = [turn_digest(t) for t in merge.conversation]
    assert digests[len(digests) - len(incoming) :] == [turn_digest(t) for t in incoming]
    assert merge.conversation == tuple(stored[: merge.base]) + merge.new


# ---------------------------------------------------------------- the reply as a turn


def test_the_recorder_builds_the_turn_a_client_sends_back() -> None:
    recorder = ReplyRecorder()
    events = [
        ReasoningDelta("think"),
        ReasoningSignature("sig"),
        TextDelta("Let me "),
        TextDelta("look."),
        AgentProgress("tool_use", "Read", "a file"),
        ToolCallStart(0, "call_1", "lookup"),
        ToolCallDelta(0, '{"q": '),
        ToolCallDelta(0, '"x"}'),
        ToolCallStart(1, "call_2", "now"),
        Usage(10, 5, cost_usd=0.01),
        Finished("tool_calls"),
    ]
    for event in events:
        recorder.feed(event)
    assert recorder.turn() == Turn(
        "assistant",
        (
            ThinkingPart("think", "sig"),
            TextPart("Let me look."),
            ToolUsePart("call_1", "lookup", {"q": "x"}),
            ToolUsePart("call_2", "now", {}),
        ),
    )
    assert recorder.usage == Usage(10, 5, cost_usd=0.01)
    assert recorder.finish == "tool_calls"


def test_the_recorder_has_no_turn_for_an_empty_reply() -> None:
    recorder = ReplyRecorder()
    recorder.feed(Finished("end_turn"))
    assert recorder.turn() is None


def test_the_recorder_keeps_arguments_that_are_not_json_as_an_empty_object() -> None:
    recorder = ReplyRecorder()
    recorder.feed(ToolCallStart(0, "c", "f"))
    recorder.feed(ToolCallDelta(0, "{oops"))
    turn = recorder.turn()
    assert turn is not None
    assert turn.parts == (ToolUsePart("c", "f", {}),)
