"""Start and stop the server: hypercorn on trio, the backend, the offline model, the banner.

:func:`serve` runs until SIGINT/SIGTERM (or a given ``shutdown_trigger``).
It drains first (:mod:`clawrap.http._drain`): ``/health`` says draining, new work
is refused with a 503, running requests go on for up to ``CLAWRAP_DRAIN_SECONDS``.
Then hypercorn stops accepting connections, requests still running end with an
error event and their terminator, and finally the backend is closed under a
shield, so no CLI process outlives the server. A second signal ends the drain;
a third stops at once.

With ``settings.offline`` the scripted model is served on a free loopback port
in the same nursery and the CLI is pointed at it, with a throwaway config dir
and a placeholder key: nothing reaches Anthropic, no Claude account is used.

Agent mode's configuration is checked before anything starts: every
``CLAWRAP_AGENT_ROOTS`` entry must be an existing absolute directory and the
MCP file (``CLAWRAP_MCP_CONFIG``) must be valid, or start-up stops with a
message naming the problem.

The stores (sessions, stored responses, the usage ledger: SQLite files, or the
PostgreSQL of ``CLAWRAP_DATABASE_URL``) are opened and their schemas migrated
before anything else starts, so an unusable database stops start-up with a
message naming it; idle sessions are expired in the background, and the
databases are closed last.
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from functools import partial
from typing import Any, TextIO

import trio

from clawrap._version import __version__
from clawrap.accounting._accountant import Accountant
from clawrap.accounting._keys import KeyRing, KeysFileError
from clawrap.accounting._ledger import Ledger, LedgerError
from clawrap.accounting._limits import Limiter
from clawrap.accounting._window_store import LimitsStoreError, shared_storage
from clawrap.agent._mcp_registry import McpRegistry
from clawrap.agent._mode import check_agent_roots
from clawrap.cli._listen import serve_bounded
from clawrap.core._backend import Backend, KeepsSessionState
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.http._app import App, create_app
from clawrap.http._exchange import FINAL_WRITE_LIMIT, SHUTDOWN_GRACE
from clawrap.http._security import host_name, unsafe_settings_warnings
from clawrap.http._wire import MAX_HEADER_BYTES
from clawrap.sessions import _store as _sessions
from clawrap.sessions._responses import ResponseStore
from clawrap.storage._database import DatabaseError
from clawrap.storage._open import open_databases, sqlite_path

logger = logging.getLogger("clawrap.server")

ShutdownTrigger = Callable[[], Awaitable[None]]

OFFLINE_API_KEY = "clawrap-offline-placeholder-key"


def hypercorn_config(settings: Settings) -> Any:
    from hypercorn.config import Config

    config = Config()
    host = settings.host
    config.bind = [f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"]
    # Our own line per request replaces hypercorn's access log; its error log keeps warnings.
    config.accesslog = None
    hypercorn_log = logging.getLogger("clawrap.hypercorn")
    hypercorn_log.setLevel(logging.WARNING)
    config.errorlog = hypercorn_log
    # hypercorn's keep-alive timer runs from a connection's opening, and again from the end of
    # each response, until a request's headers are complete: it is the header timeout, idle
    # keep-alive time included. Its default (75 s) is longer than the 5 s of common client
    # pools, so a client never reuses a connection the server is closing.
    config.keep_alive_timeout = settings.header_timeout
    config.h11_max_incomplete_size = MAX_HEADER_BYTES
    # Running requests had the drain before hypercorn stops; an embedding that sets no
    # drain gives them SHUTDOWN_GRACE, then FINAL_WRITE_LIMIT to write their error event.
    config.graceful_timeout = SHUTDOWN_GRACE + FINAL_WRITE_LIMIT + 1.0
    # No read timeout: a client streaming a long reply sends nothing for minutes, legitimately.
    config.read_timeout = None
    config.include_server_header = False
    return config


def offline_cli_env(upstream_port: int, config_dir: str) -> dict[str, str]:
    """The CLI's environment for offline mode: the scripted model, no real credentials."""
    return {
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{upstream_port}",
        "ANTHROPIC_API_KEY": OFFLINE_API_KEY,
        "CLAUDE_CONFIG_DIR": config_dir,
        # Credentials in the user's environment must not route the CLI anywhere else.
        "ANTHROPIC_AUTH_TOKEN": "",
        "CLAUDE_CODE_OAUTH_TOKEN": "",
        "CLAUDE_CODE_USE_BEDROCK": "0",
        "CLAUDE_CODE_USE_VERTEX": "0",
        # Nothing but the scripted model may be contacted.
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }


