"""Conversation history for the CLI: earlier turns become a transcript the CLI resumes.

(Placeholder: the single-turn path only; the transcript writer replaces it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import invalid_request
from ._request import CompletionRequest, ImagePart, Part, TextPart


@dataclass(frozen=True, slots=True)
class HistoryPlan:
    """How to hand a request's conversation to a CLI process.

    ``resume``: the session id of a transcript written for the earlier turns
    (the process must be spawned with ``resume=`` it), or None for a fresh
    conversation. ``prompt``: the user message to send now, Messages-API shaped
    (``{"role": "user", "content": [blocks]}``).
    """

    resume: str | None
    prompt: dict[str, Any]


def to_content_blocks(parts: tuple[Part, ...]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, TextPart):
            blocks.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart) and p.url is None:
            blocks.append(
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": p.media_type, "data": p.data},
                }
            )
        else:
            raise invalid_request("This content is not supported yet.", param="messages")
    return blocks


def plan_history(request: CompletionRequest, config_dir: Path, cwd: str) -> HistoryPlan:
    """Write what the CLI needs to see the earlier turns; return how to start it."""
    if len(request.turns) != 1 or request.turns[0].role != "user":
        raise invalid_request("Multi-turn history is not supported yet.", param="messages")
    return HistoryPlan(None, {"role": "user", "content": to_content_blocks(request.turns[0].parts)})


__all__ = ["HistoryPlan", "plan_history", "to_content_blocks"]
