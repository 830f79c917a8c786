"""A CompletionRequest turned into the ``ClaudeAgentOptions`` a CLI process is spawned with.

Everything the CLI fixes at spawn (system prompt, tool set, MCP servers, cwd,
permission mode, thinking, effort, environment, resume) goes into a
:class:`SpawnKey`; processes with equal keys are interchangeable once their
conversation is cleared. The model is not part of the key: a live process
switches models with ``set_model``.

The options keep the CLI lean and inert: no built-in tools, no settings files,
no project MCP servers, a plain-string system prompt (anything else is
silently dropped by the SDK), one model turn per completion, thinking off
unless asked for, and a neutral empty working directory.

Plain (non-agent) processes also run in the CLI's bare mode
(``CLAUDE_CODE_SIMPLE=1``, what ``--bare`` sets) with its experimental betas off
(``CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1``) whenever the credentials allow
it. Without bare mode the CLI adds a ``{"role": "system"}`` "# Environment"
entry to every request (working directory, platform, shell, OS version, notes
for agents, the model's own name, today's date), which a chat client never
sent; without the betas off, a resumed conversation still gets an empty
``{"role": "system"}`` entry carrying the effort (the per-turn-control beta).
With both, upstream ``messages`` hold the client's turns and nothing else.

Bare mode reads only ``ANTHROPIC_API_KEY``, ``ANTHROPIC_AUTH_TOKEN`` (or an
``apiKeyHelper``), Bedrock or Vertex credentials, never a Claude Code login or
``CLAUDE_CODE_OAUTH_TOKEN`` (:func:`bare_environment`). A ``CLAUDE_CODE_OAUTH_TOKEN``
(the long-lived token ``claude setup-token`` prints) is handed to bare mode as
``ANTHROPIC_AUTH_TOKEN`` with the ``oauth-2025-04-20`` beta in ``ANTHROPIC_BETAS``:
read at a scripted upstream, that request carries the same ``authorization`` and
``anthropic-beta`` headers as the CLI's own OAuth mode with its experimental betas
off (the betas in another order), and no ``x-api-key``. A stored ``claude login``
cannot be handed over (its access token expires and only the CLI refreshes it), so
with it both switches stay off and the entry stays.
Measured with CLI 2.1.337 against the scripted model: the upstream request for
a one-line question shrinks from 1,939 to 816 bytes (999 with bare mode alone);
spawn and turn times do not change measurably; effort still reaches the model
(``output_config``); the
betas left are ``claude-code``, ``interleaved-thinking`` and ``effort``, so the
CLI's own context-management edits and thinking display "updates" are not
asked for. SDK hooks do not fire in bare mode: a client tool call reaches the
tool's handler (which answers with an error and runs nothing) before
``max_turns=1`` ends the run, where the defer hook stopped it before.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions

from clawrap.agent._mcp_registry import McpRegistry
from clawrap.agent._mode import agent_sdk_options
from clawrap.claude._client_tools import SERVER_NAME, ClientTools
from clawrap.claude._tool_gate import MAX_OUTPUT_TOKENS_ENV, ToolGate, gate_server
from clawrap.core._auth import detect_auth
from clawrap.core._config import Settings
from clawrap.core._errors import invalid_request
from clawrap.core._request import CompletionRequest, ResponseFormat

log = logging.getLogger("clawrap.cli")

# Used when a request has no system text, so the CLI's agent prompt is never sent.
NEUTRAL_SYSTEM_PROMPT = "You are a helpful assistant."


@dataclass(frozen=True, slots=True)
class SpawnKey:
    """What a CLI process is fixed to at spawn, apart from ``resume``.

    A process spawned with ``resume`` is keyed without it: once its turn is
    over and its conversation cleared, it is as good as any other with this key.
    """

    system_prompt: str
    tools_signature: str = ""
    thinking_budget: int | None = None
    effort: str | None = None
    permission_mode: str | None = None
    cwd: str = ""
    # Credentials may be among these: never shown.
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class SpawnSpec:
    """How to spawn (or pick) a process for one request."""

    key: SpawnKey
    model: str
    resume: str | None = None
    tools: ClientTools | None = field(default=None, compare=False)
    cli_path: str | None = None
    # Read by the CLI only while it starts (e.g. to continue a resumed turn), so
    # like ``resume`` it does not make a process different once reset.
    extra_env: tuple[tuple[str, str], ...] = ()
    # Agent mode: the keyword arguments of agent_sdk_options. Agent processes are
    # spawned for one run and never pooled, so this is not part of the key.
    agent: dict[str, Any] | None = field(default=None, compare=False)
    # With ``resume``: the uuids of the transcript's first message and last user
    # message, where a reset of the process rewinds to.
    history_anchors: tuple[str, str] | None = field(default=None, compare=False)

    def options(self, gate: ToolGate | None = None) -> ClaudeAgentOptions:
        """Fresh ``ClaudeAgentOptions`` for spawning a process of this spec.

        ``gate``: the process's own :class:`~clawrap.claude._tool_gate.ToolGate`, for tools
        whose calls wait for the client's results (``tools.gated``).
        """
        key = self.key
        thinking: dict[str, Any] = (
            {"type": "enabled", "budget_tokens": key.thinking_budget}
            if key.thinking_budget is not None
            else {"type": "disabled"}
        )
        tools = self.tools
        mcp_servers: dict[str, Any] = dict(tools.mcp_servers) if tools else {}
        allowed = list(tools.allowed_tools) if tools else []
        system_prompt: Any = key.system_prompt
        # Chat processes keep no transcript on disk: a pooled process serves thousands of
        # requests, whose text would otherwise pile up under the CLI's config directory
        # (~8 KB each, never removed). Their history is clawrap's to keep, not the CLI's.
        agent: dict[str, Any] = {
            "tools": [],
            "max_turns": 1,
            "extra_args": {"no-session-persistence": None},
        }
        env = dict(key.env) | dict(self.extra_env)
        hooks = dict(tools.hooks) if tools and tools.hooks else None
        if tools is not None and tools.gated and gate is not None:
            mcp_servers = {SERVER_NAME: gate_server(SERVER_NAME, tools.gated, gate)}
            hooks = None
            # A tool loop's rounds are model turns of one CLI run, each after the
            # client's results; the model cannot go on without the client.
            agent["max_turns"] = None
            env |= dict([MAX_OUTPUT_TOKENS_ENV])
        if self.agent is not None:
            # Claude Code itself: its own prompt, tools and fence, the client's tools beside.
            system_prompt = {"type": "preset", "preset": "claude_code"}
            if key.system_prompt:
                system_prompt["append"] = key.system_prompt
            mcp_servers = dict(self.agent["mcp_servers"]) | mcp_servers
            allowed = list(self.agent["allowed_tools"]) + allowed
            agent = {
                "tools": list(self.agent["tools"]),
                "disallowed_tools": list(self.agent["disallowed_tools"]),
                "max_turns": self.agent.get("max_turns"),
                # Only here: a pooled process's budget would count every request it served.
                "max_budget_usd": self.agent.get("max_budget_usd"),
            }
        return ClaudeAgentOptions(
            setting_sources=[],
            strict_mcp_config=True,
            system_prompt=system_prompt,
            include_partial_messages=True,
            model=self.model,
            thinking=thinking,  # type: ignore[arg-type]
            effort=key.effort,  # type: ignore[arg-type]
            cwd=key.cwd,
            env=env,
            cli_path=self.cli_path,
            resume=self.resume,
            # The CLI continues in a new session file, so ours can go right after spawn.
            fork_session=self.resume is not None,
            permission_mode=key.permission_mode,  # type: ignore[arg-type]
            mcp_servers=mcp_servers,
            allowed_tools=allowed,
            hooks=hooks,  # type: ignore[arg-type]
            stderr=_log_stderr,
            **agent,
        )

    def without_resume(self) -> SpawnSpec:
        return replace(self, resume=None, extra_env=(), history_anchors=None)


def _startable(system: str, model: str) -> None:
    """400 for what no CLI process could be started with: a NUL in its command line.

    Each surface's decoder refuses a NUL in the field it came from; this catches any
    that reaches the prompt another way (a tool name, a model id passed through).
    """
    if "\x00" in system:
        raise invalid_request(
            "The system prompt contains a NUL character (U+0000), which Claude Code cannot take."
        )
    if "\x00" in model:
        raise invalid_request("The model name contains a NUL character (U+0000).", param="model")


def _log_stderr(line: str) -> None:
    log.debug("cli stderr: %s", line.rstrip())


def cli_environment(settings: Settings, cli_env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment added to the server's for every CLI process."""
    env = dict(cli_env or {})
    # One upstream call per completion: no title generation, no telemetry.
    env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"
    # clawrap retries overloads itself (within the deadline, with fallbacks and a breaker);
    # the CLI would retry every failure, 401 included, on top of that.
    # (An explicit ``cli_env`` entry still wins: the retries benchmark compares both.)
    env.setdefault("CLAUDE_CODE_MAX_RETRIES", "0")
    if settings.config_dir:
        env["CLAUDE_CONFIG_DIR"] = settings.config_dir
    return env


