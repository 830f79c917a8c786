"""SDK exceptions and failed turns become ClawrapErrors with clean, client-facing text.

The failed results below are what the real CLI emits (measured against the scripted
model) when the upstream answers 401, 429, 529, 500 or cannot be reached.
"""

from __future__ import annotations

from typing import Any

import pytest
from claude_agent_sdk import (
    AssistantMessage,
    CLIConnectionError,
    CLIJSONDecodeError,
    CLINotFoundError,
    ProcessError,
    ResultMessage,
    TextBlock,
)

from clawrap.claude._sdk_errors import (
    error_for_status,
    error_from_assistant,
    error_from_result,
    map_exceptions,
)
from clawrap.core._errors import ClawrapError

SECRET = "/home/someone/.secret sk-ant-XYZ 127.0.0.1:8766"


def failed_result(status: int | None, text: str, **overrides: Any) -> ResultMessage:
    fields: dict[str, Any] = {
        "subtype": "success",
        "duration_ms": 60,
        "duration_api_ms": 0,
        "is_error": True,
        "num_turns": 1,
        "session_id": "s",
        "stop_reason": "stop_sequence",
        "total_cost_usd": 0,
        "result": text,
        "api_error_status": status,
        "terminal_reason": "api_error",
    }
    fields.update(overrides)
    return ResultMessage(**fields)


def raised(exc: BaseException, phase: Any = "run") -> ClawrapError:
    with pytest.raises(ClawrapError) as info, map_exceptions(phase):
        raise exc
    return info.value


@pytest.mark.parametrize(
    ("status", "text", "kind", "http"),
    [
        (401, "Failed to authenticate. API Error: 401 mock 401", "authentication", 401),
        (429, "API Error: Request rejected (429) · mock 429", "rate_limit", 429),
        (529, "API Error: 529 mock 529. This is a server-side issue", "overloaded", 503),
        (500, "API Error: 500 mock 500. This is a server-side issue", "api_error", 502),
        (None, "API Error: Connection refused (ECONNREFUSED)", "api_error", 502),
        (None, "Invalid API key · Please run /login", "authentication", 401),
    ],
)
def test_a_failed_upstream_call_maps_to_the_matching_client_error(
    status: int | None, text: str, kind: str, http: int
) -> None:
    error = error_from_result(failed_result(status, text))
    assert error is not None
    assert (error.kind, error.status) == (kind, http)


def test_an_overloaded_upstream_suggests_when_to_retry() -> None:
    error = error_from_result(failed_result(529, "overloaded"))
    assert error is not None and error.retry_after is not None


def test_a_too_long_prompt_is_the_clients_context_length_error() -> None:
    error = error_for_status(400, "API Error: 400 prompt is too long: 210000 tokens > 200000")
    assert (error.kind, error.code, error.param) == (
        "invalid_request",
        "context_length_exceeded",
        "messages",
    )


def test_an_unknown_model_upstream_is_a_404_on_the_model_field() -> None:
    error = error_for_status(404, "model: claude-nope")
    assert (error.kind, error.param) == ("not_found", "model")


def test_error_messages_never_repeat_the_clis_text() -> None:
    for status in (None, 400, 401, 403, 404, 413, 429, 500, 503, 529):
        error = error_for_status(status, SECRET)
        assert SECRET not in error.message
        assert "sk-ant" not in error.message and "127.0.0.1" not in error.message


def test_a_successful_result_is_not_an_error() -> None:
    assert error_from_result(failed_result(None, "ok", is_error=False)) is None


def test_an_interrupted_turn_is_not_an_error() -> None:
    result = failed_result(
        None, "", subtype="error_during_execution", terminal_reason="aborted_streaming"
    )
    assert error_from_result(result) is None


def test_an_unexplained_failed_run_is_a_process_failure() -> None:
    result = failed_result(None, "", subtype="error_during_execution", terminal_reason=None)
    error = error_from_result(result)
    assert error is not None and error.code == "cli_process_failed"


def test_a_synthetic_authentication_message_is_a_401() -> None:
    message = AssistantMessage(
        content=[TextBlock("Failed to authenticate. API Error: 401")],
        model="<synthetic>",
        error="authentication_failed",
    )
    error = error_from_assistant(message)
    assert error is not None and error.status == 401


def test_a_synthetic_rate_limit_message_is_a_429() -> None:
    message = AssistantMessage(content=[], model="<synthetic>", error="rate_limit")
    error = error_from_assistant(message)
    assert error is not None and error.status == 429


def test_a_missing_cli_is_a_503_saying_how_to_install_it() -> None:
    error = raised(CLINotFoundError("Claude Code not found", cli_path=SECRET), "start")
    assert (error.kind, error.status, error.code) == ("overloaded", 503, "cli_not_found")
    assert "CLAWRAP_CLI_PATH" in error.message and SECRET not in error.message


def test_a_cli_that_cannot_start_is_a_503_naming_the_setting_to_check() -> None:
    error = raised(CLIConnectionError(SECRET), "start")
    assert (error.status, error.code) == (503, "cli_unavailable")
    assert "CLAWRAP_CLI_PATH" in error.message and SECRET not in error.message


def test_an_unexecutable_cli_path_is_a_503() -> None:
    error = raised(PermissionError(13, "Permission denied", SECRET), "start")
    assert error.status == 503


def test_a_process_crash_mid_run_is_a_502() -> None:
    error = raised(ProcessError("Command failed", exit_code=1, stderr=SECRET))
    assert (error.kind, error.status, error.code) == ("api_error", 502, "cli_process_failed")
    assert SECRET not in error.message


def test_garbage_output_is_a_502() -> None:
    error = raised(CLIJSONDecodeError(SECRET, ValueError("bad")))
    assert (error.status, error.code) == (502, "cli_bad_output")


def test_a_bare_exception_from_the_control_protocol_is_a_502() -> None:
    error = raised(Exception(SECRET))
    assert error.status == 502 and SECRET not in error.message


def test_clawrap_errors_pass_through_unchanged() -> None:
    original = ClawrapError("conflict", "busy")
    assert raised(original) is original
