"""The bodies of ``GET /v1/models`` and ``GET /v1/models/{id}``, in OpenAI's or Anthropic's shape.

OpenAI: ``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by",
"context_window", "max_output_tokens"}]}`` (the last two where known).
Anthropic (clients sending ``anthropic-version``): ``{"data": [{"type": "model", "id",
"display_name", "created_at", "max_input_tokens", "max_tokens"}], "has_more": false,
"first_id", "last_id"}``.

The list is the live one when the backend has it (the upstream's models, then the
aliases), else the catalogue (or ``Settings.models``). Entries of the live list keep
the upstream's names, dates and limits; the catalogue fills in what it knows. The
catalogue has no release dates: ``created`` is when this server started.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

from clawrap.core._config import Settings
from clawrap.core._models import ALIAS_TARGETS, advertised_models, model_info, resolve_model

Shape = Literal["openai", "anthropic"]
Live = list[dict[str, Any]] | None


def advertised(settings: Settings, live: Live = None) -> list[str]:
    if live is not None and not settings.models:
        ids = [m["id"] for m in live]
        return ids + [a for a in ALIAS_TARGETS if a not in ids]
    return advertised_models(settings)


def display_name(model_id: str) -> str:
    """``claude-sonnet-4-5`` -> ``Claude Sonnet 4.5``; ``sonnet`` -> ``Claude Sonnet (latest)``."""
    if model_id in ALIAS_TARGETS:
        return f"Claude {model_id.capitalize()} (latest)"
    info = model_info(model_id)
    if info is not None and info.id == model_id:
        return info.display_name
    parts = model_id.split("-")
    if len(parts) >= 2 and parts[0] == "claude":
        # Version numbers are short; a dated snapshot suffix (20250929) is not part of the name.
        version = ".".join(p for p in parts[2:] if p.isdigit() and len(p) <= 2)
        return f"Claude {parts[1].capitalize()} {version}".strip()
    return model_id


def _entry(model_id: str, shape: Shape, created: int, live: dict[str, Any]) -> dict[str, Any]:
    info = model_info(model_id)
    window = live.get("max_input_tokens", info.context_window if info else None)
    output = live.get("max_tokens", info.max_output_tokens if info else None)
    if shape == "anthropic":
        stamp = datetime.datetime.fromtimestamp(created, datetime.UTC)
        entry: dict[str, Any] = {
            "type": "model",
            "id": model_id,
            "display_name": live.get("display_name") or display_name(model_id),
            "created_at": live.get("created_at") or stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lifecycle": "active",
        }
        if window is not None:
            entry["max_input_tokens"] = window
        if output is not None:
            entry["max_tokens"] = output
        return entry
    entry = {"id": model_id, "object": "model", "created": created, "owned_by": "anthropic"}
    if window is not None:
        entry["context_window"] = window
    if output is not None:
        entry["max_output_tokens"] = output
    return entry


def models_body(
    settings: Settings, shape: Shape, created: int, live: Live = None
) -> dict[str, Any]:
    ids = advertised(settings, live)
    upstream = {m["id"]: m for m in live or ()}
    data = [_entry(m, shape, created, upstream.get(m, {})) for m in ids]
    if shape == "anthropic":
        return {
            "data": data,
            "has_more": False,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
        }
    return {"object": "list", "data": data}


def model_object(
    settings: Settings, model_id: str, shape: Shape, created: int, live: Live = None
) -> dict[str, Any]:
    """One model; a 404 ``model_not_found`` (ClawrapError) for an id this server does not serve."""
    upstream = {m["id"]: m for m in live or ()}
    if model_id not in advertised(settings, live):
        resolve_model(model_id, settings, extra_ids=upstream)
    return _entry(model_id, shape, created, upstream.get(model_id, {}))


__all__ = ["advertised", "display_name", "model_object", "models_body"]
