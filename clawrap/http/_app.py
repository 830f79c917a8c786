"""The ASGI app: a handwritten router in front of the exchange and the describing routes.

:func:`create_app` returns a plain ASGI callable handling ``http`` and
``lifespan`` scopes. Routes are a dict keyed by (method, path); every path is
also reachable without its ``/v1`` prefix, since some clients are configured
with a base URL lacking it. Before routing, the Host and Origin checks run;
after routing, the API key check (``GET /health`` stays open).

Errors are rendered in the protocol of the route (:mod:`clawrap.http._route_call`).
Every response carries ``x-request-id`` (the client's, sanitised, or a new one)
and, for configured origins, CORS headers. One log line per request
(:mod:`clawrap.http._request_log`).

The completion routes (chat completions, messages, count_tokens, the response
cache) are :mod:`clawrap.http._completion_routes`; the Responses API is
:mod:`clawrap.http._responses_routes`. The routes that describe the server
(models, pool, sessions, tools, MCP servers, health, version, landing page) live
in :mod:`clawrap.http._info_routes`;
they sit behind the API key like every route but ``/health``. The login state and the
deep health check are :mod:`clawrap.http._health_routes`; while the CLI reports no
login, completions are answered with a 401 before any run starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import trio

from clawrap.accounting._accountant import Accountant
from clawrap.accounting._keys import KeyRing
from clawrap.accounting._ledger import Ledger
from clawrap.agent._mcp_registry import McpRegistry
from clawrap.core._backend import Backend
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._models import ALIASES, advertised_models
from clawrap.http import _security as security
from clawrap.http import _wire as wire
from clawrap.http._accounting_routes import AccountingRoutes
from clawrap.http._asgi import (
    ClientDisconnected,
    Message,
    Receive,
    Request,
    Scope,
    Send,
    header_pairs,
    send_bytes,
    send_json,
)
from clawrap.http._completion_routes import CompletionRoutes, unknown_url
from clawrap.http._drain import WORK_ROUTES, Drain, draining_error
from clawrap.http._exchange import (
    SHUTDOWN_GRACE,
    Sessions,
    internal_error,
)
from clawrap.http._health_routes import HealthRoutes
from clawrap.http._info_routes import InfoRoutes
from clawrap.http._ops_routes import OpsRoutes, ToolStats
from clawrap.http._proxies import TrustedProxies
from clawrap.http._request_log import RequestRecord, log_request, request_id
from clawrap.http._response_cache import ResponseCache
from clawrap.http._responses_routes import ResponsesRoutes
from clawrap.http._responses_socket import serve_socket
from clawrap.http._route_call import MODEL_PREFIX, Call, Handler, error_shape, send_error
from clawrap.http._upstream_retry import UpstreamRetries
from clawrap.protocol._dialect import Dialect
from clawrap.sessions._responses import ResponseStore
from clawrap.sessions._store import SessionStore
from clawrap.storage._database import Database

logger = logging.getLogger("clawrap.app")

_SESSION_PREFIX = "/v1/sessions/"
REFRESH_PATH = "/v1/models/refresh"


def canonical_path(path: str) -> str:
    """``path`` with a trailing slash dropped and, for API routes, the ``/v1`` prefix added."""
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    if path.startswith("/v1/") or path in (
        "/",
        "/health",
        "/healthz/deep",
        "/version",
        "/metrics",
        "/v1",
    ):
        return path
    return "/v1" + path


def _default_dialects() -> dict[str, Dialect]:
    # Imported here: only a server needs the dialects, not every importer of the router.
    from clawrap.protocol.anthropic._dialect import AnthropicMessagesDialect
    from clawrap.protocol.openai._dialect import OpenAIChatDialect

    return {"openai": OpenAIChatDialect(), "anthropic": AnthropicMessagesDialect()}


class App:
    """The clawrap ASGI application. Create it with :func:`create_app`."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        dialects: Mapping[str, Dialect] | None,
        mcp: McpRegistry | None = None,
        sessions: SessionStore | None = None,
        accountant: Accountant | None = None,
        responses: ResponseStore | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.sessions = Sessions(sessions) if sessions is not None else None
        # What agent-mode requests may name; the statuses come from the backend.
        self.mcp = mcp = mcp if mcp is not None else McpRegistry()
        self.dialects = dict(dialects) if dialects is not None else _default_dialects()
        self.limiter = trio.CapacityLimiter(settings.max_concurrency)
        if accountant is None:
            keys = KeyRing.load(settings.api_key, settings.keys_file)
            accountant = Accountant(keys, Ledger(), clock=trio.current_time)
        self.accountant = accountant
        accountant.metrics.watch(self._load)
        # Model labels of the metrics: the served models, anything else is "other".
        self.known_models = {*advertised_models(settings), *ALIASES}
        # Set when the server begins to shut down: running exchanges end after a grace
        # (none when the server drained first: serve() sets it to 0).
        self.shutdown = trio.Event()
        self.shutdown_grace = SHUTDOWN_GRACE
        self.drain = Drain()
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.started_at = int(time.time())
        self.info = InfoRoutes(
            settings, backend, mcp, self.sessions, self.started_at, self._databases
        )
        # Stored responses: given (tests), or opened at start-up and closed at shutdown.
        self.response_store = responses
        self._own_response_store = responses is None
        self.retries = UpstreamRetries(settings)
        accountant.metrics.watch_models(self.retries.status, self._model_label)
        self.cache = ResponseCache(settings)
        self.tool_stats = ToolStats()
        self.completions = CompletionRoutes(
            settings=settings,
            backend=backend,
            dialects=self.dialects,
            mcp=mcp,
            accountant=accountant,
            limiter=self.limiter,
            sessions=self.sessions,
            retries=self.retries,
            cache=self.cache,
            tool_stats=self.tool_stats,
            shutdown=self.shutdown,
            grace=lambda: self.shutdown_grace,
        )
        self.responses = ResponsesRoutes(
            settings=settings,
            run=self.completions.run_exchange,
            admit=self.completions.admit_responses,
            claude=self.completions.claude_settings,
            store=lambda: self.response_store,
        )
        self.ops = OpsRoutes(settings, self.dialects, mcp, self.tool_stats)
        self.health = HealthRoutes(settings, backend, self.limiter, self.retries)
        self.routes: dict[tuple[str, str], Handler] = {
            **self.completions.routes(),
            **self.info.routes(),
            **AccountingRoutes(accountant).routes(),
            **self.responses.routes(),
            **self.health.routes(),
            **self.ops.routes(),
            ("GET", "/health"): self._health,
        }
        self.methods: dict[str, list[str]] = {}
        for method, path in self.routes:
            self.methods.setdefault(path, []).append(method)

    def _load(self) -> dict[str, Any]:
        stats = self.limiter.statistics()
        status = dict(self.backend.status())
        return status | {"queued": stats.tasks_waiting, "running": stats.borrowed_tokens}

    def _model_label(self, model: str) -> str:
        """A model's metrics label: a served model's own name, anything else "other"."""
        return model if model in self.known_models else "other"

    def begin_drain(self) -> None:
        """Refuse new work and report draining on /health (:mod:`clawrap.http._drain`)."""
        self.drain.begin()

    def begin_shutdown(self) -> None:
        self.drain.begin()
        self.shutdown.set()

    async def _health(self, call: Call) -> None:
        if self.drain.draining.is_set():
            await send_json(call.send, 503, {"status": "draining"}, [("retry-after", "1")])
            return
        await self.info.health(call)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            path = canonical_path(str(scope.get("path", "/")))
            with self.drain.work():
                await serve_socket(
                    scope,
                    receive,
                    send,
                    settings=self.settings,
                    keys=self.accountant.keys,
                    routes=self.responses,
                    path=path,
                    shutdown=self.drain.draining,
                    proxies=self.proxies,
                )

    def _databases(self) -> list[Database]:
        """The databases of the stores this server uses, for /health."""
        found = [self.accountant.ledger.database]
        if self.sessions is not None:
            found.append(self.sessions.store.database)
        if self.response_store is not None:
            found.append(self.response_store.database)
        return found

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message.get("type") == "lifespan.startup":
                try:
                    if self._own_response_store:
                        self.response_store = await ResponseStore.open(self.settings)
                except ClawrapError as error:
                    await send({"type": "lifespan.startup.failed", "message": error.message})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message.get("type") == "lifespan.shutdown":
                self.begin_shutdown()
                if self._own_response_store and self.response_store is not None:
                    with trio.CancelScope(shield=True):
                        await self.response_store.aclose()
                    self.response_store = None
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- dispatch ------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = self.proxies.apply(Request.from_scope(scope), scope)
        record = RequestRecord(
            request.method, request.path, request_id(request.headers.get("x-request-id"))
        )
        record.client = request.client
        raw_headers = list(scope.get("headers") or ())
        framing = wire.check_version(str(scope.get("http_version", "1.1"))) or (
            wire.check_header_size(
                wire.header_block_size(
                    request.method, bytes(scope.get("raw_path") or b""), raw_headers
                )
            )
        )
        # After a refusal of the framing, or a request framed two ways, nothing more on this
        # connection can be trusted: h11 closes it once the answer is sent.
        close = framing is not None or wire.ambiguous_length(raw_headers)
        extra = header_pairs(
            [
                ("x-request-id", record.request_id),
                ("x-content-type-options", "nosniff"),
                *security.cors_headers(self.settings, request.headers),
                *([("connection", "close")] if close else []),
            ]
        )

        gone = False

        async def tracked_send(message: Message) -> None:
            nonlocal gone
            if message.get("type") == "http.response.start":
                record.status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            if gone:
                return
            try:
                await send(message)
            except trio.BusyResourceError:
                # hypercorn closes a connection its client left (send_eof, from its reading
                # task and outside its send lock) while this task may be writing to it. The
                # client is gone: drop this and later sends, as hypercorn does after a close.
                gone = True
                record.disconnected = True

        path = canonical_path(request.path)
        call = Call(
            request, receive, tracked_send, record, path, error_shape(path, request.headers)
        )
        try:
            with self.drain.work():
                if framing is not None:
                    await send_error(call, framing)
                else:
                    await self._dispatch(call)
        except ClientDisconnected:
            record.disconnected = True
        except Exception:
            logger.exception("request failed (request id %s)", record.request_id)
            if record.status is None:
                await send_error(call, internal_error(record.request_id))
        finally:
            log_request(record)
            self._count(call)

    def _count(self, call: Call) -> None:
        record = call.record
        now = trio.current_time()
        model = record.model and self._model_label(record.model)
        first = None if record.first_token is None else record.first_token - record.started
        self.accountant.metrics.request_done(
            call.route or "other", record.status or 499, model, now - record.started, first
        )

    async def _dispatch(self, call: Call) -> None:
        headers = call.request.headers
        method = call.request.method
        refusal = (
            security.check_host(self.settings, headers)
            or security.check_origin(self.settings, headers)
            or security.check_fetch_site(self.settings, headers)
        )
        if refusal is not None:
            await send_error(call, refusal)
            return
        route = call.path
        if route in self.methods:
            pass  # a fixed route (e.g. /v1/models/status) before the patterns
        elif (
            call.path.startswith(MODEL_PREFIX)
            and len(call.path) > len(MODEL_PREFIX)
            and call.path != REFRESH_PATH
        ):
            route = "/v1/models/{id}"
            call.params["id"] = call.path[len(MODEL_PREFIX) :]
        elif call.path.startswith(_SESSION_PREFIX) and len(call.path) > len(_SESSION_PREFIX):
            route = "/v1/sessions/{id}"
        else:
            route = ResponsesRoutes.route_of(call.path, call.params) or route
        allowed = self.methods.get(route)
        if allowed is None:
            await send_error(call, unknown_url(method, call.request.path))
            return
        if method == "OPTIONS":
            await self._options(call, allowed)
            return
        call.route = route
        handler = self.routes.get((method, route))
        if handler is None:
            error = ClawrapError(
                "method_not_allowed",
                f"{method} is not allowed on {route}; use {', '.join(allowed)}.",
                code="method_not_allowed",
            )
            await send_error(call, error, [("allow", ", ".join([*allowed, "OPTIONS"]))])
            return
        if self.drain.draining.is_set() and (method, route) in WORK_ROUTES:
            await send_error(call, draining_error())
            return
        identity = security.authenticate(
            self.accountant.keys, self.settings, method, route, headers
        )
        if isinstance(identity, ClawrapError):
            if route == "/":
                await self.info.locked_landing(call)
            else:
                await send_error(call, identity)
            return
        call.identity = identity
        await handler(call)

    async def _options(self, call: Call, allowed: list[str]) -> None:
        headers = [("allow", ", ".join([*allowed, "OPTIONS"]))]
        if security.is_preflight("OPTIONS", call.request.headers):
            headers += security.preflight_headers(self.settings, call.request.headers)
        await send_bytes(call.send, 204, b"", b"text/plain", headers)


def create_app(
    settings: Settings,
    backend: Backend,
    *,
    dialects: Mapping[str, Dialect] | None = None,
    mcp: McpRegistry | None = None,
    sessions: SessionStore | None = None,
    accountant: Accountant | None = None,
    responses: ResponseStore | None = None,
) -> App:
    """The ASGI app serving ``backend``. ``dialects`` (keys "openai", "anthropic") is for tests.

    ``mcp``: the operator's MCP servers, which agent-mode requests may name (default: none).
    ``sessions``: the session store (opened and closed by the caller); without it the
    session routes and requests naming a session answer 501.
    ``accountant``: keys, limits, usage ledger and metrics (default: the settings'
    keys, a ledger in memory).
    ``responses``: the store of Responses API responses (opened and closed by the caller);
    without it the app opens its own at start-up (ASGI lifespan) and closes it at shutdown.
    """
    return App(settings, backend, dialects, mcp, sessions, accountant, responses)


__all__ = ["App", "canonical_path", "create_app"]
