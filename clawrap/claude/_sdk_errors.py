"""SDK and CLI failures translated into :class:`~clawrap.core._errors.ClawrapError`.

Two sources of failure reach the backend:

- exceptions raised by claude-agent-sdk (the CLI is missing, will not start, dies,
  or prints something unreadable), translated by :func:`map_exceptions`;
- failed turns the CLI reports as data: an ``AssistantMessage`` with ``error``
  set and a ``ResultMessage`` with ``is_error`` (``api_error_status`` holds the
  upstream HTTP status), translated by :func:`error_from_result` and
  :func:`error_from_assistant`.

Every message here is written for the client. Nothing from the exception or the
CLI's own prose is passed through: it can hold server paths, gateway addresses
or key fragments.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKError,
    CLIConnectionError,
    CLIJSONDecodeError,
    CLINotFoundError,
    ProcessError,
    ResultError,
    ResultMessage,
)

from clawrap.claude._sdk_adapter import MessageParseError, is_sdk_failure
from clawrap.core._errors import ClawrapError

log = logging.getLogger("clawrap.backend")

Phase = Literal["start", "run"]

CLI_NOT_FOUND = (
    "The Claude Code CLI was not found. Install claude-agent-sdk (it bundles the CLI) "
    "or Claude Code itself, or point CLAWRAP_CLI_PATH at the claude executable."
)
CLI_NOT_STARTED = (
    "The Claude Code CLI could not be started. Check that CLAWRAP_CLI_PATH names a "
    "working claude executable and that `claude --version` runs on this machine."
)
CLI_FAILED = "The Claude Code process failed while answering. Please retry the request."
CLI_GARBLED = "The Claude Code process produced output that could not be read."
NOT_LOGGED_IN = (
    "Claude Code is not authenticated: the upstream rejected its credentials. "
    "Run `clawrap login` (or set a valid ANTHROPIC_API_KEY) on the server."
)
UNREACHABLE = "The model provider could not be reached. Please retry shortly."

# Substrings by which the CLI reports lost or missing credentials in prose.
_AUTH_MARKERS = (
    "invalid api key",
    "oauth token",
    "/login",
    "authentication_error",
    "failed to authenticate",
    "not logged in",
)


def cli_unavailable(*, not_found: bool) -> ClawrapError:
    """The CLI cannot run at all: a 503 saying what to do about it."""
    return ClawrapError(
        "overloaded",
        CLI_NOT_FOUND if not_found else CLI_NOT_STARTED,
        code="cli_not_found" if not_found else "cli_unavailable",
    )


def process_failed() -> ClawrapError:
    """The CLI process died or broke off mid-run."""
    return ClawrapError("api_error", CLI_FAILED, code="cli_process_failed")


def _looks_like_auth(text: str | None) -> bool:
    low = (text or "").lower()
    return any(marker in low for marker in _AUTH_MARKERS)


def error_for_status(status: int | None, text: str | None = None) -> ClawrapError:
    """The error for an upstream call that failed with HTTP ``status``.

    ``status`` None means the request never got an HTTP answer (refused,
    reset, timed out), unless ``text`` shows it was about credentials.
    ``text`` (the CLI's own description) is only inspected, never returned.
    """
    low = (text or "").lower()
    if status == 401 or (status is None and _looks_like_auth(text)):
        return ClawrapError("authentication", NOT_LOGGED_IN, code="upstream_authentication")
    if status is None:
        return ClawrapError("api_error", UNREACHABLE, code="upstream_unreachable")
    if status == 429:
        return ClawrapError(
            "rate_limit",
            "The model provider's rate limit was reached. Please retry later.",
            code="rate_limit_exceeded",
            # The CLI does not pass on the upstream's retry-after; clients still need one.
            retry_after=5.0,
        )
    if status in (503, 529) or "overloaded" in low:
        return ClawrapError(
            "overloaded",
            "The model provider is overloaded. Please retry shortly.",
            code="upstream_overloaded",
            retry_after=5.0,
        )
    if status == 400 and "prompt is too long" in low:
        return ClawrapError(
            "invalid_request",
            "The conversation is longer than the model's context window.",
            param="messages",
            code="context_length_exceeded",
        )
    if status == 400:
        return ClawrapError(
            "invalid_request",
            "The model provider rejected the request as invalid.",
            code="upstream_invalid_request",
        )
    if status == 403:
        return ClawrapError(
            "permission",
            "The model provider refused access to this model or feature.",
            code="upstream_permission",
        )
    if status == 404:
        return ClawrapError(
            "not_found",
            "The model provider does not know the requested model.",
            param="model",
            code="model_not_found",
        )
    if status == 413:
        return ClawrapError(
            "request_too_large",
            "The request is too large for the model provider.",
            code="upstream_request_too_large",
        )
    return ClawrapError(
        "api_error",
        f"The model provider failed to answer (HTTP {status}). Please retry.",
        code="upstream_error",
    )


def error_from_result(result: ResultMessage) -> ClawrapError | None:
    """The error a failed ``ResultMessage`` stands for, or None if the run succeeded.

    Interrupted turns (``terminal_reason`` ``aborted_*``) and turns that ended on
    the turn limit are not errors here: the caller decides what they mean.
    """
    if not result.is_error:
        return None
    reason = result.terminal_reason or ""
    if reason.startswith("aborted") or result.subtype == "error_max_turns":
        return None
    if result.api_error_status is not None or reason == "api_error":
        return error_for_status(result.api_error_status, result.result)
    if _looks_like_auth(result.result) or any(_looks_like_auth(e) for e in result.errors or ()):
        return error_for_status(401)
    if result.subtype == "error_max_budget_usd":
        return ClawrapError(
            "rate_limit",
            "The run was stopped after a model turn: it reached what its API key may still "
            "spend today or this month (usd_per_day, usd_per_month).",
            code="budget",
        )
    log.warning("CLI reported a failed run: subtype=%s reason=%s", result.subtype, reason)
    return process_failed()


_ASSISTANT_ERRORS: dict[str, int | None] = {
    "authentication_failed": 401,
    "rate_limit": 429,
    "invalid_request": 400,
}


def error_from_assistant(message: AssistantMessage) -> ClawrapError | None:
    """The error a synthetic ``AssistantMessage`` (``error`` set) reports, if any.

    The CLI follows it with a ``ResultMessage`` carrying the HTTP status, which is
    more precise; this is the fallback when that never arrives.
    """
    if message.error is None:
        return None
    text = " ".join(getattr(b, "text", "") for b in message.content)
    if message.error == "billing_error":
        return ClawrapError(
            "permission",
            "The Claude account behind this server has a billing problem.",
            code="billing_error",
        )
    return error_for_status(_ASSISTANT_ERRORS.get(message.error), text)


@contextmanager
def map_exceptions(phase: Phase = "run") -> Iterator[None]:
    """Translate SDK and OS exceptions raised inside into ClawrapError.

    ``phase`` "start" (spawning and connecting) turns failures into 503s telling
    the operator what to fix; "run" turns them into 502s. ClawrapError and
    cancellation pass through untouched, and so does anything that is neither the SDK's
    nor the operating system's failure: a bug is not a CLI failure.
    """
    try:
        yield
    except ClawrapError:
        raise
    except CLINotFoundError as exc:
        raise cli_unavailable(not_found=True) from exc
    except ResultError as exc:
        log.warning("CLI exited after a failed run: %s", exc.subtype)
        status = exc.api_error_status
        raise (
            error_for_status(status, exc.result)
            if status is not None or exc.terminal_reason == "api_error"
            else process_failed()
        ) from exc
    except (CLIJSONDecodeError, MessageParseError) as exc:
        log.warning("unreadable CLI output: %r", exc)
        raise ClawrapError("api_error", CLI_GARBLED, code="cli_bad_output") from exc
    except (CLIConnectionError, ProcessError, ClaudeSDKError, OSError) as exc:
        log.warning("CLI failure during %s: %r", phase, exc)
        if phase == "start":
            raise cli_unavailable(not_found=False) from exc
        raise process_failed() from exc
    except Exception as exc:
        if not is_sdk_failure(exc):
            # A bug, ours or the SDK's: not the CLI's failure, so not retried on another
            # process; the exchange answers it with a 500 and logs the traceback.
            raise
        # How the SDK reports a failed control request (an error answer, a timeout).
        log.warning("CLI control request failed during %s: %r", phase, exc)
        if phase == "start":
            raise cli_unavailable(not_found=False) from exc
        raise process_failed() from exc


__all__ = [
    "cli_unavailable",
    "error_for_status",
    "error_from_assistant",
    "error_from_result",
    "map_exceptions",
    "process_failed",
]
