"""Server-sent events framing (sans-IO): objects in, bytes out.

Every event ends with a blank line; clients drop an event without one.
JSON is compact and UTF-8 (not ASCII-escaped), one ``data:`` line per event.
"""

from __future__ import annotations

import json
from typing import Any

DONE = b"data: [DONE]\n\n"


def dumps(obj: Any) -> str:
    """Compact JSON as clients expect it on the wire."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def sse_data(obj: Any) -> bytes:
    """``data: <json>`` (OpenAI style: no event name)."""
    return f"data: {dumps(obj)}\n\n".encode()


def sse_event(name: str, obj: Any) -> bytes:
    """``event: <name>`` then ``data: <json>`` (Anthropic style)."""
    return f"event: {name}\ndata: {dumps(obj)}\n\n".encode()


def sse_comment(text: str = "") -> bytes:
    """A comment line, which every SSE client ignores: a keep-alive."""
    return f": {text}\n\n".encode()


__all__ = ["DONE", "dumps", "sse_comment", "sse_data", "sse_event"]
