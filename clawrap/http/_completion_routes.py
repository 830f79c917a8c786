"""The completion routes: chat completions, messages, count_tokens, and the response cache.

Each reads Claude Code's own settings first
(:func:`~clawrap.agent._mode.parse_claude_headers`: the ``X-Claude-*`` headers and
the body's ``enable_tools`` / ``claude``), takes those fields out of the body, lets
the dialect decode the rest and lays the settings over its request. Every 400, the
login gate and the key's limits answer before the request queues for anything;
an admitted run then goes through the response cache (opt-in), ``n > 1``
(:mod:`clawrap.http._choices`) or one exchange (:mod:`clawrap.http._exchange`), and
its accounting is finished whatever happens. The Responses routes reuse
:meth:`CompletionRoutes.run_exchange`, :meth:`CompletionRoutes.admit_responses` and
:meth:`CompletionRoutes.claude_settings`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import trio

from clawrap.accounting._accountant import Accountant, Run
from clawrap.accounting._keys import LOCAL, Identity
from clawrap.agent._mcp_registry import McpRegistry
from clawrap.agent._mode import parse_claude_headers
from clawrap.core._backend import Backend
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError, invalid_request
from clawrap.core._request import CompletionRequest
from clawrap.http import _security as security
from clawrap.http._asgi import (
    JSON_TYPE,
    Receive,
    Send,
    parse_json_object,
    read_body,
    retry_after_header,
    send_bytes,
    send_json,
)
from clawrap.http._exchange import Sessions, client_gone, run_exchange
from clawrap.http._health_routes import login_state
from clawrap.http._ops_routes import ToolStats
from clawrap.http._request_log import RequestRecord
from clawrap.http._response_cache import HIT_HEADER, Capture, ResponseCache, cache_key, wants_cache
from clawrap.http._route_call import Call, Handler, send_error
from clawrap.http._upstream_retry import UpstreamRetries
from clawrap.protocol._dialect import Dialect, TokenCounting
from clawrap.protocol._request_checks import check_request

# Body fields that are Claude Code's settings, not the dialect's.
_CLAUDE_FIELDS = ("enable_tools", "claude")


def unknown_url(method: str, path: str) -> ClawrapError:
    shown = path if len(path) <= 200 else path[:200] + "..."
    return ClawrapError(
        "not_found",
        f"Unknown request URL: {method} {shown}. Endpoints are under /v1 "
        "(e.g. POST /v1/chat/completions, POST /v1/messages, GET /v1/models).",
        code="unknown_url",
    )


def unavailable(path: str) -> ClawrapError:
    return ClawrapError(
        "api_error", f"{path} is not available in this build.", status=501, code="not_available"
    )


class CompletionRoutes:
    """The completion routes of one app, with what an admitted run needs."""

    def __init__(
        self,
        *,
        settings: Settings,
        backend: Backend,
        dialects: Mapping[str, Dialect],
        mcp: McpRegistry,
        accountant: Accountant,
        limiter: trio.CapacityLimiter,
        sessions: Sessions | None,
        retries: UpstreamRetries,
        cache: ResponseCache,
        tool_stats: ToolStats,
        shutdown: trio.Event,
        grace: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.dialects = dialects
        self.mcp = mcp
        self.accountant = accountant
        self.limiter = limiter
        self.sessions = sessions
        self.retries = retries
        self.cache = cache
        self.tool_stats = tool_stats
        self.shutdown = shutdown
        # How long a running request may go on once ``shutdown`` is set (read when it runs).
        self.grace = grace

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/v1/chat/completions"): self._chat_completions,
            ("POST", "/v1/messages"): self._messages,
            ("POST", "/v1/messages/count_tokens"): self._count_tokens,
            ("GET", "/v1/cache/stats"): self._cache_stats,
            ("POST", "/v1/cache/clear"): self._cache_clear,
        }

    async def _chat_completions(self, call: Call) -> None:
        await self._complete(call, "openai")

    async def _messages(self, call: Call) -> None:
        await self._complete(call, "anthropic")

    async def _complete(self, call: Call, dialect_name: str) -> None:
        dialect = self.dialects.get(dialect_name)
        if dialect is None:
            await send_error(call, unavailable(call.path))
            return
        try:
            body = parse_json_object(await self.read(call))
            headers = call.request.headers
            claude = parse_claude_headers(body, headers, self.settings, self.mcp)
            body = {k: v for k, v in body.items() if k not in _CLAUDE_FIELDS}
            request, options = dialect.decode(body, headers, self.settings)
            # Every 400 before the request queues for a session, a run slot or a process.
            request = check_request(
                claude.apply(request), max_schema_depth=self.settings.json_schema_max_depth
            )
            state = login_state(self.backend)
            refusal = state.refusal() if state is not None else None
            if refusal is not None:
                raise refusal
            n = getattr(options, "n", 1)
            if n > 1 and request.agent is not None:
                raise invalid_request("'n' above 1 is not available in agent mode.", param="n")
            run = await self._admit(call, request)
        except ClawrapError as error:
            await send_json(
                call.send,
                error.status,
                dialect.error_body(error),
                retry_after_header(error.retry_after),
            )
            call.record.error = error.kind
            return
        if run.budget_usd is not None and request.agent is not None:
            request = replace(request, max_budget_usd=run.budget_usd)
        try:
            await self._exchange(call, dialect, request, options, run)
        finally:
            await run.finish(client_gone())

    async def _admit(self, call: Call, request: CompletionRequest) -> Run:
        """The key's run, or a ClawrapError naming the limit that refuses it."""
        identity = call.identity if call.identity is not None else Identity(LOCAL)
        models = (request.requested_model, request.model)
        return await self.accountant.admit(identity, models, agent=request.agent is not None)

    async def _exchange(
        self, call: Call, dialect: Dialect, request: CompletionRequest, options: Any, run: Run
    ) -> None:
        key = None
        if wants_cache(self.settings, call.request.headers):
            key = cache_key(dialect.name, request, options)
        if key is not None:
            cached = self.cache.get(key)
            if cached is not None:
                call.record.model = request.requested_model
                await send_bytes(call.send, 200, cached, JSON_TYPE, [HIT_HEADER])
                return
            capture = Capture(call.send)
            call = replace(call, send=capture.send)
        if getattr(options, "n", 1) > 1:
            from clawrap.http._choices import run_choices

            await run_choices(
                call.receive,
                call.send,
                request=request,
                options=options,
                backend=self.backend,
                settings=self.settings,
                limiter=self.limiter,
                record=call.record,
                retries=self.retries,
                account=run,
                shutdown=self.shutdown,
                shutdown_grace=self.grace(),
            )
            return
        await self._one_exchange(
            call.receive, call.send, dialect, request, options, call.record, run
        )
        if key is not None and (response := capture.body()) is not None:
            self.cache.put(key, response)

    async def _cache_stats(self, call: Call) -> None:
        await send_json(call.send, 200, self.cache.stats())

    async def _cache_clear(self, call: Call) -> None:
        await send_json(call.send, 200, {"object": "cache.cleared", "cleared": self.cache.clear()})

    def claude_settings(
        self, body: dict[str, Any], headers: Mapping[str, str]
    ) -> Callable[[CompletionRequest], CompletionRequest]:
        """Claude Code's own settings of a request (agent mode), to lay over its decoding."""
        return parse_claude_headers(body, headers, self.settings, self.mcp).apply

    async def admit_responses(self, identity: Identity | None, request: CompletionRequest) -> Run:
        """The key's run for a Responses API request (HTTP or a WebSocket message)."""
        state = login_state(self.backend)
        refusal = state.refusal() if state is not None else None
        if refusal is not None:
            raise refusal
        identity = identity if identity is not None else Identity(LOCAL)
        models = (request.requested_model, request.model)
        return await self.accountant.admit(identity, models, agent=request.agent is not None)

    async def run_exchange(
        self,
        receive: Receive,
        send: Send,
        dialect: Dialect,
        request: CompletionRequest,
        options: Any,
        record: RequestRecord,
        run: Run,
    ) -> None:
        """An admitted run's exchange, its accounting finished whatever happens."""
        if run.budget_usd is not None and request.agent is not None:
            request = replace(request, max_budget_usd=run.budget_usd)
        try:
            await self._one_exchange(receive, send, dialect, request, options, record, run)
        finally:
            await run.finish(client_gone())

    async def _one_exchange(
        self,
        receive: Receive,
        send: Send,
        dialect: Dialect,
        request: CompletionRequest,
        options: Any,
        record: RequestRecord,
        run: Run,
    ) -> None:
        """One exchange of an admitted run, with this app's backend, limits and stores."""
        await run_exchange(
            receive,
            send,
            dialect=dialect,
            request=request,
            options=options,
            backend=self.backend,
            settings=self.settings,
            limiter=self.limiter,
            record=record,
            shutdown=self.shutdown,
            sessions=self.sessions,
            account=run,
            retries=self.retries,
            tool_stats=self.tool_stats,
            shutdown_grace=self.grace(),
        )

    async def read(self, call: Call) -> bytes:
        """The JSON body of a POST route (415 unless declared ``application/json``)."""
        refusal = security.check_json_content_type(call.request.headers)
        if refusal is not None:
            raise refusal
        limit = self.settings.body_timeout
        with trio.move_on_after(limit):
            return await read_body(call.receive, call.request.headers, self.settings.max_body_bytes)
        # The connection closes after this answer: the rest of the body is never read.
        raise ClawrapError(
            "invalid_request",
            f"The request body did not arrive within {limit:g} s (CLAWRAP_BODY_TIMEOUT).",
            status=408,
            code="body_timeout",
        )

    async def _count_tokens(self, call: Call) -> None:
        dialect = self.dialects.get("anthropic")
        if not isinstance(dialect, TokenCounting):
            await send_error(call, unknown_url(call.request.method, call.path))
            return
        try:
            body = parse_json_object(await self.read(call))
            result = dialect.count_tokens(body, self.settings)
        except ClawrapError as error:
            await send_error(call, error)
            return
        await send_json(call.send, 200, result)


__all__ = ["CompletionRoutes", "unavailable", "unknown_url"]
