"""For one request body: which fields clawrap honours, ignores or refuses (sans-IO).

``POST /v1/compatibility`` answers with :func:`report`. *Honoured* fields are
those the dialect's decoder reads and acts on; *ignored* ones are accepted but
have no effect here (sampling knobs Claude Code does not expose, and any field
the API does not define); *refused* is the field the decoder rejected, with its
message, exactly as a completion request would be answered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from clawrap.core._errors import ClawrapError

# Accepted and without effect: Claude Code has no such options.
NO_EFFECT: dict[str, frozenset[str]] = {
    "openai": frozenset(
        {
            "temperature",
            "top_p",
            "seed",
            "frequency_penalty",
            "presence_penalty",
            "logit_bias",
            "top_logprobs",
            "user",
            "metadata",
            "prompt_cache_key",
            "safety_identifier",
            "prediction",
            "service_tier",
            "store",
            "verbosity",
            "audio",
            "web_search_options",
        }
    ),
    "anthropic": frozenset({"temperature", "top_k", "top_p", "metadata", "service_tier"}),
}


def report(
    api: str, body: dict[str, Any], known: Iterable[str], refusal: ClawrapError | None
) -> dict[str, Any]:
    """The classification of ``body``'s top-level fields for ``api``.

    ``known``: the fields the dialect's decoder reads; ``refusal``: what decoding
    ``body`` raised (None when it would be served).
    """
    no_effect = NO_EFFECT.get(api, frozenset())
    readable = set(known) - no_effect
    honoured = sorted(k for k in body if k in readable)
    ignored = sorted(k for k in body if k not in readable)
    refused = None
    if refusal is not None:
        refused = {
            "param": refusal.param,
            "code": refusal.code,
            "status": refusal.status,
            "message": refusal.message,
        }
    return {
        "object": "compatibility",
        "api": api,
        "served": refusal is None,
        "honoured": honoured,
        "ignored": ignored,
        "refused": refused,
    }


def known_fields(api: str) -> frozenset[str]:
    """The top-level fields ``api``'s decoder reads."""
    if api == "anthropic":
        from clawrap.protocol.anthropic._models import _Body

        return frozenset(_Body.model_fields) | {"enable_tools", "claude"}
    from clawrap.protocol.openai._dialect import _ChatRequest

    return frozenset(_ChatRequest.model_fields) | {"enable_tools", "claude"}


__all__ = ["NO_EFFECT", "known_fields", "report"]