def banner(
    settings: Settings,
    url: str,
    auth_summary: str,
    auth_hint: str,
    *,
    offline_port: int | None = None,
) -> str:
    """The start-up text: where to connect, how Claude is reached, what to watch out for."""
    lines = [
        f"clawrap {__version__} listening on {url}/v1",
        f"  OpenAI base URL     {url}/v1",
        f"  Anthropic base URL  {url}",
        f"  Claude              {auth_summary}",
    ]
    if auth_hint:
        lines.append(f"                      {auth_hint}")
    if settings.api_key:
        lines.append("  API key             required (Authorization: Bearer <key> or x-api-key)")
    else:
        lines.append("  API key             not required")
    if offline_port is not None:
        lines.append(
            f"  Offline mode        replies come from a scripted model on 127.0.0.1:{offline_port};"
            " nothing is sent to Anthropic"
        )
    lines.extend(f"  WARNING: {w}" for w in unsafe_settings_warnings(settings))
    lines.append("  Press Ctrl+C to stop.")
    return "\n".join(lines)


def _display_url(settings: Settings, bound: list[str]) -> str:
    url = bound[0] if bound else f"http://{settings.host}:{settings.port}"
    name = host_name(settings.host)
    if name in ("0.0.0.0", "::"):
        # A wildcard bind is reached through a real name; show the loopback one.
        port = url.rsplit(":", 1)[-1]
        return f"http://127.0.0.1:{port}"
    return url


async def _first_signal(signals: Any) -> None:
    async for signum in signals:
        logger.info("%s received: shutting down", signal.Signals(signum).name)
        return


async def _drain(app: App, limit: float) -> None:
    """Refuse new work and wait up to ``limit`` seconds for the running requests."""
    app.begin_drain()
    if app.drain.active:
        logger.info(
            "draining: %d request(s) in progress, up to %g s (CLAWRAP_DRAIN_SECONDS)",
            app.drain.active,
            limit,
        )
    if not await app.drain.wait(limit):
        logger.info("drain over: ending %d request(s) still running", app.drain.active)


async def _second_signal(signals: Any, app: App, fast: trio.CancelScope) -> None:
    """A second SIGINT/SIGTERM ends the drain (running requests end with an error event);
    one more during shutdown stops at once."""
    await app.drain.draining.wait()
    async for signum in signals:
        if not app.shutdown.is_set():
            logger.info("%s received again: ending the drain", signal.Signals(signum).name)
            app.drain.skip()
            continue
        logger.info("%s received again: stopping now", signal.Signals(signum).name)
        fast.cancel()
        return


