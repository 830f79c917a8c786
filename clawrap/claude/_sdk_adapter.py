"""Everything clawrap uses of claude-agent-sdk that the SDK does not publish, in one place.

The SDK's public surface (``ClaudeSDKClient``, its options, message types and
exported errors) is used directly elsewhere. What it does not publish, and
clawrap needs anyway, goes through here only:

- the CLI's OS process under a connected client (``client._transport._process``,
  an ``anyio`` process): its pid, whether it exited, and signalling it, since
  the SDK offers no bounded way to end a CLI that will not stop;
- the control request channel (``client._query._send_control_request``), for
  the ``rewind_conversation`` request ``ClaudeSDKClient`` has no method for, and
  for the fields of ``set_model`` its ``set_model`` does not send
  (:func:`set_system_prompt`);
- ``MessageParseError``, raised by the SDK's message parser but not exported;
- the bare ``Exception`` the SDK raises for a failed control request (an error
  answer or a timeout, ``interrupt`` and ``set_model`` included), which
  :func:`is_sdk_failure` tells apart from a bug.

``tests/test_sdk_adapter.py`` checks each of these against the installed SDK and
says what changed when an SDK release breaks one; ``pyproject.toml`` pins the
SDK to the releases the suite passed on.
"""

from __future__ import annotations

from typing import Any, Protocol

from claude_agent_sdk import ClaudeSDKClient
from claude_agent_sdk._errors import MessageParseError


class CliOsProcess(Protocol):
    """The part of the SDK transport's ``anyio`` process that clawrap uses."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    async def wait(self) -> int: ...


def cli_process(client: ClaudeSDKClient) -> CliOsProcess | None:
    """The OS process of ``client``'s CLI, or None before ``connect()`` started it and after
    ``disconnect()`` (the SDK drops it then)."""
    transport = getattr(client, "_transport", None)
    process: Any = getattr(transport, "_process", None)
    return process  # type: ignore[no-any-return]


def cli_pid(client: ClaudeSDKClient) -> int | None:
    """The pid of ``client``'s running CLI, or None when it has none or it has exited.

    Read it while the client is connected: after ``disconnect()`` it is gone.
    """
    process = cli_process(client)
    pid = getattr(process, "pid", None)
    if not isinstance(pid, int) or getattr(process, "returncode", None) is not None:
        return None
    return pid


async def control_request(
    client: ClaudeSDKClient, request: dict[str, Any], *, answer_within: float
) -> dict[str, Any]:
    """Send a control request the client has no method for; the CLI's answer.

    Raises what the SDK raises: a bare ``Exception`` for an error answer or no
    answer within ``answer_within`` seconds (see :func:`is_sdk_failure`).
    """
    query: Any = getattr(client, "_query", None)
    if query is None:
        raise RuntimeError("control_request needs a connected ClaudeSDKClient")
    response: dict[str, Any] = await query._send_control_request(request, timeout=answer_within)
    return response


async def set_system_prompt(
    client: ClaudeSDKClient,
    model: str,
    system_prompt: str,
    *,
    only_if_current: bool,
    answer_within: float,
) -> dict[str, Any]:
    """Replace the system prompt of ``client``'s CLI, which runs ``model``.

    The CLI's ``set_model`` control request takes two fields the SDK does not send:
    ``system_prompt`` (non-empty) replaces the prompt the process was started with
    (re-sending the current model makes it a prompt-only change), and
    ``only_if_model_is_current`` makes the request fail ("model_not_current")
    rather than switch models when ``model`` is not the one the session runs. With
    it no upstream call is made, which a full model id would otherwise cost; but it
    always fails for a session on ``haiku`` (its plan mode runs another model), so
    for an alias (resolved locally, no upstream call either) it is left out.

    The CLI sends the prompt it recorded on the conversation's first request for as
    long as that conversation lasts, so this is for a process whose conversation is
    empty (a new or rewound one): its next request carries the new prompt, nothing
    of the old. Measured with CLI 2.1.337: 2-5 ms. Builds without the fields answer
    success without applying them, so callers use it only with the bundled CLI.

    Raises like :func:`control_request` (a refusal is a bare ``Exception``).
    """
    request: dict[str, Any] = {
        "subtype": "set_model",
        "model": model,
        "system_prompt": system_prompt,
    }
    if only_if_current:
        request["only_if_model_is_current"] = True
    return await control_request(client, request, answer_within=answer_within)


def is_sdk_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is how the SDK reports a failed control request or a broken message
    stream: a plain ``Exception`` (no subclass), whose text says what went wrong.

    Anything else that is not one of the SDK's exported errors is a bug.
    """
    return type(exc) is Exception


__all__ = [
    "CliOsProcess",
    "MessageParseError",
    "cli_pid",
    "cli_process",
    "control_request",
    "is_sdk_failure",
    "set_system_prompt",
]
