"""The model catalogue: which model ids clawrap advertises and how they map to the CLI.

Claude model ids pass to the CLI as they are; the aliases ``opus``, ``sonnet`` and
``haiku`` pass as aliases, which the CLI resolves to its current model of that
family. ``Settings.models`` replaces the advertised list; ``allow_any_model``
lets unknown ids through to the CLI instead of answering 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    family: str
    context_window: int = 200_000
    max_output_tokens: int | None = None
    # USD per million tokens, where published
    input_price: float | None = None
    output_price: float | None = None


CATALOGUE: tuple[ModelInfo, ...] = (
    ModelInfo("claude-opus-5", "opus"),
    ModelInfo("claude-sonnet-5", "sonnet"),
    ModelInfo("claude-opus-4-8", "opus"),
    ModelInfo("claude-opus-4-7", "opus"),
    ModelInfo("claude-opus-4-6", "opus"),
    ModelInfo("claude-sonnet-4-6", "sonnet"),
    ModelInfo("claude-opus-4-5", "opus", 200_000, 64_000, 5.0, 25.0),
    ModelInfo("claude-sonnet-4-5", "sonnet", 200_000, 64_000, 3.0, 15.0),
    ModelInfo("claude-haiku-4-5", "haiku", 200_000, 64_000, 1.0, 5.0),
    ModelInfo("claude-opus-4-1", "opus", 200_000, 32_000, 15.0, 75.0),
    ModelInfo("claude-sonnet-4-0", "sonnet", 200_000, 64_000, 3.0, 15.0),
    ModelInfo("claude-opus-4-0", "opus", 200_000, 32_000, 15.0, 75.0),
)

ALIASES: tuple[str, ...] = ("opus", "sonnet", "haiku")

# Dated snapshot ids clients still send; they pass to the CLI unchanged.
_SNAPSHOT_PREFIXES = (
    *(m.id + "-20" for m in CATALOGUE),
    "claude-sonnet-4-20",
    "claude-opus-4-20",
)


def advertised_models(settings: Settings) -> list[str]:
    """The ids ``GET /v1/models`` lists, aliases included."""
    if settings.models:
        return list(settings.models)
    return [m.id for m in CATALOGUE] + list(ALIASES)


def model_info(model_id: str) -> ModelInfo | None:
    for m in CATALOGUE:
        if m.id == model_id or model_id.startswith(m.id + "-20"):
            return m
    return None


def resolve_model(requested: str | None, settings: Settings, *, param: str = "model") -> str:
    """The id to hand to the CLI for ``requested``.

    Raises a 404 ``model_not_found`` listing the known models when ``requested``
    is unknown and ``allow_any_model`` is off.
    """
    if not requested:
        requested = settings.default_model
    if requested in settings.models or settings.allow_any_model:
        return requested
    if requested in ALIASES or model_info(requested) is not None:
        return requested
    if requested.startswith(_SNAPSHOT_PREFIXES):
        return requested
    known = ", ".join(advertised_models(settings))
    raise ClawrapError(
        "not_found",
        f"The model {requested!r} does not exist or is not served here. Known models: {known}.",
        param=param,
        code="model_not_found",
    )


__all__ = [
    "ALIASES",
    "CATALOGUE",
    "ModelInfo",
    "advertised_models",
    "model_info",
    "resolve_model",
]
