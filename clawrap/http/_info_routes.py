"""The routes that describe the server: models, pool, sessions, tools, MCP servers, health, version.

:class:`InfoRoutes` answers ``GET /v1/models`` and ``/v1/models/{id}``,
``GET /v1/pool``, the session routes (:mod:`clawrap.http._session_routes`; a 501
when the server has no store), ``GET /v1/tools`` and ``GET /v1/mcp/servers``
(what agent mode offers), ``GET /health``, ``GET /version`` and the landing
page ``GET /`` (and the page shown in its place when an API key is required).
None of them starts a CLI process or calls upstream.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import trio

from clawrap._version import __version__
from clawrap.agent._mcp_registry import McpRegistry
from clawrap.agent._tools import tools_body
from clawrap.core._auth import cli_info, detect_auth, sdk_version
from clawrap.core._backend import Backend, ListsModels, OffersAgentTools, RunsMcpServers
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._models import note_live_ids
from clawrap.http._asgi import send_bytes, send_json
from clawrap.http._exchange_sessions import Sessions
from clawrap.http._landing import render_landing, render_locked
from clawrap.http._model_list import advertised, model_object, models_body
from clawrap.http._readiness import Probe, store_readiness
from clawrap.http._route_call import Call, Handler, send_error

HTML_TYPE = b"text/html; charset=utf-8"


def version_body(settings: Settings) -> dict[str, str | None]:
    """clawrap's version, the claude-agent-sdk's and the CLI's, without starting the CLI.

    ``cli_version`` is the SDK's record for its bundled CLI; None when it cannot
    be known without running the binary (a ``cli_path`` of the operator's).
    """
    return {
        "name": "clawrap",
        "version": __version__,
        "sdk_version": sdk_version(),
        "cli_version": cli_info(settings, run=False).version,
    }


class InfoRoutes:
    """The handlers of the describing routes, over the app's settings, backend and stores."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        mcp: McpRegistry,
        sessions: Sessions | None,
        started_at: int,
        databases: Probe = list,
    ) -> None:
        self.databases = databases  # the stores' databases, which /health checks
        self.settings = settings
        self.backend = backend
        self.mcp = mcp
        self.sessions = sessions
        self.started_at = started_at

    def routes(self) -> dict[tuple[str, str], Handler]:
        """The handlers keyed by (method, route), as the router's table takes them."""
        return {
            ("GET", "/v1/models"): self.models,
            ("GET", "/v1/models/{id}"): self.model,
            ("POST", "/v1/models/refresh"): self.refresh_models,
            ("GET", "/v1/pool"): self.pool,
            ("GET", "/v1/sessions"): self.session_route,
            ("GET", "/v1/sessions/{id}"): self.session_route,
            ("DELETE", "/v1/sessions/{id}"): self.session_route,
            ("GET", "/v1/tools"): self.tools,
            ("GET", "/v1/mcp/servers"): self.mcp_servers,
            ("GET", "/health"): self.health,
            ("GET", "/v1/api/hello"): self.hello,
            ("HEAD", "/v1/api/hello"): self.hello,
            ("GET", "/version"): self.version,
            ("GET", "/"): self.landing,
        }

    async def _live(self, *, refresh: bool = False) -> list[dict[str, Any]] | None:
        """The backend's live model list, when it has one (remembered as served ids)."""
        if not isinstance(self.backend, ListsModels):
            return None
        live = await self.backend.model_list(refresh=refresh)
        if live is not None:
            note_live_ids(m["id"] for m in live)
        return live

    async def models(self, call: Call) -> None:
        live = await self._live()
        await send_json(
            call.send, 200, models_body(self.settings, call.shape, self.started_at, live)
        )

    async def refresh_models(self, call: Call) -> None:
        live = await self._live(refresh=True)
        await send_json(
            call.send, 200, models_body(self.settings, call.shape, self.started_at, live)
        )

    async def model(self, call: Call) -> None:
        live = await self._live()
        try:
            body = model_object(self.settings, call.params["id"], call.shape, self.started_at, live)
        except ClawrapError as error:
            await send_error(call, error)
            return
        await send_json(call.send, 200, body)

    async def session_route(self, call: Call) -> None:
        from clawrap.http._session_routes import session_route

        try:
            if self.sessions is None:
                raise ClawrapError(
                    "api_error",
                    "Sessions are not available on this server.",
                    status=501,
                    code="sessions_unavailable",
                )
            try:
                query = dict(parse_qsl(call.request.query, max_num_fields=10))
            except ValueError:
                raise ClawrapError("invalid_request", "Malformed query string.") from None
            tail = call.path[len("/v1/sessions") :]
            body = await session_route(self.sessions.store, call.request.method, tail, query)
        except ClawrapError as error:
            await send_error(call, error)
            return
        await send_json(call.send, 200, body)

    async def pool(self, call: Call) -> None:
        await send_json(call.send, 200, self.backend.status())

    async def tools(self, call: Call) -> None:
        if isinstance(self.backend, OffersAgentTools):
            body = self.backend.agent_tools()
        else:
            body = tools_body(self.settings)
        await send_json(call.send, 200, body)

    async def mcp_servers(self, call: Call) -> None:
        if isinstance(self.backend, RunsMcpServers):
            data = self.backend.mcp_servers()  # with the statuses its runs reported
        else:
            data = self.mcp.describe()
        await send_json(call.send, 200, {"object": "list", "data": data})

    async def health(self, call: Call) -> None:
        status, body = await store_readiness(self.databases())
        await send_json(call.send, status, body)

    async def hello(self, call: Call) -> None:
        """Claude Code's reachability probe (``HEAD /api/hello``): 200, and for GET a body."""
        body = b"" if call.request.method == "HEAD" else b'{"status":"ok"}'
        await send_bytes(call.send, 200, body, b"application/json")

    async def version(self, call: Call) -> None:
        # Reads the installed packages' files: kept off the event loop like any disk access.
        body = await trio.to_thread.run_sync(version_body, self.settings)
        await send_json(call.send, 200, body)

    async def landing(self, call: Call) -> None:
        host = call.request.headers.get("host", f"{self.settings.host}:{self.settings.port}")
        # detect_auth may ask the OS keychain: keep it off the event loop.
        auth = await trio.to_thread.run_sync(detect_auth, self.settings)
        page = render_landing(
            self.settings,
            auth,
            base_url=f"http://{host}/v1",
            models=advertised(self.settings),
            version=__version__,
        )
        await send_bytes(call.send, 200, page.encode(), HTML_TYPE)

    async def locked_landing(self, call: Call) -> None:
        """The landing page's place when the API key is missing or wrong: a 401 page."""
        call.record.error = "authentication"
        await send_bytes(call.send, 401, render_locked().encode(), HTML_TYPE)


__all__ = ["HTML_TYPE", "InfoRoutes", "version_body"]
