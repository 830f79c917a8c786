"""One Claude Code CLI process: a connected ``ClaudeSDKClient`` and the few operations on it.

:class:`CliProcess` sends user messages (verbatim), reads the CLI's messages,
interrupts, switches models, resets the conversation and ends the process;
:func:`spawn_process` starts one. Only the pool (:mod:`clawrap.claude.pool`) spawns
and ends processes; the turn driver sends, reads and interrupts.

A reset rewinds the conversation to before its first message (the CLI's
``rewind_conversation`` control request, aimed at that message's uuid, which
clawrap sets when sending it or, for a resumed transcript, wrote itself). It
leaves the conversation as empty as a new process's and costs the CLI 2-3 ms of
CPU. ``/clear`` is not used: it costs 18-22 ms, and the CLI keeps a record of the
command ("<local-command-caveat>... <command-name>/clear</command-name>") that
it prepends to the next user message, so the model would see it in every
request a reused process serves.

Every close runs under a shield, and a process still in a turn is interrupted
first, so it exits within a fraction of a second instead of waiting out the
SDK's stdin grace period.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import trio
from claude_agent_sdk import ClaudeSDKClient, ResultMessage, ToolResultBlock, UserMessage
from claude_agent_sdk.types import Message

from clawrap.claude._lifeline import with_lifeline
from clawrap.claude._prompt_file import prompt_in_file
from clawrap.claude._sdk_adapter import cli_process, control_request, set_system_prompt
from clawrap.claude._sdk_errors import map_exceptions
from clawrap.claude._sdk_options import SpawnKey, SpawnSpec
from clawrap.claude._tool_gate import ToolGate
from clawrap.core._errors import ClawrapError
from clawrap.core._models import ALIASES

log = logging.getLogger("clawrap.processes")

SPAWN_TIMEOUT = 30.0  # default bound on connect(), the CLI's start-up (cli_start_timeout)
# After a CLI that was late to start is killed, how long connect() may take to notice.
KILL_NOTICE = 5.0
RESET_TIMEOUT = 0.8  # interrupt + drain + rewind; normally a few ms
INTERRUPT_TIMEOUT = 0.3
KILL_GRACE = 1.0  # after clawrap's own SIGTERM, before SIGKILL; the CLI exits in milliseconds


class CliProcess:
    """One connected CLI process and the little the pool needs to know about it."""

    def __init__(self, spec: SpawnSpec, client: ClaudeSDKClient) -> None:
        self.key: SpawnKey = spec.key
        self.model = spec.model
        self.client = client
        self.reused = False
        # Client tools whose calls wait for results (``_tool_gate``); ``open_calls`` are the
        # calls of the turn the process is parked in, waiting for the client's next request.
        self.gate: ToolGate | None = None
        self.open_calls: frozenset[str] = frozenset()
        self.in_turn = False  # a message was sent whose ResultMessage was not read yet
        self.idle_since = trio.current_time()
        self._closed = False
        self._messages: AsyncIterator[Message] | None = None
        # The CLI's ``total_cost_usd`` is the running total of the process's whole life (a
        # rewind does not reset it; measured): each turn's own cost is the difference.
        self._cost_total = 0.0
        # The uuids of the conversation's first message and of the last user message the
        # CLI was given (None: nothing yet); a reset rewinds to the first.
        anchors = spec.history_anchors
        self._first_uuid: str | None = anchors[0] if anchors else None
        self._last_user_uuid: str | None = anchors[1] if anchors else None
        self._process = cli_process(client)
        self.pid: int | None = self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        if self._closed:
            return False
        if self._process is None:
            return True
        return self._process.returncode is None

    async def receive(self) -> Message | None:
        """The next message from the CLI, or None when its output ended.

        One generator is kept across calls. A cancelled or failed receive ends
        that generator (the exception passes through it); the next call starts
        a new one over the same underlying stream, so nothing is lost.
        """
        if self._messages is None:
            self._messages = self.client.receive_messages()
        try:
            message = await self._messages.__anext__()
        except StopAsyncIteration:
            self._messages = None
            self._closed = True
            return None
        except BaseException:
            self._messages = None
            raise
        if isinstance(message, ResultMessage):
            self.in_turn = False
            message = self._own_cost(message)
        elif self.gate is not None and isinstance(message, UserMessage):
            for block in message.content if isinstance(message.content, list) else ():
                if isinstance(block, ToolResultBlock):
                    self.gate.taken(block.tool_use_id)
        return message

    def _own_cost(self, result: ResultMessage) -> ResultMessage:
        """``result`` with ``total_cost_usd`` as this turn's cost, not the process's total."""
        total = result.total_cost_usd
        if not isinstance(total, int | float) or isinstance(total, bool):
            return result
        turn = max(0.0, float(total) - self._cost_total)
        self._cost_total = max(self._cost_total, float(total))
        return dataclasses.replace(result, total_cost_usd=turn)

    async def send(self, content: list[dict[str, Any]] | str) -> None:
        """Send one user message, delivered as written (``client_composed``): no
        slash commands and no ``@file`` expansion."""
        message_uuid = str(uuid.uuid4())
        message: dict[str, Any] = {
            "type": "user",
            "message": {"role": "user", "content": content},
            "parent_tool_use_id": None,
            "session_id": "default",
            "uuid": message_uuid,
            "client_composed": True,
        }
        if self._first_uuid is None:
            self._first_uuid = message_uuid
        self._last_user_uuid = message_uuid

        async def one() -> AsyncGenerator[dict[str, Any], None]:
            yield message

        self.in_turn = True
        # Closed even when the send is cancelled: the SDK does not close what it iterates.
        async with contextlib.aclosing(one()) as messages:
            await self.client.query(messages)

    async def interrupt(self) -> None:
        await self.client.interrupt()

    async def set_model(self, model: str) -> None:
        if model != self.model:
            await self.client.set_model(model)
            self.model = model

    async def switch_prompt(self, key: SpawnKey, *, answer_within: float) -> None:
        """Take ``key``'s system prompt in place of this process's own, and ``key`` with it.

        Only for a process whose conversation is empty (new or reset): the CLI keeps
        sending the prompt a conversation started with. ``key`` must differ from this
        process's key in the system prompt alone. Raises what the SDK raises when the
        CLI refuses (for one, when ``self.model`` is a full id it does not run).
        """
        assert not self.in_turn and self._first_uuid is None, "switch_prompt needs a reset process"
        await set_system_prompt(
            self.client,
            self.model,
            key.system_prompt,
            only_if_current=self.model not in ALIASES,
            answer_within=answer_within,
        )
        self.key = key

    async def finish_turn(self) -> ResultMessage | None:
        """Read and drop messages up to the end of the current turn."""
        while True:
            message = await self.receive()
            if message is None:
                return None
            if isinstance(message, ResultMessage):
                return message

    async def reset(self) -> bool:
        """Bring the process back to an empty conversation. False if it could not.

        A turn still running is interrupted and drained first; then the conversation
        is rewound to before its first message, which the CLI must confirm.
        """
        with trio.move_on_after(RESET_TIMEOUT):
            try:
                self.open_calls = frozenset()
                if self.in_turn:
                    await self.interrupt()
                    if await self.finish_turn() is None:
                        return False
                if self.gate is not None:
                    self.gate.clear()
                if self._first_uuid is None:
                    return True  # nothing was said: the conversation is still empty
                request: dict[str, Any] = {
                    "subtype": "rewind_conversation",
                    "target_message_uuid": self._first_uuid,
                    "last_seen_user_message_uuid": self._last_user_uuid,
                }
                with map_exceptions("run"):
                    response = await control_request(
                        self.client, request, answer_within=RESET_TIMEOUT
                    )
                if response.get("rewound") is not True:
                    log.warning("CLI process %s refused the rewind: %s", self.pid, response)
                    return False
                self._first_uuid = self._last_user_uuid = None
                return True
            except ClawrapError:
                log.warning("resetting CLI process %s failed", self.pid, exc_info=True)
                return False
            except Exception:
                # A bug: the process is replaced (it may hold anything), the traceback logged.
                log.exception("resetting CLI process %s failed unexpectedly", self.pid)
                return False
        return False

    async def close(self, *, force: bool = False) -> None:
        """End the process. Safe to call twice; never raises; shielded.

        ``force`` terminates it at once (its owner may be reading it right now).
        """
        with trio.CancelScope(shield=True):
            if force and self.alive:
                await self._terminate()
            if self.in_turn and self.alive:
                # Without this, closing stdin mid-turn waits out a 5 s grace.
                with trio.move_on_after(INTERRUPT_TIMEOUT):
                    try:
                        with map_exceptions("run"):
                            await self.interrupt()
                            await self.finish_turn()
                    except ClawrapError:
                        # Ended by force just below; why it would not stop is of no use here.
                        log.debug("interrupting CLI process %s to close it failed", self.pid)
                    except Exception:
                        log.exception("interrupting CLI process %s failed unexpectedly", self.pid)
                if self.in_turn and self.alive:
                    await self._terminate()
            self._closed = True
            try:
                await self.client.disconnect()
            except Exception:
                log.warning("disconnecting CLI process %s failed", self.pid, exc_info=True)
            # The held generator is parked at a yield; let it finish on the closed
            # stream instead of being collected half-way (a ResourceWarning). It ends,
            # or reports what closed the stream as an error: either way it is finished.
            if self._messages is not None:
                try:
                    await self._messages.__anext__()
                except StopAsyncIteration:
                    pass
                except Exception:
                    log.debug(
                        "CLI process %s: its stream ended in an error", self.pid, exc_info=True
                    )
                self._messages = None

    async def _terminate(self) -> None:
        """SIGTERM, then SIGKILL if the process is still there ``KILL_GRACE`` later.

        Left to the SDK's teardown, a process that ignores SIGTERM (and the end of its
        input) would live 10 s more before its SIGKILL.
        """
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        with trio.move_on_after(KILL_GRACE):
            await process.wait()
        if process.returncode is None:
            log.warning("CLI process %s ignored SIGTERM; killing it", self.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()


def start_timed_out(timeout: float) -> ClawrapError:
    """The CLI started but did not answer within ``timeout``: a 503 saying what to check."""
    return ClawrapError(
        "overloaded",
        f"The Claude Code CLI did not start within {timeout:g} s (CLAWRAP_CLI_START_TIMEOUT). "
        "Check that `claude --version` runs on this machine.",
        code="cli_start_timeout",
    )


async def spawn_process(spec: SpawnSpec, *, start_timeout: float = SPAWN_TIMEOUT) -> CliProcess:
    """Start and connect a CLI process. Raises ClawrapError (503) if it cannot start, or
    has not answered the SDK's initialize within ``start_timeout`` (it is killed then)."""
    gate = ToolGate() if spec.tools is not None and spec.tools.gated else None
    # A long system prompt goes through a file the CLI reads while it starts.
    # Started under the server's watchdog: no CLI outlives a server that was killed.
    with prompt_in_file(with_lifeline(spec.options(gate))) as options:
        return await _spawn(spec, ClaudeSDKClient(options), start_timeout, gate)


