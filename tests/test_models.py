"""The model catalogue: what is served, how ids map, and the live list's parsing."""

from __future__ import annotations

import pytest

from clawrap.claude._live_models import list_url, parse_models
from clawrap.core._config import Settings, SettingsError
from clawrap.core._errors import ClawrapError
from clawrap.core._models import (
    ALIAS_TARGETS,
    CATALOGUE,
    model_info,
    note_live_ids,
    parse_model_map,
    resolve_model,
)


@pytest.mark.parametrize(
    "model",
    [
        "sonnet",
        "opus",
        "haiku",
        "fable",
        "claude-sonnet-5-5",
        "claude-opus-5-5",
        "claude-fable-5-2",
        "claude-haiku-4-5-20251001",
        "claude-sonnet-4-5-20250929",
        "claude-opus-4-20250514",
    ],
)
def test_every_alias_and_id_the_bundled_cli_knows_is_served_as_it_is(model: str) -> None:
    assert resolve_model(model, Settings()) == model


def test_a_non_claude_id_is_404_model_not_found() -> None:
    with pytest.raises(ClawrapError) as caught:
        resolve_model("gpt-4o", Settings())
    assert caught.value.status == 404 and caught.value.code == "model_not_found"


def test_the_operator_maps_a_hard_coded_id_to_a_claude_model() -> None:
    settings = Settings(model_map=("gpt-4o=sonnet", "o3 = opus"))
    assert resolve_model("gpt-4o", settings) == "sonnet"
    assert resolve_model("o3", settings) == "opus"


def test_a_malformed_model_map_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match=r"CLAWRAP_MODEL_MAP.*requested=served"):
        Settings.from_env({"CLAWRAP_MODEL_MAP": "gpt-4o=sonnet,nonsense"})
    assert Settings.from_env({"CLAWRAP_MODEL_MAP": "a=b"}).model_map == ("a=b",)
    with pytest.raises(ValueError):
        parse_model_map(["=sonnet"])


def test_ids_of_the_live_list_are_served() -> None:
    try:
        note_live_ids(["claude-new-9"])
        assert resolve_model("claude-new-9", Settings()) == "claude-new-9"
    finally:
        note_live_ids([])
    with pytest.raises(ClawrapError):
        resolve_model("claude-new-9", Settings())


def test_aliases_name_catalogue_models_with_limits() -> None:
    for alias, target in ALIAS_TARGETS.items():
        info = model_info(alias)
        assert info is not None and info.id == target
    assert all(m.context_window and m.max_output_tokens for m in CATALOGUE)


def test_the_live_list_needs_an_api_key_and_no_cloud_provider() -> None:
    assert list_url({}) is None
    assert list_url({"ANTHROPIC_API_KEY": "k"}) == "https://api.anthropic.com/v1/models?limit=1000"
    base = {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/"}
    assert list_url(base) == "http://127.0.0.1:9/v1/models?limit=1000"
    assert list_url({"ANTHROPIC_API_KEY": "k", "CLAUDE_CODE_USE_BEDROCK": "1"}) is None


def test_the_live_list_keeps_only_well_formed_fields() -> None:
    body = {
        "data": [
            {"id": "claude-x", "display_name": "X", "max_input_tokens": 5, "max_tokens": True},
            {"id": 7},
            "junk",
            {"id": "claude-y", "max_input_tokens": -1, "display_name": "y" * 500},
        ]
    }
    assert parse_models(body) == [
        {"id": "claude-x", "display_name": "X", "max_input_tokens": 5},
        {"id": "claude-y"},
    ]
    with pytest.raises(ValueError):
        parse_models({"data": "nope"})


@pytest.mark.parametrize("model", ["sonnet\x00x", "a\nb", "x" * 257])
def test_a_model_id_that_is_not_printable_or_too_long_is_400_even_when_any_is_allowed(
    model: str,
) -> None:
    with pytest.raises(ClawrapError) as caught:
        resolve_model(model, Settings(allow_any_model=True), param="model")
    assert caught.value.status == 400
    assert caught.value.param == "model"
