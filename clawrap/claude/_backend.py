"""The Claude Code backend: runs a CompletionRequest on a CLI process from the pool.

One run: plan the conversation (:func:`~clawrap.claude._transcript.plan_history`) and
the client tools (:func:`~clawrap.claude._client_tools.build_client_tools`), build the
spawn spec, take a process from the :class:`~clawrap.claude.pool._pool.ProcessPool`,
send the user message verbatim, and translate what comes back
(:class:`~clawrap.claude._sdk_events.TurnTranslator`) into the event channel as it
arrives. A reused process that fails before any event went out is replaced
by a fresh one and the run retried once, invisibly.

``halt`` interrupts the turn and waits briefly for its usage
(:func:`~clawrap.claude._turn_pump.drive_turn`, shared with agent runs). Cancellation
leaves the process either reset for reuse or ended: the release runs under a
shield in a ``finally``.

Implicit continuation: a turn that ends normally (``end_turn``, not halted)
parks its process in the pool under the key of the conversation it now holds
(the request's turns plus the reply). A request whose earlier turns are exactly
that conversation (same system prompt, same spawn key) is served by it with
only its new user message: warm, and the upstream prompt cache intact.

Tool loops: client tools wait on the live process for their results
(:mod:`~clawrap.claude._tool_gate`), so a turn that ends in client tool calls
parks its process mid-turn, the calls open (bounded by ``tool_wait``). The
request that brings exactly those results, its history otherwise unchanged,
hands them over and relays the rest of that same CLI turn: no spawn, no
transcript. Anything else (a differing history, results the CLI would rewrite,
text beside the results) frees that process and goes through the transcript,
since the CLI drops ``tool_result`` blocks from a sent message.

Agent-mode requests (``request.agent``) go to the
:class:`~clawrap.claude._agent_runner.AgentRunner` instead: a process of their own
from the pool, never pooled.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import trio

from clawrap.agent._mcp_registry import McpRegistry
from clawrap.claude._agent_runner import AgentRunner
from clawrap.claude._client_tools import ClientTools, build_client_tools
from clawrap.claude._live_models import LiveModels
from clawrap.claude._login_monitor import LoginMonitor
from clawrap.claude._sdk_events import TurnTranslator
from clawrap.claude._sdk_options import OptionsBuilder, SpawnSpec
from clawrap.claude._tool_gate import deliverable
from clawrap.claude._transcript import plan_history, split_history
from clawrap.claude._turn_pump import drive_turn
from clawrap.claude.pool._pool import CliProcess, ProcessPool, State
from clawrap.core._backend import EventSink, HaltSignal
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._login import LoginState
from clawrap.core._request import CompletionRequest, ToolResultPart, Turn
from clawrap.protocol._conversation import ReplyRecorder, conversation_key

log = logging.getLogger("clawrap.backend")

RETRYABLE = frozenset({"cli_process_failed", "cli_bad_output"})


class ClaudeBackend:
    """Runs requests on Claude Code CLI processes.

    ``cli_env`` is extra environment for the CLI (the offline mode points
    ``ANTHROPIC_BASE_URL`` at the scripted model through it); the CLI otherwise
    inherits the server's environment. ``mcp`` is the operator's MCP servers
    (default: loaded from ``settings.mcp_config``) that agent runs may use.

    Lifecycle: call :meth:`start` with a nursery that outlives the backend to
    warm processes and reset them in the background (or use
    :func:`open_claude_backend`); call :meth:`aclose` at shutdown. Without
    :meth:`start` every run still works, cold.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        cli_env: Mapping[str, str] | None = None,
        mcp: McpRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.mcp = mcp if mcp is not None else McpRegistry.load(settings)
        self._cwd = tempfile.mkdtemp(prefix="clawrap-cwd-")
        self._options = OptionsBuilder(settings, cli_env, self._cwd)
        self.pool = ProcessPool(settings, self._options.default_spec())
        config_dir = (
            self._options.env.get("CLAUDE_CONFIG_DIR")
            or os.environ.get("CLAUDE_CONFIG_DIR")
            or str(Path.home() / ".claude")
        )
        self.config_dir = Path(config_dir)
        self.agent = AgentRunner(settings, self._options, self.config_dir, self.mcp, self.pool)
        self.live_models = LiveModels({**os.environ, **self._options.env})
        self.login = LoginMonitor(settings, self._options.env, self._cwd)

    @property
    def cwd(self) -> str:
        """The neutral working directory every CLI process runs in."""
        return self._cwd

    async def start(self, nursery: trio.Nursery) -> None:
        """Start warming processes in the background (tasks live in ``nursery``)."""
        await self.pool.start(nursery)

    def start_login_monitor(self, nursery: trio.Nursery) -> None:
        """Run the CLI's login check now and every ``auth_probe_interval`` seconds (and soon
        after an upstream 401), in ``nursery`` until :meth:`aclose`."""
        if self.login.enabled:
            nursery.start_soon(self.login.run)

    async def aclose(self) -> None:
        """End every CLI process and remove the working directory."""
        self.login.stop()
        await self.pool.aclose()
        self.agent.close()
        shutil.rmtree(self._cwd, ignore_errors=True)

    def status(self) -> dict[str, Any]:
        return self.pool.status() | self.agent.status()

    def sessions_removed(self, session_ids: list[str]) -> None:
        """Sessions were deleted or expired (the session store calls this)."""
        self.agent.sessions_removed(session_ids)

    async def model_list(self, *, refresh: bool = False) -> list[dict[str, Any]] | None:
        """The upstream's live model list (API key only), cached; None without one."""
        return await self.live_models.get(refresh=refresh)

    def agent_tools(self) -> dict[str, Any]:
        """What agent mode offers, for ``GET /v1/tools``."""
        return self.agent.tools()

    def mcp_servers(self) -> list[dict[str, Any]]:
        """The operator's MCP servers with the status agent runs last reported."""
        return self.mcp.describe()

    @property
    def login_state(self) -> LoginState:
        """What the CLI's own status command last said about its login."""
        return self.login.state

    async def run(
        self,
        request: CompletionRequest,
        events: EventSink,
        halt: HaltSignal,
    ) -> None:
        try:
            await self._run(request, events, halt)
        except ClawrapError as exc:
            if exc.kind == "authentication":
                self.login.auth_failed(exc)
            raise

    async def _run(
        self,
        request: CompletionRequest,
        events: EventSink,
        halt: HaltSignal,
    ) -> None:
        if request.agent is not None:
            await self.agent.run(request, events, halt)
            return
        tools = build_client_tools(request, wait=self.settings.tool_wait > 0)
        if await self._resume_tools(request, tools, events, halt):
            return
        if await self._continue(request, tools, events, halt):
            return
        # Writing the transcript (up to a whole request body) is kept off the event loop.
        plan = await trio.to_thread.run_sync(plan_history, request, self.config_dir, self._cwd)
        try:
            spec = replace(
                self._options.spec(request, tools, plan.resume, plan.env),
                history_anchors=plan.anchors,
            )
            content = plan.prompt.get("content") if plan.prompt is not None else None
            if plan.prompt is not None and not isinstance(content, str | list):
                raise ClawrapError(
                    "invalid_request", "The message has no content.", param="messages"
                )
            await self._run_spec(spec, content, tools, events, halt, request)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(plan.cleanup)

    async def _continue(
        self,
        request: CompletionRequest,
        tools: ClientTools | None,
        events: EventSink,
        halt: HaltSignal,
    ) -> bool:
        """Serve ``request`` on the parked process that holds its earlier turns, sending only
        the new message. False when there is none, or it failed before any output."""
        held = continuation_point(request.turns)
        if held is None:
            return False
        split_history(request)  # the transcript path's 400s, before a process is taken
        try:
            _, prompt = split_history(replace(request, turns=request.turns[held:]))
        except ClawrapError:
            return False  # e.g. an empty message: the transcript path says what is wrong
        content = prompt["content"] if prompt is not None else None
        if not isinstance(content, list):
            return False
        spec = self._options.spec(request, tools)
        key = conversation_key(request.system or None, request.turns[:held])
        proc = await self.pool.take_parked(spec, key)
        if proc is None:
            return False
        if await self._attempt(proc, content, tools, events, halt, request):
            log.info("parked CLI process %s failed; continuing from a transcript", proc.pid)
            return False
        return True

    async def _run_spec(
        self,
        spec: SpawnSpec,
        content: str | list[Any] | None,
        tools: ClientTools | None,
        events: EventSink,
        halt: HaltSignal,
        request: CompletionRequest,
    ) -> None:
        """Run on a pooled process; once more on a fresh one if a reused one broke silently."""
        deadline = request.queue_deadline
        proc = await self.pool.acquire(spec, deadline=deadline)
        if await self._attempt(proc, content, tools, events, halt, request):
            log.info("reused CLI process %s failed; retrying on a fresh one", proc.pid)
            proc = await self.pool.acquire(spec, fresh=True, deadline=deadline)
            await self._attempt(proc, content, tools, events, halt, request, retry=False)

    async def _attempt(
        self,
        proc: CliProcess,
        content: str | list[Any] | None,
        tools: ClientTools | None,
        events: EventSink,
        halt: HaltSignal,
        request: CompletionRequest,
        *,
        retry: bool = True,
    ) -> bool:
        """One turn on ``proc``, which is then parked or released. True when the turn should
        be run again elsewhere: a reused process failed before any output."""
        translator = TurnTranslator(tools)
        recorder = ReplyRecorder()
        state: State | Literal["open"] = "broken"
        try:
            state = await self._drive(proc, content, translator, events, halt, recorder)
            return False
        except ClawrapError as exc:
            retryable = exc.code in RETRYABLE
            state = "broken" if retryable else "idle" if translator.done else "midturn"
            if retry and retryable and proc.reused and not translator.content_sent:
                return True
            raise
        except BaseException:
            state = "idle" if translator.done else "midturn"
            raise
        finally:
            with trio.CancelScope(shield=True):
                held = parking_key(request, recorder) if state == "idle" else None
                if state == "open":
                    await self._park_open(proc, request, recorder, translator, halt)
                elif held is None or halt.is_set():
                    await self.pool.release(proc, state)
                else:
                    await self.pool.park(proc, held)

    async def _park_open(
        self,
        proc: CliProcess,
        request: CompletionRequest,
        recorder: ReplyRecorder,
        translator: TurnTranslator,
        halt: HaltSignal,
    ) -> None:
        """Keep ``proc`` with its tool calls open for the request that brings the results."""
        reply = recorder.turn()
        if reply is None or halt.is_set():
            await self.pool.release(proc, "midturn")
            return
        proc.open_calls = frozenset(translator.call_ids)
        key = conversation_key(request.system or None, (*request.turns, reply))
        await self.pool.park_open(proc, key)

    async def _resume_tools(
        self,
        request: CompletionRequest,
        tools: ClientTools | None,
        events: EventSink,
        halt: HaltSignal,
    ) -> bool:
        """Serve a tool-result follow-up on the process parked with those calls open: hand
        it the results and relay the rest of its turn. False when there is none (the
        transcript path serves the request)."""
        if tools is None or not tools.gated or len(request.turns) < 2:
            return False
        last = request.turns[-1]
        if last.role != "user" or request.turns[-2].role != "assistant":
            return False
        spec = self._options.spec(request, tools)
        key = conversation_key(request.system or None, request.turns[:-1])
        proc = await self.pool.take_parked(spec, key)
        if proc is None:
            return False
        results = deliverable(last.parts)
        if results is None or proc.gate is None or set(results) != proc.open_calls:
            log.info(
                "tool results for %s do not fit CLI process %s (open: %s); from a transcript",
                sorted(results or ()),
                proc.pid,
                sorted(proc.open_calls),
            )
            # Results the CLI would rewrite (empty, too long), text beside them, or not
            # exactly the calls it holds open: served from a transcript instead.
            with trio.CancelScope(shield=True):
                await self.pool.release(proc, "midturn")
            return False
        proc.open_calls = frozenset()
        proc.gate.deliver(results)
        await self._attempt(proc, None, tools, events, halt, request, retry=False)
        return True

    async def _drive(
        self,
        proc: CliProcess,
        content: str | list[Any] | None,
        translator: TurnTranslator,
        events: EventSink,
        halt: HaltSignal,
        recorder: ReplyRecorder,
    ) -> State | Literal["open"]:
        """Drive the turn. Returns the process's state after it ("open": mid-turn, its
        client tool calls waiting for results)."""
        await drive_turn(proc, content, translator, events, halt, recorder.feed)
        if translator.stopped_for_tools and not translator.done:
            return "open"
        return "idle" if translator.done else "midturn"


def continuation_point(turns: tuple[Turn, ...]) -> int | None:
    """Where a request's new message starts when a live process could take it alone: after
    the last assistant turn, with only user turns and no tool results after it."""
    last = max((i for i, t in enumerate(turns) if t.role == "assistant"), default=None)
    if last is None or last == len(turns) - 1:
        return None
    if any(isinstance(p, ToolResultPart) for t in turns[last + 1 :] for p in t.parts):
        return None
    return last + 1


def parking_key(request: CompletionRequest, recorder: ReplyRecorder) -> str | None:
    """The key to park a process under after its turn: the conversation it now holds, when
    the turn ended normally with something said."""
    reply = recorder.turn()
    if recorder.finish != "end_turn" or reply is None:
        return None
    return conversation_key(request.system or None, (*request.turns, reply))


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
