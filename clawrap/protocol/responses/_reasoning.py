"""A thinking block carried by a ``reasoning`` item's ``encrypted_content`` (sans-IO).

Claude's thinking blocks must go back upstream with their text and signature intact
for the model to continue a turn that used tools. Responses API clients (Codex
asks with ``include: ["reasoning.encrypted_content"]``) round-trip an opaque
``encrypted_content`` string instead, so the block travels in it: a version prefix
and the base64 of a small JSON object. It is not encrypted (the signature is what
keeps it honest upstream, which rejects a thinking block that was altered), only
opaque to clients. Anything else in that field (another server's blob) is ignored.
"""

from __future__ import annotations

import base64
import binascii
import json

from clawrap.core._request import ThinkingPart

PREFIX = "clawrap.thinking.v1:"


def encode_thinking(thinking: str, signature: str | None) -> str:
    """``encrypted_content`` for a thinking block."""
    raw = json.dumps({"thinking": thinking, "signature": signature}, separators=(",", ":"))
    return PREFIX + base64.b64encode(raw.encode()).decode("ascii")


def decode_thinking(content: str) -> ThinkingPart | None:
    """The thinking block in ``content``; None when it is not one clawrap wrote."""
    if not content.startswith(PREFIX):
        return None
    try:
        obj = json.loads(base64.b64decode(content[len(PREFIX) :], validate=True))
    except (binascii.Error, ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    thinking, signature = obj.get("thinking"), obj.get("signature")
    if not isinstance(thinking, str) or not isinstance(signature, str | None):
        return None
    return ThinkingPart(thinking, signature)


__all__ = ["PREFIX", "decode_thinking", "encode_thinking"]