# The CLI's bare mode (no environment entry, attachments, settings hooks or plugins), and
# no experimental betas (no {"role": "system"} entries for per-turn effort).
BARE_ENV = {"CLAUDE_CODE_SIMPLE": "1", "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS": "1"}
# Credentials the CLI still reads in bare mode.
_BARE_AUTH = frozenset({"api_key", "bedrock", "vertex", "offline"})
# The beta the CLI asks for with its own OAuth credentials; bare mode sends it only when told.
OAUTH_BETA = "oauth-2025-04-20"


def bare_environment(settings: Settings, env: Mapping[str, str]) -> dict[str, str] | None:
    """What puts plain CLI processes in bare mode with the credentials in ``env``, or None.

    ``env`` is the CLI's whole environment (the server's, plus what clawrap adds).
    Bare mode never reads a Claude Code login or ``CLAUDE_CODE_OAUTH_TOKEN``: an
    OAuth token goes to it as a bearer token with the OAuth beta; with a stored
    login the CLI would fail to authenticate, so bare mode stays off (None).
    """
    method = detect_auth(settings, env).method
    if method in _BARE_AUTH:
        return dict(BARE_ENV)
    if method != "oauth_token":
        return None
    if env.get("ANTHROPIC_AUTH_TOKEN", "").strip():
        return dict(BARE_ENV)  # bare mode reads it as it is
    token = env.get("CLAUDE_CODE_OAUTH_TOKEN", "").strip()
    betas = [b.strip() for b in env.get("ANTHROPIC_BETAS", "").split(",") if b.strip()]
    if OAUTH_BETA not in betas:
        betas.append(OAUTH_BETA)
    return BARE_ENV | {"ANTHROPIC_AUTH_TOKEN": token, "ANTHROPIC_BETAS": ",".join(betas)}


