"""Agent-mode runs: Claude Code with its own tools, one fresh CLI process per run, fenced.

A run gets its working directory (:func:`~clawrap.agent._workdir.resolve_cwd`: the
requested one inside an agent root, else the session's private temporary one
(:class:`~clawrap.agent._workdir.SessionDirs`), else one of its own), a CLI process
spawned for it alone (its cwd, tools, approvals, permission mode and MCP
servers are fixed at spawn and differ per request, so it never joins the warm
pool), and streams text and :class:`~clawrap.core._events.AgentProgress` across
every model turn until the CLI's ResultMessage.

The pool spawns that process and, however the run ends (done, halted, failed,
client gone, deadline), stops it with every process it started
(:meth:`~clawrap.claude.pool._pool.ProcessPool.dedicated_process`). A temporary
directory goes last.

The runner also remembers what the CLI reported at start (``system/init``):
its tool list, for ``GET /v1/tools``, and each MCP server's status, recorded
in the :class:`~clawrap.agent._mcp_registry.McpRegistry`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio

from clawrap.agent._mcp_registry import McpRegistry
from clawrap.agent._tools import tools_body
from clawrap.agent._workdir import SessionDirs, WorkDir, resolve_cwd
from clawrap.claude._client_tools import build_client_tools
from clawrap.claude._sdk_events import TurnTranslator
from clawrap.claude._sdk_options import OptionsBuilder
from clawrap.claude._transcript import plan_history
from clawrap.claude._turn_pump import drive_turn
from clawrap.claude.pool._pool import ProcessPool
from clawrap.core._backend import EventSink, HaltSignal
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._request import AgentOptions, CompletionRequest

log = logging.getLogger("clawrap.agent")


class AgentRunner:
    """Runs agent-mode requests for a backend (its options builder, config dir and pool)."""

    def __init__(
        self,
        settings: Settings,
        options: OptionsBuilder,
        config_dir: Path,
        mcp: McpRegistry,
        pool: ProcessPool,
    ) -> None:
        self.settings = settings
        self.options = options
        self.config_dir = config_dir
        self.mcp = mcp
        self.pool = pool
        self.runs = self.active = 0
        self._builtin: tuple[str, ...] | None = None  # as reported by a default-tools run
        self._mcp_tools: dict[str, list[str]] = {}  # server -> tools reported for it
        self.session_dirs = SessionDirs()

    def status(self) -> dict[str, Any]:
        return {"agent_runs": self.runs, "agent_active": self.active}

    def tools(self) -> dict[str, Any]:
        """The body of ``GET /v1/tools``."""
        return tools_body(self.settings, self._builtin, self._mcp_tools)

    async def run(
        self,
        request: CompletionRequest,
        events: EventSink,
        halt: HaltSignal,
    ) -> None:
        """Run ``request`` (``request.agent`` set). Raises ClawrapError on failure."""
        agent = request.agent
        assert agent is not None
        session = request.session_id if agent.cwd is None else None
        workdir = self._workdir(request, session)
        try:
            tools = build_client_tools(request)
            # Writing the transcript (up to a whole request body) is kept off the event loop.
            plan = await trio.to_thread.run_sync(
                plan_history, request, self.config_dir, str(workdir.path)
            )
            try:
                spec = self.options.agent_spec(
                    request, workdir.path, self.mcp, tools, plan.resume, plan.env
                )
                content = plan.prompt.get("content") if plan.prompt is not None else None
                if plan.prompt is not None and not isinstance(content, str | list):
                    raise ClawrapError(
                        "invalid_request", "The message has no content.", param="messages"
                    )
                translator = TurnTranslator(tools, agent=True, cwd=str(workdir.path))
                try:
                    deadline = request.queue_deadline
                    async with self.pool.dedicated_process(spec, deadline=deadline) as proc:
                        self.runs += 1
                        self.active += 1
                        try:
                            await drive_turn(proc, content, translator, events, halt)
                        finally:
                            self.active -= 1
                finally:
                    self._learn(translator.init, agent)
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(plan.cleanup)
        finally:
            if session is not None:
                self.session_dirs.release(session)
            with trio.CancelScope(shield=True):
                # A run's own temporary directory may hold a whole build.
                await trio.to_thread.run_sync(workdir.cleanup)

    def sessions_removed(self, session_ids: list[str]) -> None:
        """Sessions were deleted or expired: their working directories go too."""
        self.session_dirs.forget(session_ids)

    def close(self) -> None:
        """Remove the sessions' working directories (the pool stops the processes)."""
        self.session_dirs.close()

    def _workdir(self, request: CompletionRequest, session: str | None) -> WorkDir:
        if session is not None:
            # No directory named: the session's own, so a later turn finds what this one wrote.
            return self.session_dirs.acquire(session)
        assert request.agent is not None
        # Checked again at the start: the directory may have changed since the request was read.
        return resolve_cwd(request.agent.cwd, self.settings)

    def _learn(self, init: dict[str, Any] | None, agent: AgentOptions) -> None:
        """Keep what the CLI reported at start: MCP statuses, and its tool list."""
        if init is None:
            return
        self.mcp.record_status(init.get("mcp_servers"))
        reported = init.get("tools")
        if not isinstance(reported, list):
            return
        names = [t for t in reported if isinstance(t, str)]
        for server in self.mcp.names():
            prefix = f"mcp__{server}__"
            found = [t for t in names if t.startswith(prefix)]
            if found:
                self._mcp_tools[server] = sorted(found)
        if not agent.allowed_tools and not agent.disallowed_tools:
            # Only a run offered the default set says what that set really is.
            self._builtin = tuple(t for t in names if not t.startswith("mcp__"))


__all__ = ["AgentRunner"]
