"""The 400s every decoded request is checked for, before it queues for anything.

Sans-IO. Each dialect's decoder refuses what its own wire format gets wrong; this
checks what they all share, on the internal request once the ``X-Claude-*`` headers
are laid over it: the effort level (one table, :data:`~clawrap.core._request.EFFORT_LEVELS`),
the thinking budget, the response schema (compiled here, so a schema the answer could
not be checked against never takes a run slot or a CLI process), the session id and,
for a request without a session, the conversation's shape
(:mod:`~clawrap.protocol._conversation_shape`; a session's conversation is checked once
it is merged with the stored one, still before a run slot is taken).
The HTTP layer calls :func:`check_request` right after decoding, for every dialect.
"""

from __future__ import annotations

from clawrap.core._errors import invalid_request
from clawrap.core._request import EFFORT_LEVELS, CompletionRequest
from clawrap.core._session_ids import check_session_id
from clawrap.protocol._conversation_shape import check_conversation
from clawrap.protocol._json_output import MAX_DEPTH, check_response_format


def effort_choices(levels: tuple[str, ...] = EFFORT_LEVELS) -> str:
    """``'low', 'medium', ... or 'max'``: the levels for an error message."""
    quoted = [f"'{level}'" for level in levels]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def check_request(
    request: CompletionRequest, *, max_schema_depth: int = MAX_DEPTH
) -> CompletionRequest:
    """``request`` if it can run; else a 400 naming the parameter.

    ``max_schema_depth``: the deepest response schema accepted (CLAWRAP_JSON_SCHEMA_MAX_DEPTH).
    """
    if request.effort is not None and request.effort not in EFFORT_LEVELS:
        raise invalid_request(
            f"Unknown effort {request.effort!r}: use {effort_choices()}.", param="effort"
        )
    budget = request.thinking_budget
    if budget is not None and (isinstance(budget, bool) or budget < 1):
        raise invalid_request(
            "The thinking budget must be a positive number of tokens.", param="thinking"
        )
    check_response_format(request.response_format, max_schema_depth)
    if request.session_id is not None:
        check_session_id(request.session_id)
    else:
        check_conversation(request)
    return request


__all__ = ["check_request", "effort_choices"]
