"""Checks that a JSON answer is what ``response_format`` asked for (sans-IO).

``json_object`` needs the reply's text to be one JSON value; ``json_schema``
needs it to validate against the client's schema. The check sees the text
after fence stripping, as the client does, and runs once the reply is
complete. A reply cut short (``max_tokens``, a stop sequence) or ending in
tool calls or a refusal is not checked: its finish reason already tells the
client why the text is not a whole answer (openai-python's ``.parse()``
raises ``LengthFinishReasonError`` on its own).

Schemas come from clients, so they are hostile input: only local ``$ref``
(``#...``) is allowed, and the validator's registry never fetches anything
(jsonschema's default one would download a remote ``$ref``).
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import exceptions as schema_errors
from jsonschema import validators
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from clawrap.core._errors import ClawrapError, invalid_request
from clawrap.core._events import FinishReason
from clawrap.core._request import ResponseFormat

# How much of a validation message the client sees; the rest is the model's own output.
MESSAGE_LIMIT = 300
# Finish reasons whose text is meant to be the whole answer.
# Nesting beyond this in a schema is refused by default (CLAWRAP_JSON_SCHEMA_MAX_DEPTH).
MAX_DEPTH = 64
CHECKED_REASONS: frozenset[FinishReason] = frozenset({"end_turn"})
_NO_RETRIEVAL: Registry[Any] = Registry()


def schema_problem(schema: dict[str, Any], max_depth: int = MAX_DEPTH) -> str | None:
    """Why ``schema`` cannot be used to check answers, or None when it can.

    Refused: a schema that does not compile, one nested deeper than ``max_depth``,
    a ``$ref`` that is not local or points to nothing, and a cycle of references
    every instance would have to follow forever (see :func:`_forced_cycle`): no
    answer could ever match it, and checking one would never end.
    """
    if _depth_over(schema, max_depth):
        return f"the schema nests deeper than {max_depth} levels"
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except schema_errors.SchemaError as exc:
        return _short(f"{exc.message} (at {exc.json_path})")
    except RecursionError:
        return "the schema nests too deeply"
    refs: list[str] = []
    if not _collect_refs(schema, refs):
        return "the schema nests too deeply"
    remote = [ref for ref in refs if not ref.startswith("#")]
    if remote:
        return _short(f"only local references ('#...') are supported, not {remote[0]!r}")
    if _nested_id(schema):
        return None  # references resolve against inner bases; validation will tell
    root = Resource.from_contents(schema, default_specification=DRAFT202012)
    resolver = _NO_RETRIEVAL.resolver_with_root(root)
    for ref in refs:
        try:
            resolver.lookup(ref)
        except Unresolvable:
            return _short(f"the reference {ref!r} points to nothing in the schema")
    cycle = _forced_cycle(schema, resolver)
    if cycle is not None:
        return _short(
            f"the reference {cycle!r} starts a cycle every value would have to follow forever "
            "(through bare references or required properties), so nothing can match it"
        )
    return None


def _depth_over(schema: Any, limit: int) -> bool:
    pending: list[tuple[Any, int]] = [(schema, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            pending.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            pending.extend((v, depth + 1) for v in node)
    return False


def _forced(node: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """The subschemas every instance valid against ``node`` must also be checked against,
    forever if they loop: ``(ref, schema)`` for a ``$ref``, ``(None, schema)`` otherwise.

    That is: its ``$ref``, each ``allOf`` member, a lone ``anyOf``/``oneOf`` member, the
    schema of each required property, and the item schema of an array that needs items.
    """
    out: list[tuple[str | None, Any]] = []
    ref = node.get("$ref")
    if isinstance(ref, str):
        out.append((ref, None))
    for key in ("allOf", "anyOf", "oneOf"):
        members = node.get(key)
        if isinstance(members, list) and (key == "allOf" or len(members) == 1):
            out.extend((None, m) for m in members)
    properties, required = node.get("properties"), node.get("required")
    if isinstance(properties, dict) and isinstance(required, list):
        out.extend(
            (None, properties[n]) for n in required if isinstance(n, str) and n in properties
        )
    min_items = node.get("minItems")
    if isinstance(min_items, int) and min_items >= 1:
        items = node.get("items")
        if isinstance(items, dict):
            out.append((None, items))
    return out


def _forced_cycle(schema: dict[str, Any], resolver: Any) -> str | None:
    """The ``$ref`` closing a cycle of forced subschemas (:func:`_forced`), or None.

    A depth-first walk over subschemas by identity; references resolve to the very
    objects inside ``schema``, so a reference back to an open subschema is a cycle.
    """
    open_nodes: set[int] = set()
    done: set[int] = set()
    # Each frame: (node, its forced children not yet visited).
    stack: list[tuple[dict[str, Any], list[tuple[str | None, Any]]]] = [(schema, _forced(schema))]
    open_nodes.add(id(schema))
    while stack:
        node, children = stack[-1]
        if not children:
            stack.pop()
            open_nodes.discard(id(node))
            done.add(id(node))
            continue
        ref, child = children.pop()
        if ref is not None:
            try:
                child = resolver.lookup(ref).contents
            except Unresolvable:
                continue
        if not isinstance(child, dict) or id(child) in done:
            continue
        if id(child) in open_nodes:
            return ref if ref is not None else "#"
        open_nodes.add(id(child))
        stack.append((child, _forced(child)))
    return None


def check_response_format(
    response_format: ResponseFormat | None, max_depth: int = MAX_DEPTH
) -> None:
    """Raise a 400 naming ``response_format`` when its schema cannot be used."""
    if response_format is None or response_format.schema is None:
        return
    problem = schema_problem(response_format.schema, max_depth)
    if problem is not None:
        raise invalid_request(
            f"Invalid JSON schema in response_format: {problem}.",
            param="response_format",
            code="invalid_json_schema",
        )


def _collect_refs(node: Any, refs: list[str], depth: int = 0) -> bool:
    """Add every ``$ref`` / ``$dynamicRef`` under ``node`` to ``refs``; False if too deep."""
    if depth > MAX_DEPTH:
        return False
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                refs.append(value)
            elif not _collect_refs(value, refs, depth + 1):
                return False
    elif isinstance(node, list):
        return all(_collect_refs(item, refs, depth + 1) for item in node)
    return True


def _nested_id(schema: dict[str, Any]) -> bool:
    """Whether a subschema sets its own ``$id`` (a new base for the references below it)."""
    pending: list[Any] = [v for k, v in schema.items() if k != "$id"]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$id"), str):
                return True
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and every other client's parser) does not.
    raise ValueError(f"{name} is not JSON")


def output_problem(text: str, response_format: ResponseFormat) -> str | None:
    """Why ``text`` is not an answer in ``response_format``, or None when it is."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return "it is not valid JSON"
    schema = response_format.schema
    if response_format.kind != "json_schema" or schema is None:
        return None
    if schema_problem(schema) is not None:
        return None  # refused at the start of the request; nothing more to check here
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    validator = cls(schema, registry=_NO_RETRIEVAL)
    try:
        error = schema_errors.best_match(validator.iter_errors(value))
    except (schema_errors.SchemaError, Unresolvable, RecursionError):
        # Only a schema the start of the request could not fully vet gets here.
        return "it could not be checked against the JSON schema"
    if error is None:
        return None
    return _short(f"it does not match the JSON schema at {error.json_path}: {error.message}")