async def _spawn(
    spec: SpawnSpec, client: ClaudeSDKClient, start_timeout: float, gate: ToolGate | None
) -> CliProcess:
    late = connected = False
    failure: Exception | None = None

    async def kill_unless_started() -> None:
        # A CLI that has not answered in time, or whose start is cancelled (the client
        # left, the server stops), is killed: connect() then fails at once. Left to the
        # SDK's teardown instead, it would hold the request 5 s waiting for an exit on the
        # end of its input, 5 s more if it ignores SIGTERM; and a CLI that never answered
        # initialize has no session to save.
        nonlocal late
        try:
            await trio.sleep(start_timeout)
            late = True
        finally:
            if not connected:
                process = cli_process(client)
                if process is not None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()

    try:
        try:
            with trio.fail_after(start_timeout + KILL_NOTICE):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(kill_unless_started)
                    try:
                        await client.connect()
                        connected = True
                    except Exception as exc:
                        # Raised below, outside the nursery, so that it is not in a group.
                        failure = exc
                    finally:
                        nursery.cancel_scope.cancel()
        except trio.TooSlowError:
            late = True  # killed, yet connect() did not return
        if late:
            log.warning("a CLI process did not start within %g s; killed it", start_timeout)
            raise start_timed_out(start_timeout) from failure
        if failure is not None:
            with map_exceptions("start"):
                raise failure
    except BaseException:
        with trio.CancelScope(shield=True):
            await client.disconnect()
        raise
    proc = CliProcess(spec, client)
    proc.gate = gate
    log.debug("spawned CLI process %s", proc.pid)
    return proc


__all__ = ["CliProcess", "spawn_process", "start_timed_out"]