async def serve(
    settings: Settings,
    *,
    backend: Backend | None = None,
    shutdown_trigger: ShutdownTrigger | None = None,
    out: TextIO | None = sys.stderr,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until a signal (or ``shutdown_trigger`` returns), then stop everything.

    ``backend`` defaults to the Claude backend (built here and closed here; a
    given backend is closed too). ``task_status.started`` receives the bound
    URLs, e.g. ``["http://127.0.0.1:8000"]``. ``out`` receives the banner.
    SystemExit, naming the file, when the session database cannot be used.
    """
    try:
        databases = await open_databases(settings)
    except DatabaseError as exc:
        raise SystemExit(f"clawrap: cannot open the database {exc}") from None
    try:
        try:
            store = await _sessions.SessionStore.open_on(
                databases.sessions, ttl=settings.session_ttl
            )
            responses = await ResponseStore.open(settings, databases.responses)
            accountant = open_accountant(settings, await Ledger.open(databases.usage))
        except _sessions.SessionStoreError as exc:
            raise SystemExit(f"clawrap: {exc.message}") from None
        except ClawrapError as exc:
            raise SystemExit(f"clawrap: {exc.message}") from None
        except LedgerError as exc:
            raise SystemExit(f"clawrap: {exc}") from None
        await _serve(
            settings,
            store,
            accountant,
            responses,
            backend=backend,
            shutdown_trigger=shutdown_trigger,
            out=out,
            task_status=task_status,
        )
    finally:
        await databases.aclose()


def usage_db_path(settings: Settings) -> str:
    """``settings.usage_db``, else ``<data_dir>/usage.sqlite3``."""
    return sqlite_path(settings, "usage")


def open_accountant(settings: Settings, ledger: Ledger) -> Accountant:
    """The server's keys, limits, ledger and metrics; SystemExit naming a bad file.

    With ``settings.limits_url`` the per-minute windows live in that shared store (on
    the wall clock, which every server reads alike); one that does not answer now is
    a warning, not a stop: it may come up after this server.
    """
    try:
        keys = KeyRing.load(settings.api_key, settings.keys_file)
        limiter = None
        if settings.limits_url:
            storage = shared_storage(settings.limits_url)
            if not storage.check():
                logger.warning("the limits store at CLAWRAP_LIMITS_URL does not answer yet")
            limiter = Limiter(time.time, storage)
    except (KeysFileError, LimitsStoreError) as exc:
        raise SystemExit(f"clawrap: {exc}") from None
    return Accountant(keys, ledger, clock=trio.current_time, limiter=limiter)


async def _serve(
    settings: Settings,
    store: _sessions.SessionStore,
    accountant: Accountant,
    responses: ResponseStore,
    *,
    backend: Backend | None,
    shutdown_trigger: ShutdownTrigger | None,
    out: TextIO | None,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    check_agent_roots(settings)  # SystemExit naming an unusable root
    mcp = McpRegistry.load(settings)
    with ExitStack() as stack:
        signals = None
        if shutdown_trigger is None:
            # Installed before anything starts, so an early Ctrl+C still shuts down cleanly.
            signals = stack.enter_context(trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))
        async with trio.open_nursery() as background:
            background.start_soon(_sessions.run_expiry, store)
            offline_port: int | None = None
            if backend is None:
                cli_env: dict[str, str] | None = None
                if settings.offline:
                    offline_port, cli_env = await _start_offline(settings, background, stack)
                backend = await _claude_backend(settings, cli_env, background, mcp)
            if isinstance(backend, KeepsSessionState):
                # What a backend keeps per session (agent working directories) ends with it.
                store.on_removed(backend.sessions_removed)
            try:
                app = create_app(
                    settings,
                    backend,
                    mcp=mcp,
                    sessions=store,
                    accountant=accountant,
                    responses=responses,
                )
                # Running requests get the drain before the shutdown, and no grace after it.
                app.shutdown_grace = 0.0
                # hypercorn types ASGI messages as TypedDicts; the app speaks plain mappings.
                asgi_app: Any = app
                fast = trio.CancelScope()
                with fast:

                    async def trigger() -> None:
                        if shutdown_trigger is not None:
                            await shutdown_trigger()
                        else:
                            await _first_signal(signals)
                        await _drain(app, settings.drain_seconds)
                        app.begin_shutdown()

                    if signals is not None:
                        background.start_soon(_second_signal, signals, app, fast)

                    async with trio.open_nursery() as web:
                        bound: list[str] = await web.start(
                            partial(
                                serve_bounded,
                                asgi_app,
                                hypercorn_config(settings),
                                settings.max_connections,
                                shutdown_trigger=trigger,
                            )
                        )
                        await _print_banner(settings, bound, offline_port, out)
                        task_status.started(bound)
            finally:
                with trio.CancelScope(shield=True):
                    await backend.aclose()
                background.cancel_scope.cancel()
    logger.info("stopped")


async def _start_offline(
    settings: Settings, nursery: trio.Nursery, stack: ExitStack
) -> tuple[int, dict[str, str]]:
    from clawrap.scripted._mock_upstream import serve_mock_upstream
    from clawrap.scripted._model import ScriptedModel

    port: int = await nursery.start(serve_mock_upstream, ScriptedModel())
    config_dir = settings.config_dir
    if not config_dir:
        config_dir = tempfile.mkdtemp(prefix="clawrap-offline-")
        stack.callback(shutil.rmtree, config_dir, ignore_errors=True)
    return port, offline_cli_env(port, config_dir)


async def _claude_backend(
    settings: Settings, cli_env: dict[str, str] | None, nursery: trio.Nursery, mcp: McpRegistry
) -> Backend:
    from clawrap.claude._backend import ClaudeBackend

    backend = ClaudeBackend(settings, cli_env=cli_env, mcp=mcp)
    await backend.start(nursery)
    backend.start_login_monitor(nursery)
    return backend


async def _print_banner(
    settings: Settings, bound: list[str], offline_port: int | None, out: TextIO | None
) -> None:
    if out is None:
        return
    try:
        from clawrap.core._auth import detect_auth

        # detect_auth may ask the OS keychain: keep it off the event loop.
        auth = await trio.to_thread.run_sync(detect_auth, settings)
        summary, hint = auth.summary, ("" if auth.ok else auth.hint)
    except ImportError:
        summary, hint = "(credential check unavailable)", ""
    text = banner(settings, _display_url(settings, bound), summary, hint, offline_port=offline_port)
    print(text, file=out, flush=True)


def run(settings: Settings) -> int:
    """Blocking entry point for the command line."""
    trio.run(partial(serve, settings))
    return 0


__all__ = ["App", "banner", "hypercorn_config", "offline_cli_env", "run", "serve"]