def _short(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def invalid_output_error(problem: str) -> ClawrapError:
    """What the client gets instead of an answer that is not what it asked for.

    502: clawrap works as a gateway here and the answer it got from upstream is
    unusable (a 500 would point at a bug in clawrap). Both OpenAI and Anthropic
    clients retry a 5xx, and a new attempt may well give a valid answer.
    """
    return ClawrapError(
        "api_error",
        f"The model's answer does not follow the requested response format: {problem}.",
        status=502,
        code="invalid_json_output",
    )


class JsonOutputCheck:
    """``feed(text)`` with every piece of the answer, then ``verdict(reason)`` at its end."""

    def __init__(self, response_format: ResponseFormat) -> None:
        self.response_format = response_format
        self._parts: list[str] = []

    def feed(self, text: str) -> None:
        self._parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def verdict(self, reason: FinishReason) -> ClawrapError | None:
        """The error to send instead of a normal end, or None when the answer may stand."""
        if reason not in CHECKED_REASONS:
            return None
        problem = output_problem(self.text, self.response_format)
        return invalid_output_error(problem) if problem is not None else None


__all__ = [
    "CHECKED_REASONS",
    "MESSAGE_LIMIT",
    "JsonOutputCheck",
    "check_response_format",
    "invalid_output_error",
    "output_problem",
    "schema_problem",
]
