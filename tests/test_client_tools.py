"""Client functions as CLI tools: names, schemas, signature, tool_choice (no CLI started)."""

from __future__ import annotations

from typing import Any

import pytest

from clawrap.claude._client_tools import (
    HANDLER_ERROR,
    PREFIX,
    SERVER_NAME,
    ClientTools,
    build_client_tools,
    input_schema,
    sdk_tool_name,
    sdk_tools,
    tools_signature,
)
from clawrap.core._request import CompletionRequest, NamedTool, TextPart, ToolChoice, ToolSpec, Turn

WEATHER = ToolSpec(
    "get_weather",
    "Weather for a city",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
        "additionalProperties": False,
        "$defs": {"X": {"type": "integer"}},
    },
)
CLOCK = ToolSpec("now", "The time", {"type": "object"})


def request(
    *tools: ToolSpec, tool_choice: ToolChoice = "auto", parallel: bool = True
) -> CompletionRequest:
    return CompletionRequest(
        model="claude-sonnet-4-5",
        requested_model="claude-sonnet-4-5",
        turns=(Turn("user", (TextPart("hi"),)),),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
    )


def built(req: CompletionRequest) -> ClientTools:
    tools = build_client_tools(req)
    assert tools is not None
    return tools


def test_no_tools_means_nothing_to_add() -> None:
    assert build_client_tools(request()) is None


def test_tool_choice_none_offers_no_tools() -> None:
    assert build_client_tools(request(WEATHER, tool_choice="none")) is None


def test_each_tool_is_allowed_under_its_prefixed_name() -> None:
    tools = built(request(WEATHER, CLOCK))
    assert tools.allowed_tools == ["mcp__clawrap__get_weather", "mcp__clawrap__now"]
    assert set(tools.mcp_servers) == {SERVER_NAME}


def test_client_name_maps_back_and_ignores_other_tools() -> None:
    tools = built(request(WEATHER))
    assert tools.client_name("mcp__clawrap__get_weather") == "get_weather"
    assert tools.client_name("Bash") is None
    assert tools.client_name("mcp__other__get_weather") is None


def test_schema_passes_through_verbatim() -> None:
    assert input_schema(WEATHER) == WEATHER.input_schema


def test_schema_without_properties_gets_an_empty_properties_object() -> None:
    # The SDK would otherwise read {"type": "object"} as a parameter named "type".
    assert input_schema(CLOCK) == {"type": "object", "properties": {}}


def test_schema_without_a_type_is_an_object() -> None:
    spec = ToolSpec("f", "", {"properties": {"a": {"type": "string"}}})
    assert input_schema(spec) == {"type": "object", "properties": {"a": {"type": "string"}}}


def test_sdk_tools_carry_the_client_schema() -> None:
    listed = {t.name: t.input_schema for t in sdk_tools(request(WEATHER, CLOCK))}
    assert listed == {"get_weather": WEATHER.input_schema, "now": input_schema(CLOCK)}


async def test_the_handler_never_runs_client_code() -> None:
    (tool,) = sdk_tools(request(WEATHER))
    result = await tool.handler({"city": "Paris"})
    assert result == {"content": [{"type": "text", "text": HANDLER_ERROR}], "is_error": True}


async def test_the_hook_defers_every_client_tool_call() -> None:
    matcher = built(request(WEATHER)).hooks["PreToolUse"][0]
    assert matcher.matcher == "mcp__clawrap__.*"
    hook_input: Any = {"hook_event_name": "PreToolUse", "tool_name": "mcp__clawrap__get_weather"}
    answer = await matcher.hooks[0](hook_input, "toolu_1", {"signal": None})
    assert answer == {
        "hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "defer"}
    }


def test_signature_is_stable_across_builds() -> None:
    assert built(request(WEATHER, CLOCK)).signature == built(request(WEATHER, CLOCK)).signature


def test_signature_ignores_the_order_tools_come_in() -> None:
    assert tools_signature(request(WEATHER, CLOCK)) == tools_signature(request(CLOCK, WEATHER))


@pytest.mark.parametrize(
    "other",
    [
        request(WEATHER),
        request(WEATHER, ToolSpec("now", "The time, now", {"type": "object"})),
        request(WEATHER, ToolSpec("now", "The time", {"type": "object", "required": ["tz"]})),
        request(WEATHER, CLOCK, tool_choice="required"),
        request(WEATHER, CLOCK, tool_choice=NamedTool("now")),
        request(WEATHER, CLOCK, parallel=False),
    ],
)
def test_signature_changes_with_anything_fixed_at_spawn(other: CompletionRequest) -> None:
    assert tools_signature(other) != tools_signature(request(WEATHER, CLOCK))


def test_auto_adds_no_instruction() -> None:
    tools = built(request(WEATHER))
    assert tools.system_suffix == ""
    assert tools.single_call is False


def test_required_asks_for_a_tool_call() -> None:
    assert (
        "must call at least one tool"
        in built(request(WEATHER, tool_choice="required")).system_suffix
    )


def test_a_named_choice_asks_for_that_tool() -> None:
    suffix = built(request(WEATHER, CLOCK, tool_choice=NamedTool("now"))).system_suffix
    assert "`now`" in suffix
    assert "`mcp__clawrap__now`" in suffix


def test_no_parallel_calls_asks_for_one_and_tells_the_backend() -> None:
    tools = built(request(WEATHER, parallel=False))
    assert tools.system_suffix == "Call at most one tool per reply."
    assert tools.single_call is True


def test_valid_names_keep_their_spelling() -> None:
    assert sdk_tool_name("get-weather_2") == "mcp__clawrap__get-weather_2"


@pytest.mark.parametrize("name", ["x" * 51, "files.read", "ns:tool", "名前"])
def test_names_the_api_would_refuse_get_a_valid_alias(name: str) -> None:
    alias = sdk_tool_name(name)
    assert alias.startswith(PREFIX)
    assert len(alias) <= 64
    assert alias.replace("-", "").replace("_", "").isalnum()
    assert alias.isascii()


def test_aliases_map_back_to_the_client_name() -> None:
    long_name = "a_really_long_function_name_that_some_frameworks_generate_x"
    tools = built(request(ToolSpec(long_name, "", {"type": "object"})))
    (alias,) = tools.allowed_tools
    assert tools.client_name(alias) == long_name


def test_a_repeated_name_is_offered_once() -> None:
    tools = built(request(WEATHER, ToolSpec("get_weather", "again", {"type": "object"})))
    assert tools.allowed_tools == ["mcp__clawrap__get_weather"]
