"""A Responses API request -> the internal :class:`CompletionRequest` and the wire options.

Sans-IO. ``input`` is decoded by :mod:`clawrap.protocol.responses._decode_input`;
``tools`` and ``tool_choice`` by :mod:`clawrap.protocol.responses._tools` (hosted
tools clawrap cannot run are named in :attr:`ResponsesOptions.ignored_tools`); this
module does the rest: ``text.format``, ``reasoning``, ``max_output_tokens`` and the
fields accepted without effect. A continuation (``previous_response_id``) gets the
stored conversation as a :class:`Prior` from the caller, which owns the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError, invalid_request
from clawrap.core._models import resolve_model
from clawrap.core._request import (
    CompletionRequest,
    ResponseFormat,
    Turn,
)
from clawrap.protocol.openai._decode import brief, validate_model
from clawrap.protocol.responses._decode_input import decode_input, new_item_id
from clawrap.protocol.responses._models import (
    ResponsesBody,
    TextConfig,
)
from clawrap.protocol.responses._tools import decode_tool_choice, decode_tools

_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
_EFFORTS |= {"xhigh": "max", "max": "max"}
_SUMMARIES = ("auto", "concise", "detailed")
ENCRYPTED_REASONING = "reasoning.encrypted_content"


@dataclass(frozen=True, slots=True)
class Prior:
    """The stored conversation a continuation builds on: turns and message system text."""

    response_id: str
    turns: tuple[Turn, ...]
    system: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A response that ended (completed or incomplete), for the response store."""

    response: dict[str, Any]
    reply: Turn | None
    items: tuple[dict[str, Any], ...] = ()  # output items with their thinking blocks


