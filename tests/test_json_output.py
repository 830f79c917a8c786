"""The JSON answer check: valid JSON for json_object, valid against the schema for json_schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clawrap.core._errors import ClawrapError
from clawrap.core._events import Finished, TextDelta
from clawrap.core._request import CompletionRequest, ResponseFormat
from clawrap.protocol._json_output import (
    MESSAGE_LIMIT,
    JsonOutputCheck,
    check_response_format,
    output_problem,
    schema_problem,
)
from clawrap.protocol._output_pipeline import OutputPipeline

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
JSON_OBJECT = ResponseFormat("json_object")
PERSON_FORMAT = ResponseFormat("json_schema", PERSON, name="Person", strict=True)

finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def verdict(text: str, fmt: ResponseFormat, reason: Any = "end_turn") -> ClawrapError | None:
    check = JsonOutputCheck(fmt)
    for piece in text.split(" "):
        check.feed(piece + " ")
    return check.verdict(reason)


# -- json_object


@given(json_values)
def test_any_json_value_is_a_valid_json_object_answer(value: Any) -> None:
    assert output_problem(json.dumps(value), JSON_OBJECT) is None


@given(st.text())
def test_text_that_does_not_parse_as_json_is_reported(text: str) -> None:
    try:
        json.loads(text)
    except ValueError:
        assert output_problem(text, JSON_OBJECT) == "it is not valid JSON"


@pytest.mark.parametrize("text", ["NaN", '{"x": Infinity}', "[-Infinity]"])
def test_nan_and_infinity_are_not_json(text: str) -> None:
    assert output_problem(text, JSON_OBJECT) == "it is not valid JSON"


def test_an_empty_answer_is_not_json() -> None:
    assert output_problem("", JSON_OBJECT) == "it is not valid JSON"


def test_json_nested_past_the_parsers_limit_is_reported_not_raised() -> None:
    assert output_problem("[" * 100_000 + "]" * 100_000, JSON_OBJECT) == "it is not valid JSON"


def test_a_json_schema_format_without_a_schema_only_needs_json() -> None:
    assert output_problem('"just a string"', ResponseFormat("json_schema")) is None


# -- json_schema


def test_an_answer_matching_the_schema_passes() -> None:
    assert output_problem('{"name": "Ann", "age": 3}', PERSON_FORMAT) is None


def test_a_missing_property_is_named_with_its_place() -> None:
    problem = output_problem('{"name": "Ann"}', PERSON_FORMAT)
    assert problem == "it does not match the JSON schema at $: 'age' is a required property"


def test_a_wrong_type_is_named_with_its_path() -> None:
    problem = output_problem('{"name": "Ann", "age": "three"}', PERSON_FORMAT)
    assert problem is not None and "$.age" in problem and "integer" in problem


@given(st.integers(), st.text())
def test_integers_match_an_integer_schema_and_strings_do_not(number: int, text: str) -> None:
    fmt = ResponseFormat("json_schema", {"type": "integer"})
    assert output_problem(json.dumps(number), fmt) is None
    assert output_problem(json.dumps(text), fmt) is not None


def test_a_long_mismatch_is_cut_to_a_short_message() -> None:
    fmt = ResponseFormat("json_schema", {"type": "integer"})
    problem = output_problem(json.dumps("x" * 10_000), fmt)
    assert problem is not None and len(problem) <= MESSAGE_LIMIT


def test_local_references_are_followed() -> None:
    schema = {
        "$defs": {"Person": PERSON},
        "type": "object",
        "properties": {"people": {"type": "array", "items": {"$ref": "#/$defs/Person"}}},
    }
    fmt = ResponseFormat("json_schema", schema)
    assert output_problem('{"people": [{"name": "A", "age": 1}]}', fmt) is None
    assert output_problem('{"people": [{"name": "A"}]}', fmt) is not None


def test_an_older_draft_named_by_the_schema_is_used() -> None:
    schema = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "number"}
    fmt = ResponseFormat("json_schema", schema)
    assert output_problem("1.5", fmt) is None
    assert output_problem('"x"', fmt) is not None


# -- schemas are checked before the request runs


def test_a_usable_schema_has_no_problem() -> None:
    assert schema_problem(PERSON) is None


def test_a_schema_with_a_wrong_keyword_type_is_refused() -> None:
    assert schema_problem({"type": "no-such-type"}) is not None


def test_a_remote_reference_is_refused_and_never_fetched() -> None:
    problem = schema_problem({"$ref": "http://127.0.0.1:9/schema.json"})
    assert problem is not None and "only local references" in problem


def test_a_local_reference_to_nothing_is_refused() -> None:
    problem = schema_problem({"properties": {"x": {"$ref": "#/$defs/missing"}}})
    assert problem is not None and "points to nothing" in problem


def test_a_schema_nested_too_deeply_is_refused() -> None:
    schema: dict[str, Any] = {}
    for _ in range(5000):
        schema = {"items": schema}
    assert schema_problem(schema) is not None


def test_a_bad_schema_becomes_a_400_naming_response_format() -> None:
    with pytest.raises(ClawrapError) as caught:
        check_response_format(ResponseFormat("json_schema", {"type": 5}))
    assert caught.value.status == 400
    assert caught.value.param == "response_format"
    assert caught.value.code == "invalid_json_schema"


def test_no_response_format_needs_no_check() -> None:
    check_response_format(None)
    check_response_format(JSON_OBJECT)


# -- the verdict at the end of a reply


def test_a_valid_answer_fed_in_pieces_stands() -> None:
    assert verdict('{"name": "Ann", "age": 3}', PERSON_FORMAT) is None


def test_an_invalid_answer_becomes_a_502_invalid_json_output() -> None:
    error = verdict("Sure! Here is a person.", PERSON_FORMAT)
    assert error is not None
    assert (error.kind, error.status, error.code) == ("api_error", 502, "invalid_json_output")
    assert "not valid JSON" in error.message


@pytest.mark.parametrize("reason", ["max_tokens", "stop_sequence", "tool_calls", "refusal"])
def test_a_reply_that_did_not_end_normally_is_not_checked(reason: str) -> None:
    assert verdict('{"name": "An', PERSON_FORMAT, reason) is None


# -- in the output pipeline


def run_pipeline(fmt: ResponseFormat | None, *events: Any, **request: Any) -> list[Any]:
    pipeline = OutputPipeline(
        CompletionRequest(model="m", requested_model="m", turns=(), response_format=fmt, **request)
    )
    out: list[Any] = []
    for event in events:
        out.extend(pipeline.feed(event))
    return out + pipeline.close()


def test_the_pipeline_checks_the_text_without_its_fence() -> None:
    out = run_pipeline(
        PERSON_FORMAT,
        TextDelta('```json\n{"name": '),
        TextDelta('"Ann", "age": 3}\n```'),
        Finished("end_turn"),
    )
    assert "".join(e.text for e in out if isinstance(e, TextDelta)) == '{"name": "Ann", "age": 3}'
    assert out[-1] == Finished("end_turn")


def test_the_pipeline_raises_instead_of_finishing_an_invalid_answer() -> None:
    with pytest.raises(ClawrapError) as caught:
        run_pipeline(PERSON_FORMAT, TextDelta('{"name": "Ann"}'), Finished("end_turn"))
    assert caught.value.code == "invalid_json_output"


def test_the_pipeline_leaves_an_answer_cut_by_max_tokens_to_its_finish_reason() -> None:
    out = run_pipeline(
        PERSON_FORMAT, TextDelta('{"name": "A'), TextDelta("nn"), max_output_tokens=1
    )
    assert out[-1] == Finished("max_tokens")


def test_the_pipeline_does_not_check_text_replies() -> None:
    out = run_pipeline(None, TextDelta("plain words"), Finished("end_turn"))
    assert out[-1] == Finished("end_turn")


# -- schemas no answer can match -------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]},
        {"allOf": [{"$ref": "#"}]},
        {"type": "array", "minItems": 1, "items": {"$ref": "#"}},
        {
            "$defs": {
                "a": {
                    "type": "object",
                    "properties": {"b": {"$ref": "#/$defs/b"}},
                    "required": ["b"],
                },
                "b": {
                    "type": "object",
                    "properties": {"a": {"$ref": "#/$defs/a"}},
                    "required": ["a"],
                },
            },
            "$ref": "#/$defs/a",
        },
    ],
)
def test_a_reference_cycle_every_value_must_follow_is_refused(schema: dict[str, Any]) -> None:
    problem = schema_problem(schema)
    assert problem is not None and "cycle" in problem


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"next": {"$ref": "#"}}},
        {"anyOf": [{"type": "null"}, {"$ref": "#"}]},
        {"type": "array", "items": {"$ref": "#"}},
        {
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                    "required": ["kids"],
                }
            },
            "$ref": "#/$defs/node",
        },
    ],
)
def test_a_recursive_schema_with_a_way_out_is_accepted(schema: dict[str, Any]) -> None:
    assert schema_problem(schema) is None


def test_nesting_past_the_depth_cap_is_refused() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(10):
        schema = {"type": "array", "items": schema}
    assert schema_problem(schema, max_depth=40) is None
    problem = schema_problem(schema, max_depth=5)
    assert problem is not None and "deeper than 5" in problem
