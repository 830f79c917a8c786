"""The model catalogue: which model ids clawrap serves and how they map to the CLI.

The table follows the Claude Code CLI that ``claude-agent-sdk`` bundles (read from
CLI 2.1.337, whose own model table gives each model's context window and output
limit; a test compares the aliases with what the bundled CLI reports at start):
every model id it knows, with its first-party spelling (``claude-haiku-4-5`` and
``claude-haiku-4-5-20251001``) and dated snapshots, passes to the CLI as it is;
the aliases ``opus``, ``sonnet``, ``haiku`` and ``fable`` pass as aliases, which
the CLI resolves to its current model of that family.

Beyond the table: ids the live model list last reported (:func:`note_live_ids`,
called by the route that reads it; the one piece of process-wide state here),
operator mappings (``Settings.model_map``,
``gpt-4o=sonnet``: a client with a hard-coded id gets the mapped model),
``Settings.models`` (replaces the advertised list and is served too), and
``allow_any_model`` (any id goes to the CLI). Anything else is a 404.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError, invalid_request


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    family: str
    display_name: str
    context_window: int | None = None
    max_output_tokens: int | None = None
    # The id the first-party API knows it by, when it differs (a dated snapshot).
    first_party_id: str | None = None


def _m(
    id_: str, family: str, name: str, window: int | None, output: int, first: str | None = None
) -> ModelInfo:
    return ModelInfo(id_, family, f"Claude {name}", window, output, first)


_M = 1_000_000
_K = 200_000

# Newest first within each family, as the CLI lists them.
CATALOGUE: tuple[ModelInfo, ...] = (
    _m("claude-opus-5-5", "opus", "Opus 5.5", _M, 128_000),
    _m("claude-opus-5", "opus", "Opus 5", _M, 128_000),
    _m("claude-opus-4-8", "opus", "Opus 4.8", _M, 128_000),
    _m("claude-opus-4-7", "opus", "Opus 4.7", _M, 128_000),
    _m("claude-opus-4-6", "opus", "Opus 4.6", _K, 128_000),
    _m("claude-opus-4-5", "opus", "Opus 4.5", _K, 64_000, "claude-opus-4-5-20251101"),
    _m("claude-opus-4-1", "opus", "Opus 4.1", _K, 32_000, "claude-opus-4-1-20250805"),
    _m("claude-opus-4-0", "opus", "Opus 4", _K, 32_000, "claude-opus-4-20250514"),
    _m("claude-sonnet-5-5", "sonnet", "Sonnet 5.5", _M, 128_000),
    _m("claude-sonnet-5", "sonnet", "Sonnet 5", _M, 128_000),
    _m("claude-sonnet-4-6", "sonnet", "Sonnet 4.6", _K, 128_000),
    _m("claude-sonnet-4-5", "sonnet", "Sonnet 4.5", _K, 64_000, "claude-sonnet-4-5-20250929"),
    _m("claude-sonnet-4-0", "sonnet", "Sonnet 4", _K, 64_000, "claude-sonnet-4-20250514"),
    _m("claude-haiku-5-5", "haiku", "Haiku 5.5", _M, 128_000),
    _m("claude-haiku-4-5", "haiku", "Haiku 4.5", _K, 64_000, "claude-haiku-4-5-20251001"),
    _m("claude-fable-5-2", "fable", "Fable 5.2", _M, 128_000),
    _m("claude-fable-5-1", "fable", "Fable 5.1", _M, 128_000),
    _m("claude-fable-5", "fable", "Fable 5", _M, 128_000),
    _m("claude-mythos-5-2", "mythos", "Mythos 5.2", _M, 128_000),
    _m("claude-mythos-5-1", "mythos", "Mythos 5.1", _M, 128_000),
    _m("claude-mythos-5", "mythos", "Mythos 5", _M, 128_000),
)

# The CLI's aliases and the model each resolves to (first-party API).
ALIAS_TARGETS: dict[str, str] = {
    "opus": "claude-opus-5-5",
    "sonnet": "claude-sonnet-5-5",
    "haiku": "claude-haiku-5-5",
    "fable": "claude-fable-5-2",
}
ALIASES: tuple[str, ...] = tuple(ALIAS_TARGETS)

# Older spellings the CLI still accepts.
_LEGACY_IDS = ("claude-sonnet-4", "claude-opus-4")

# Ids the upstream's live model list reported last (served like catalogue ids).
_live_ids: frozenset[str] = frozenset()


def note_live_ids(ids: Iterable[str]) -> None:
    """Remember the ids of the live model list, so that each of them is served."""
    global _live_ids
    _live_ids = frozenset(ids)


def advertised_models(settings: Settings) -> list[str]:
    """The ids ``GET /v1/models`` lists without a live list, aliases included."""
    if settings.models:
        return list(settings.models)
    return [m.id for m in CATALOGUE] + list(ALIASES)


def model_info(model_id: str) -> ModelInfo | None:
    """The catalogue entry for an id, an alias, a first-party id or a dated snapshot."""
    model_id = ALIAS_TARGETS.get(model_id, model_id)
    for m in CATALOGUE:
        if model_id in (m.id, m.first_party_id) or model_id.startswith(m.id + "-20"):
            return m
    return None


def parse_model_map(entries: Iterable[str]) -> dict[str, str]:
    """``("gpt-4o=sonnet", ...)`` -> ``{"gpt-4o": "sonnet"}``; ValueError for a bad entry."""
    out: dict[str, str] = {}
    for entry in entries:
        source, sep, target = (part.strip() for part in entry.partition("="))
        if not sep or not source or not target:
            raise ValueError(f"{entry!r} is not of the form requested=served")
        out[source] = target
    return out


def _known(model_id: str, extra_ids: tuple[str, ...]) -> bool:
    return (
        model_id in ALIAS_TARGETS
        or model_info(model_id) is not None
        or model_id in _LEGACY_IDS
        or any(model_id.startswith(legacy + "-20") for legacy in _LEGACY_IDS)
        or model_id in extra_ids
        or model_id in _live_ids
    )


# Longer than any model id; a bound on what reaches the CLI's command line and the ledger.
MAX_MODEL_ID = 256


def resolve_model(
    requested: str | None,
    settings: Settings,
    *,
    param: str = "model",
    extra_ids: Iterable[str] = (),
) -> str:
    """The id to hand to the CLI for ``requested`` (after the operator's mapping).

    ``extra_ids``: more ids to serve. Raises a 404 ``model_not_found``
    listing the known models when ``requested`` is unknown and ``allow_any_model`` is off.
    """
    if not requested:
        requested = settings.default_model
    if len(requested) > MAX_MODEL_ID or not requested.isprintable():
        # It becomes a command-line argument of the CLI and a column of the usage ledger.
        raise invalid_request(
            f"'{param}' must be a model id: printable, at most {MAX_MODEL_ID} characters.",
            param=param,
        )
    mapped = parse_model_map(settings.model_map).get(requested)
    if mapped is not None:
        return mapped
    extra = tuple(extra_ids)
    if requested in settings.models or settings.allow_any_model or _known(requested, extra):
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
    "ALIAS_TARGETS",
    "CATALOGUE",
    "MAX_MODEL_ID",
    "ModelInfo",
    "advertised_models",
    "model_info",
    "note_live_ids",
    "parse_model_map",
    "resolve_model",
]