def response_format_instruction(response_format: ResponseFormat | None) -> str:
    """The system prompt's instruction standing in for ``response_format`` ("" for text).

    The CLI has no plain-text form of it, and without it the model never hears of the
    format: the reply is only checked (and stripped of fences) on the way out.
    """
    if response_format is None:
        return ""
    rule = "Answer with a single JSON object and nothing else: no prose, no Markdown fences."
    if response_format.kind == "json_object" or response_format.schema is None:
        return rule
    # sort_keys: the same schema always gives the same prompt, so processes stay reusable.
    schema = json.dumps(response_format.schema, ensure_ascii=False, sort_keys=True)
    named = f" ({response_format.name})" if response_format.name else ""
    return f"{rule} It must conform to this JSON schema{named}:\n{schema}"


class OptionsBuilder:
    """Builds spawn specs for one backend (its settings, environment and cwd)."""

    def __init__(self, settings: Settings, cli_env: Mapping[str, str] | None, cwd: str) -> None:
        self.settings = settings
        self.cwd = cwd
        self.env = cli_environment(settings, cli_env)
        self._env_items = tuple(sorted(self.env.items()))
        # Plain processes: bare mode where the credentials allow it; agents keep the
        # CLI's environment description (there it is true and useful).
        bare = bare_environment(settings, {**os.environ, **self.env})
        self.bare = bare is not None
        plain = self.env | (bare or {})
        self._plain_env_items = tuple(sorted(plain.items()))

    def default_spec(self) -> SpawnSpec:
        """The spec of a request with no system text, no tools and default settings."""
        return SpawnSpec(
            SpawnKey(NEUTRAL_SYSTEM_PROMPT, cwd=self.cwd, env=self._plain_env_items),
            model=self.settings.default_model,
            cli_path=self.settings.cli_path,
        )

    def agent_spec(
        self,
        request: CompletionRequest,
        cwd: Path,
        mcp: McpRegistry,
        tools: ClientTools | None = None,
        resume: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> SpawnSpec:
        """The spec of an agent-mode request (``request.agent`` set) working in ``cwd``."""
        assert request.agent is not None
        agent = agent_sdk_options(request.agent, cwd, mcp)
        if agent["permission_mode"] == "bypassPermissions" and os.geteuid() == 0:
            # The CLI refuses bypassPermissions as root unless told it runs in a sandbox
            # (it exits at start, measured). The operator allowed bypass
            # (agent_allow_bypass) and chose to run as root: say so, for these runs only.
            extra_env = dict(extra_env or {}) | {"IS_SANDBOX": "1"}
        base = self.spec(request, tools, resume, extra_env)
        system = request.system or ""
        suffix = getattr(tools, "system_suffix", "") if tools else ""
        if suffix:
            system = f"{system}\n\n{suffix}" if system else suffix
        key = replace(
            base.key,
            system_prompt=system,
            permission_mode=agent["permission_mode"],
            cwd=agent["cwd"],
            env=self._env_items,
        )
        agent = agent | {"max_budget_usd": request.max_budget_usd}
        return replace(base, key=key, agent=agent)

    def spec(
        self,
        request: CompletionRequest,
        tools: ClientTools | None = None,
        resume: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> SpawnSpec:
        # The effort, thinking budget and response schema were checked at decode
        # (clawrap.protocol._request_checks), before the request queued.
        budget = request.thinking_budget
        system = request.system if request.system else NEUTRAL_SYSTEM_PROMPT
        suffix = getattr(tools, "system_suffix", "") if tools else ""
        if suffix:
            # Instructions standing in for tool_choice; part of the tools' signature.
            system = f"{system}\n\n{suffix}"
        instruction = response_format_instruction(request.response_format)
        if instruction:
            system = f"{system}\n\n{instruction}"
        _startable(system, request.model)
        key = SpawnKey(
            system_prompt=system,
            tools_signature=tools.signature if tools else "",
            thinking_budget=budget,
            effort=request.effort,
            cwd=self.cwd,
            env=self._plain_env_items,
        )
        return SpawnSpec(
            key,
            request.model,
            resume=resume,
            tools=tools,
            cli_path=self.settings.cli_path,
            extra_env=tuple(sorted((extra_env or {}).items())),
        )


__all__ = [
    "BARE_ENV",
    "NEUTRAL_SYSTEM_PROMPT",
    "OptionsBuilder",
    "SpawnKey",
    "SpawnSpec",
    "bare_environment",
    "cli_environment",
    "response_format_instruction",
]
