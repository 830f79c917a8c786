"""The bodies of ``GET /v1/models`` and ``GET /v1/models/{id}``, in OpenAI's or Anthropic's shape.

OpenAI: ``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}``.
Anthropic (clients sending ``anthropic-version``): ``{"data": [{"type": "model", "id",
"display_name", "created_at"}], "has_more": false, "first_id", "last_id"}``.
The catalogue carries no release dates, so ``created`` is when this server started.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

from clawrap.core._config import Settings
from clawrap.core._models import ALIASES, advertised_models, resolve_model

Shape = Literal["openai", "anthropic"]


def advertised(settings: Settings) -> list[str]:
    return advertised_models(settings)


def display_name(model_id: str) -> str:
    """``claude-sonnet-4-5`` -> ``Claude Sonnet 4.5``; ``sonnet`` -> ``Claude Sonnet (latest)``."""
    if model_id in ALIASES:
        return f"Claude {model_id.capitalize()} (latest)"
    parts = model_id.split("-")
    if len(parts) >= 2 and parts[0] == "claude":
        # Version numbers are short; a dated snapshot suffix (20250929) is not part of the name.
        version = ".".join(p for p in parts[2:] if p.isdigit() and len(p) <= 2)
        return f"Claude {parts[1].capitalize()} {version}".strip()
    return model_id


def _entry(model_id: str, shape: Shape, created: int) -> dict[str, Any]:
    if shape == "anthropic":
        stamp = datetime.datetime.fromtimestamp(created, datetime.UTC)
        return {
            "type": "model",
            "id": model_id,
            "display_name": display_name(model_id),
            "created_at": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    return {"id": model_id, "object": "model", "created": created, "owned_by": "anthropic"}


def models_body(settings: Settings, shape: Shape, created: int) -> dict[str, Any]:
    ids = advertised(settings)
    data = [_entry(m, shape, created) for m in ids]
    if shape == "anthropic":
        return {
            "data": data,
            "has_more": False,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
        }
    return {"object": "list", "data": data}


def model_object(settings: Settings, model_id: str, shape: Shape, created: int) -> dict[str, Any]:
    """One model; a 404 ``model_not_found`` (ClawrapError) for an id this server does not serve."""
    if model_id not in advertised(settings):
        resolve_model(model_id, settings)
    return _entry(model_id, shape, created)


__all__ = ["advertised", "display_name", "model_object", "models_body"]
