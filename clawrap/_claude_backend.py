"""The Claude Code backend: runs a CompletionRequest on a CLI process from the pool.

One run: plan the conversation (:func:`~clawrap._transcript.plan_history`) and
the client tools (:func:`~clawrap._client_tools.build_client_tools`), build the
spawn spec, take a process from the :class:`~clawrap._processes.ProcessPool`,
send the user message verbatim, and translate what comes back
(:class:`~clawrap._sdk_events.TurnTranslator`) into the event channel as it
arrives. A reused process that fails before any event went out is replaced
by a fresh one and the run retried once, invisibly.

``halt`` interrupts the turn and waits briefly for its usage. Cancellation
leaves the process either reset for reuse or ended: the release runs under a
shield in a ``finally``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from ._client_tools import ClientTools, build_client_tools
from ._config import Settings
from ._errors import ClawrapError
from ._events import Event, Finished
from ._processes import CliProcess, ProcessPool, State
from ._request import CompletionRequest
from ._sdk_errors import map_exceptions
from ._sdk_events import TurnTranslator
from ._sdk_options import OptionsBuilder, SpawnSpec
from ._transcript import plan_history

log = logging.getLogger("clawrap.backend")

HALT_GRACE = 2.0  # after halt, how long to wait for the turn's usage
TOOL_GRACE = 10.0  # after the model asked for client tools, how long until the run ends
RETRYABLE = frozenset({"cli_process_failed", "cli_bad_output"})


class ClaudeBackend:
    """Runs requests on Claude Code CLI processes.

    ``cli_env`` is extra environment for the CLI (the offline mode points
    ``ANTHROPIC_BASE_URL`` at the scripted model through it); the CLI otherwise
    inherits the server's environment.

    Lifecycle: call :meth:`start` with a nursery that outlives the backend to
    warm processes and reset them in the background (or use
    :func:`open_claude_backend`); call :meth:`aclose` at shutdown. Without
    :meth:`start` every run still works, cold.
    """

    def __init__(self, settings: Settings, *, cli_env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._cwd = tempfile.mkdtemp(prefix="clawrap-cwd-")
        self._options = OptionsBuilder(settings, cli_env, self._cwd)
        self.pool = ProcessPool(settings, self._options.default_spec())
        config_dir = (
            self._options.env.get("CLAUDE_CONFIG_DIR")
            or os.environ.get("CLAUDE_CONFIG_DIR")
            or str(Path.home() / ".claude")
        )
        self.config_dir = Path(config_dir)

    @property
    def cwd(self) -> str:
        """The neutral working directory every CLI process runs in."""
        return self._cwd

    async def start(self, nursery: trio.Nursery) -> None:
        """Start warming processes in the background (tasks live in ``nursery``)."""
        await self.pool.start(nursery)

    async def aclose(self) -> None:
        """End every CLI process and remove the working directory."""
        await self.pool.aclose()
        shutil.rmtree(self._cwd, ignore_errors=True)

    def status(self) -> dict[str, Any]:
        return self.pool.status()

    async def run(
        self,
        request: CompletionRequest,
        events: trio.MemorySendChannel[Event],
        halt: trio.Event,
    ) -> None:
        tools = build_client_tools(request)
        plan = plan_history(request, self.config_dir, self._cwd)
        try:
            spec = self._options.spec(request, tools, plan.resume, getattr(plan, "env", None))
            content = plan.prompt.get("content") if plan.prompt is not None else None
            if plan.prompt is not None and not isinstance(content, str | list):
                raise ClawrapError(
                    "invalid_request", "The message has no content.", param="messages"
                )
            await self._run_spec(spec, content, tools, events, halt)
        finally:
            cleanup = getattr(plan, "cleanup", None)
            if cleanup is not None:
                cleanup()

    async def _run_spec(
        self,
        spec: SpawnSpec,
        content: str | list[Any] | None,
        tools: ClientTools | None,
        events: trio.MemorySendChannel[Event],
        halt: trio.Event,
    ) -> None:
        """Run on a pooled process; once more on a fresh one if a reused one broke silently."""
        fresh = False
        while True:
            proc = await self.pool.acquire(spec, fresh=fresh)
            translator = TurnTranslator(tools)
            state: State = "broken"
            try:
                state = await self._drive(proc, content, translator, events, halt)
                return
            except ClawrapError as exc:
                if exc.code in RETRYABLE:
                    state = "broken"
                else:
                    state = "idle" if translator.done else "midturn"
                if (
                    proc.reused
                    and not fresh
                    and not translator.content_sent
                    and exc.code in RETRYABLE
                ):
                    log.info("reused CLI process %s failed; retrying on a fresh one", proc.pid)
                    fresh = True
                    continue
                raise
            except BaseException:
                state = "idle" if translator.done else "midturn"
                raise
            finally:
                with trio.CancelScope(shield=True):
                    await self.pool.release(proc, state)

    async def _drive(
        self,
        proc: CliProcess,
        content: str | list[Any] | None,
        translator: TurnTranslator,
        events: trio.MemorySendChannel[Event],
        halt: trio.Event,
    ) -> State:
        """Send the message and pump the turn. Returns the process's state after it."""
        if content is None:
            # The resumed conversation ends on tool results: the CLI carries on by itself.
            proc.in_turn = True
        else:
            with map_exceptions("run"):
                await proc.send(content)
        error: ClawrapError | None = None
        reader = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_halt, halt, proc, reader)
            try:
                with reader:
                    await self._pump(proc, translator, events, halt, reader)
            except ClawrapError as exc:
                error = exc
            finally:
                nursery.cancel_scope.cancel()
        if error is not None:
            raise error
        if not translator.done and translator.tool_calls and not halt.is_set():
            # The model asked for client tools but the CLI never closed the turn.
            await events.send(Finished("tool_calls"))
        return "idle" if translator.done else "midturn"

    async def _pump(
        self,
        proc: CliProcess,
        translator: TurnTranslator,
        events: trio.MemorySendChannel[Event],
        halt: trio.Event,
        reader: trio.CancelScope,
    ) -> None:
        tool_deadline_set = interrupted = False
        while True:
            with map_exceptions("run"):
                message = await proc.receive()
            if message is None:
                raise translator.unfinished_error()
            out = translator.feed(message)
            if halt.is_set():
                # Content after halt is discarded by the caller; only usage matters.
                if translator.done:
                    await events.send(translator.usage_event())
                    return
                continue
            for event in out:
                await events.send(event)
            if translator.done:
                return
            if translator.needs_interrupt and not interrupted:
                interrupted = True
                with map_exceptions("run"):
                    await proc.interrupt()
            if (
                not tool_deadline_set
                and translator.tool_calls
                and translator.upstream_stop_reason == "tool_use"
            ):
                # The deferring hook ends the run at once; never wait long for it.
                tool_deadline_set = True
                reader.deadline = min(reader.deadline, trio.current_time() + TOOL_GRACE)

    async def _watch_halt(
        self, halt: trio.Event, proc: CliProcess, reader: trio.CancelScope
    ) -> None:
        await halt.wait()
        reader.deadline = min(reader.deadline, trio.current_time() + HALT_GRACE)
        if proc.in_turn:
            with trio.move_on_after(HALT_GRACE):
                try:
                    await proc.interrupt()
                except Exception:
                    log.debug("interrupt after halt failed", exc_info=True)


@asynccontextmanager
async def open_claude_backend(
    settings: Settings, *, cli_env: Mapping[str, str] | None = None
) -> AsyncIterator[ClaudeBackend]:
    """A started :class:`ClaudeBackend`, closed (every process ended) on exit."""
    backend = ClaudeBackend(settings, cli_env=cli_env)
    error: Exception | None = None
    async with trio.open_nursery() as nursery:
        await backend.start(nursery)
        try:
            yield backend
        except Exception as exc:
            # Re-raised below, outside the nursery, so callers see it unwrapped.
            error = exc
        finally:
            await backend.aclose()
    if error is not None:
        raise error


__all__ = ["ClaudeBackend", "ClientTools", "open_claude_backend"]