@dataclass(frozen=True, slots=True)
class ResponsesOptions:
    """What the encoders and the store need beyond the internal request.

    ``echo``: the request's own fields the Response object repeats. ``input_items``:
    the request's items, normalized with ids. ``new_turns``: the turns this request
    adds to the conversation (the prior ones excluded); ``system``: the system text of
    messages along the whole chain (``instructions`` are not carried over, as OpenAI
    does). ``generate`` false (Codex's WebSocket warm-up) asks for a response that only
    records its input, with no model run. ``on_complete`` is called with the final
    response when it ends normally.
    """

    model: str
    response_id: str = field(default_factory=lambda: new_item_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    echo: dict[str, Any] = field(default_factory=dict)
    custom_tools: frozenset[str] = frozenset()
    namespaces: Mapping[str, str] = field(default_factory=dict)
    ignored_tools: tuple[str, ...] = ()
    summaries: bool = False
    encrypted_reasoning: bool = False
    store: bool = True
    previous_response_id: str | None = None
    input_items: tuple[dict[str, Any], ...] = ()
    new_turns: tuple[Turn, ...] = ()
    system: tuple[str, ...] = ()
    generate: bool = True
    on_complete: Callable[[Outcome], None] | None = None


# -- the other options ---------------------------------------------------------------------


def _format(text: TextConfig | None) -> ResponseFormat | None:
    fmt = text.format if text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return ResponseFormat("json_object")
    if fmt.schema_ is None:
        param = "text.format.schema"
        raise invalid_request(f"Missing required parameter '{param}'.", param=param)
    return ResponseFormat("json_schema", schema=fmt.schema_, name=fmt.name, strict=bool(fmt.strict))


def _checks(body: ResponsesBody) -> None:
    """Features clawrap cannot provide are refused rather than silently wrong."""
    if body.background:
        raise invalid_request(
            "Background responses are not supported by this server; leave 'background' off.",
            param="background",
        )
    if body.conversation is not None:
        raise invalid_request(
            "Conversations are not supported; continue with 'previous_response_id'.",
            param="conversation",
        )
    if body.prompt is not None:
        raise invalid_request("Stored prompt templates are not supported.", param="prompt")
    if body.truncation not in (None, "disabled", "auto"):
        raise invalid_request("'truncation' must be 'disabled' or 'auto'.", param="truncation")
    if body.top_logprobs:
        raise invalid_request("logprobs are not available from this server.", param="top_logprobs")
    if body.input is None:
        raise invalid_request("Missing required parameter 'input'.", param="input")


def _effort(body: ResponsesBody) -> tuple[str | None, bool]:
    """(effort, whether thinking goes out as reasoning summaries)."""
    reasoning = body.reasoning
    if reasoning is None:
        return None, False
    effort: str | None = None
    if reasoning.effort is not None and reasoning.effort != "none":
        if reasoning.effort not in _EFFORTS:
            raise invalid_request(
                "'reasoning.effort' must be 'none', 'minimal', 'low', 'medium', 'high' or 'xhigh'.",
                param="reasoning.effort",
            )
        effort = _EFFORTS[reasoning.effort]
    summary = reasoning.summary or reasoning.generate_summary
    if summary is not None and summary not in _SUMMARIES:
        raise invalid_request(
            "'reasoning.summary' must be 'auto', 'concise' or 'detailed'.",
            param="reasoning.summary",
        )
    return effort, summary is not None


def _join(turns: list[Turn]) -> tuple[Turn, ...]:
    """Turns with consecutive ones of one role merged (a prior reply, then more of it)."""
    out: list[Turn] = []
    for turn in turns:
        if out and out[-1].role == turn.role:
            out[-1] = Turn(turn.role, out[-1].parts + turn.parts)
        else:
            out.append(turn)
    return tuple(out)


def previous_response_id(body: Any) -> str | None:
    """The ``previous_response_id`` of a raw body, checked to be a short string."""
    value = body.get("previous_response_id") if isinstance(body, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        raise invalid_request(
            "'previous_response_id' must be a response id.", param="previous_response_id"
        )
    return value


def unknown_previous(response_id: str) -> ClawrapError:
    return ClawrapError(
        "not_found",
        f"Previous response with id {brief(response_id)} not found (it may have expired, been "
        "deleted, or been created with store: false).",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def decode_responses(
    body: Any,
    headers: Mapping[str, str],
    settings: Settings,
    prior: Prior | None = None,
    *,
    session_id: Callable[[str | None, Mapping[str, str]], str | None] | None = None,
) -> tuple[CompletionRequest, ResponsesOptions]:
    """A parsed body -> (internal request, options).

    ``prior``: the stored conversation ``previous_response_id`` names (the caller looks
    it up); without it, a body naming one is a 404. ``session_id`` checks the session id
    of the body or header. Raises ClawrapError 400 naming the ``param``, or 404.
    """
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    previous = previous_response_id(body)
    if previous is not None and (prior is None or prior.response_id != previous):
        raise unknown_previous(previous)
    req = validate_model(ResponsesBody, body)
    _checks(req)
    model = resolve_model(req.model, settings)
    decoded = decode_input(req.input, settings)
    tools = decode_tools(req.tools)
    choice, specs = decode_tool_choice(req.tool_choice, tools)
    effort, summaries = _effort(req)
    chain_system = (*(prior.system if prior else ()), *decoded.system)
    system = "\n\n".join(t for t in (req.instructions, *chain_system) if t) or None
    new_turns = decoded.frozen_turns()
    turns = _join([*(prior.turns if prior else ()), *new_turns])
    if not turns and req.generate is not False:
        raise invalid_request(
            "'input' must include at least one user or assistant item with content.",
            param="input",
        )
    requested = req.model or settings.default_model
    request = CompletionRequest(
        model=model,
        requested_model=requested,
        turns=turns,
        system=system,
        tools=tuple(specs),
        tool_choice=choice,
        parallel_tool_calls=req.parallel_tool_calls is not False,
        max_output_tokens=req.max_output_tokens,
        stream=bool(req.stream),
        response_format=_format(req.text),
        effort=effort,
        session_id=session_id(req.session_id, headers) if session_id is not None else None,
        metadata=dict(req.metadata or {}),
    )
    options = ResponsesOptions(
        model=requested,
        echo=_echo(req, body),
        custom_tools=frozenset(tools.custom),
        namespaces=dict(tools.namespaces),
        ignored_tools=tuple(dict.fromkeys(tools.hosted)),
        summaries=summaries,
        encrypted_reasoning=ENCRYPTED_REASONING in (req.include or ()),
        store=req.store is not False,
        previous_response_id=previous,
        generate=req.generate is not False,
        input_items=tuple(decoded.items),
        new_turns=new_turns,
        system=chain_system,
    )
    return request, options


def _echo(req: ResponsesBody, body: dict[str, Any]) -> dict[str, Any]:
    """The request's fields as the Response object repeats them."""
    text = body.get("text") if isinstance(body.get("text"), dict) else None
    fmt = text.get("format") if text is not None else None
    reasoning = req.reasoning
    return {
        "instructions": req.instructions,
        "tools": list(body.get("tools") or []),
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": req.parallel_tool_calls is not False,
        "text": {"format": fmt if isinstance(fmt, dict) else {"type": "text"}},
        "reasoning": {
            "effort": reasoning.effort if reasoning else None,
            "summary": (reasoning.summary or reasoning.generate_summary) if reasoning else None,
        },
        "max_output_tokens": req.max_output_tokens,
        "metadata": dict(req.metadata or {}),
        "temperature": req.temperature,
        "top_p": req.top_p,
        "truncation": req.truncation or "disabled",
        "user": req.user,
        "prompt_cache_key": req.prompt_cache_key,
        "service_tier": req.service_tier if req.service_tier else "default",
        "store": req.store is not False,
        "background": False,
        "stream": bool(req.stream),
    }


__all__ = [
    "ENCRYPTED_REASONING",
    "Outcome",
    "Prior",
    "ResponsesOptions",
    "decode_responses",
    "previous_response_id",
    "unknown_previous",
]
