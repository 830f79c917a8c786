"""The Responses API routes: create (HTTP and WebSocket share it), retrieve, delete, cancel.

``POST /v1/responses`` decodes with the responses dialect after looking up the
conversation ``previous_response_id`` names (a 404 naming that param when it is
unknown or expired), then runs an ordinary exchange. The whole conversation goes
to the backend, so a continuation whose earlier turns a live CLI process holds
is served by that process with only the new input, as for any resent history.
A response that ends is held by the store before its last event is written and
stored once the exchange is over. Hosted tools left out are named in an
``x-clawrap-ignored-tools`` header and logged. The response's id is also sent
as the ``x-clawrap-response-id`` header, before any of the body, so a balancer
can pin the next ``previous_response_id`` to this instance (``contrib/haproxy``).

``GET /v1/responses/{id}``, ``DELETE /v1/responses/{id}``,
``GET /v1/responses/{id}/input_items`` and ``POST /v1/responses/{id}/cancel``
(for a response still running) answer from the store and the running set.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import trio

from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError, invalid_request
from clawrap.core._request import CompletionRequest
from clawrap.core._session_ids import check_session_id
from clawrap.http._asgi import (
    Message,
    Receive,
    Send,
    parse_json_object,
    read_body,
    retry_after_header,
    send_chunk,
    send_json,
    start_sse,
)
from clawrap.http._exchange import run_exchange
from clawrap.http._request_log import RequestRecord
from clawrap.http._route_call import Call, Handler, send_error
from clawrap.protocol._request_checks import check_request
from clawrap.protocol.openai._decode import brief
from clawrap.protocol.responses._decode import (
    Outcome,
    Prior,
    ResponsesOptions,
    decode_responses,
    previous_response_id,
    unknown_previous,
)
from clawrap.protocol.responses._dialect import ResponsesDialect
from clawrap.protocol.responses._encode import ResponsesStreamEncoder, response_object
from clawrap.sessions._responses import ResponseStore, StoredResponse

logger = logging.getLogger("clawrap.responses")

PREFIX = "/v1/responses/"
IGNORED_TOOLS_HEADER = "x-clawrap-ignored-tools"
RESPONSE_ID_HEADER = "x-clawrap-response-id"
# Bound on writing a finished response to the store (a local SQLite write).
STORE_LIMIT = 10.0

# body, headers -> the request with Claude Code's own settings (agent mode) laid over it
ClaudeSettings = Callable[
    [dict[str, Any], Mapping[str, str]], Callable[[CompletionRequest], CompletionRequest]
]


@dataclass(slots=True)
class SocketMemory:
    """What one WebSocket keeps: its last response, continued even with ``store: false``."""

    last: Prior | None = None


def _session_id(value: str | None, headers: Mapping[str, str]) -> str | None:
    param = "session_id"
    if value is None:
        value, param = headers.get("x-session-id"), "X-Session-Id"
    return None if value is None else check_session_id(value, param)


def _not_found(response_id: str) -> ClawrapError:
    return ClawrapError(
        "not_found",
        f"No response with id {brief(response_id)} (it may have expired or been deleted).",
        code="response_not_found",
    )


class ResponsesRoutes:
    """The ``/v1/responses`` routes of one app."""

    def __init__(
        self,
        *,
        settings: Settings,
        run: Callable[..., Any],
        admit: Callable[[Any, CompletionRequest], Awaitable[Any]],
        claude: ClaudeSettings,
        store: Callable[[], ResponseStore | None],
    ) -> None:
        self.settings = settings
        self._run = run  # run_exchange with the app's backend, limiter, sessions, shutdown
        self._admit = admit  # (identity, request) -> the key's run, or a ClawrapError
        self._claude = claude
        self._store = store
        self.dialect = ResponsesDialect()
        self.running: dict[str, tuple[ResponsesOptions, trio.CancelScope]] = {}

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/v1/responses"): self.create,
            ("GET", "/v1/responses/{id}"): self.retrieve,
            ("DELETE", "/v1/responses/{id}"): self.delete,
            ("GET", "/v1/responses/{id}/input_items"): self.input_items,
            ("POST", "/v1/responses/{id}/cancel"): self.cancel,
        }

    @staticmethod
    def route_of(path: str, params: dict[str, str]) -> str | None:
        """The route pattern of a ``/v1/responses/...`` path, its id put in ``params``."""
        if not path.startswith(PREFIX) or len(path) == len(PREFIX):
            return None
        rest = path[len(PREFIX) :]
        for suffix in ("/input_items", "/cancel"):
            if rest.endswith(suffix) and len(rest) > len(suffix):
                params["id"] = rest[: -len(suffix)]
                return "/v1/responses/{id}" + suffix
        params["id"] = rest
        return "/v1/responses/{id}"

    # -- create -----------------------------------------------------------------------------

    async def create(self, call: Call) -> None:
        try:
            raw = await read_body(call.receive, call.request.headers, self.settings.max_body_bytes)
            body = parse_json_object(raw)
        except ClawrapError as error:
            await send_error(call, error)
            return
        await self.respond(
            body, call.request.headers, call.receive, call.send, call.record, call.identity
        )

    async def respond(
        self,
        body: dict[str, Any],
        headers: Mapping[str, str],
        receive: Receive,
        send: Send,
        record: RequestRecord,
        identity: Any,
        memory: SocketMemory | None = None,
    ) -> None:
        """Decode ``body``, run it as ``identity``'s and write the response to ``send`` (HTTP
        or a socket)."""
        try:
            request, options = await self.decode(body, headers, memory)
            run = await self._admit(identity, request) if options.generate else None
        except ClawrapError as error:
            record.error = error.kind
            await send_json(
                send,
                error.status,
                self.dialect.error_body(error),
                retry_after_header(error.retry_after),
            )
            return
        store = self._store() if options.store else None

        def complete(outcome: Outcome) -> None:
            self.running.pop(options.response_id, None)  # no longer cancellable
            if store is not None:
                store.hold(self._stored(options, outcome))
            if memory is not None:
                reply = (outcome.reply,) if outcome.reply is not None else ()
                turns = (*request.turns, *reply)
                memory.last = Prior(options.response_id, turns, options.system)

        options = replace(options, on_complete=complete)
        send = _with_header(send, RESPONSE_ID_HEADER, options.response_id)
        if options.ignored_tools:
            logger.info(
                "response %s: hosted tools left out: %s",
                options.response_id,
                ", ".join(options.ignored_tools),
            )
            send = _with_header(send, IGNORED_TOOLS_HEADER, ",".join(options.ignored_tools))
        if store is not None and memory is None:
            # Written before the last bytes go out: a client that continues it at once,
            # on this instance or another sharing the store, finds it.
            send = _flush_before_end(send, store, options.response_id)
        if not options.generate:
            await self._record_only(options, send)
            if store is not None:
                await self._flush(store, options.response_id)
            return
        scope = trio.CancelScope()
        self.running[options.response_id] = (options, scope)
        try:
            with scope:
                await self._run(receive, send, self.dialect, request, options, record, run)
        finally:
            self.running.pop(options.response_id, None)
            if store is not None:
                await self._flush(store, options.response_id)

    @staticmethod
    async def _flush(store: ResponseStore, response_id: str) -> None:
        await _flush(store, response_id)

    @staticmethod
    async def _record_only(options: ResponsesOptions, send: Send) -> None:
        """A response with ``generate: false``: completed at once, empty, its input kept."""
        encoder = ResponsesStreamEncoder(options)
        if options.echo.get("stream"):
            await start_sse(send)
            await send_chunk(send, encoder.start() + encoder.finish(), more=False)
        else:
            events = encoder.start_events() + encoder.finish_events()
            await send_json(send, 200, events[-1]["response"])

    async def decode(
        self, body: dict[str, Any], headers: Mapping[str, str], memory: SocketMemory | None
    ) -> tuple[CompletionRequest, ResponsesOptions]:
        apply = self._claude(body, headers)
        body = {k: v for k, v in body.items() if k not in ("enable_tools", "claude")}
        body = await self._resolve_references(body)
        previous = previous_response_id(body)
        prior: Prior | None = None
        if previous is not None:
            prior = await self.prior(previous, memory)
        request, options = decode_responses(
            body, headers, self.settings, prior, session_id=_session_id
        )
        request = apply(request)
        # A warm-up (generate: false) runs nothing: its input may hold no turn yet.
        return (check_request(request) if options.generate else request), options

    async def _resolve_references(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with its ``item_reference`` input items replaced by the stored items."""
        items = body.get("input")
        if not isinstance(items, list) or not any(
            isinstance(i, dict) and i.get("type") == "item_reference" for i in items
        ):
            return body
        store = self._store()
        resolved: list[Any] = []
        for n, item in enumerate(items):
            if not (isinstance(item, dict) and item.get("type") == "item_reference"):
                resolved.append(item)
                continue
            item_id = item.get("id")
            found = (
                await store.item(item_id)
                if store is not None and isinstance(item_id, str) and len(item_id) <= 200
                else None
            )
            if found is None:
                shown = brief(item_id) if isinstance(item_id, str) else "missing"
                raise ClawrapError(
                    "not_found",
                    f"Item with id {shown} not found (item references need a stored response).",
                    param=f"input[{n}].id",
                    code="item_not_found",
                )
            resolved.append(found)
        return {**body, "input": resolved}

    async def prior(self, response_id: str, memory: SocketMemory | None) -> Prior:
        """The conversation up to ``response_id``: the socket's last, else the store's."""
        if (
            memory is not None
            and memory.last is not None
            and memory.last.response_id == response_id
        ):
            return memory.last
        store = self._store()
        chain = await store.chain(response_id) if store is not None else None
        if not chain:
            raise unknown_previous(response_id)
        turns = tuple(t for r in chain for t in r.turns)
        return Prior(response_id, turns, chain[-1].system)

    def _stored(self, options: ResponsesOptions, outcome: Outcome) -> StoredResponse:
        turns = (*options.new_turns, *([outcome.reply] if outcome.reply else []))
        return StoredResponse(
            options.response_id,
            options.previous_response_id,
            outcome.response,
            list(options.input_items),
            tuple(turns),
            options.system,
            outcome.items,
        )

    # -- the stored ones ----------------------------------------------------------------------

    async def _stored_or_404(self, call: Call) -> StoredResponse:
        response_id = call.params.get("id", "")
        store = self._store()
        found = await store.get(response_id) if store is not None else None
        if found is None:
            raise _not_found(response_id)
        return found

    async def retrieve(self, call: Call) -> None:
        try:
            if call.params.get("id", "") in self.running:
                options, _ = self.running[call.params["id"]]
                await send_json(call.send, 200, response_object(options, "in_progress", []))
                return
            found = await self._stored_or_404(call)
        except ClawrapError as error:
            await send_error(call, error)
            return
        await send_json(call.send, 200, found.body)

    async def delete(self, call: Call) -> None:
        response_id = call.params.get("id", "")
        store = self._store()
        try:
            deleted = await store.delete(response_id) if store is not None else False
            if not deleted:
                raise _not_found(response_id)
        except ClawrapError as error:
            await send_error(call, error)
            return
        await send_json(
            call.send, 200, {"id": response_id, "object": "response.deleted", "deleted": True}
        )

    async def input_items(self, call: Call) -> None:
        try:
            found = await self._stored_or_404(call)
            items = _page(found.input_items, call.request.query)
        except ClawrapError as error:
            await send_error(call, error)
            return
        await send_json(call.send, 200, items)

    async def cancel(self, call: Call) -> None:
        response_id = call.params.get("id", "")
        # Taken out at once: a second cancel must not find it while the run winds down.
        running = self.running.pop(response_id, None)
        if running is None:
            error = (
                invalid_request(
                    "Only a response still running can be cancelled.", code="not_running"
                )
                if await self._exists(response_id)
                else _not_found(response_id)
            )
            await send_error(call, error)
            return
        options, scope = running
        scope.cancel()
        await send_json(call.send, 200, response_object(options, "cancelled", []))

    async def _exists(self, response_id: str) -> bool:
        store = self._store()
        try:
            return store is not None and await store.get(response_id) is not None
        except ClawrapError:
            return False


def _page(items: list[dict[str, Any]], query: str) -> dict[str, Any]:
    """``input_items`` as a list page (``?order=asc|desc&limit=N&after=id``)."""
    params = dict(p.partition("=")[::2] for p in query.split("&") if p)
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_request("'order' must be 'asc' or 'desc'.", param="order")
    try:
        limit = int(params.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise invalid_request("'limit' must be between 1 and 100.", param="limit")
    ordered = items if order == "asc" else items[::-1]
    after = params.get("after")
    if after:
        ids = [i.get("id") for i in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(ordered) > limit,
    }


def _with_header(send: Send, name: str, value: str) -> Send:
    """``send`` that adds one header to the response's start."""
    header = (name.encode("latin-1"), value.encode("latin-1", "replace"))

    async def wrapped(message: Message) -> None:
        if message.get("type") == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), header]}
        await send(message)

    return wrapped


async def _flush(store: ResponseStore, response_id: str) -> None:
    with trio.move_on_after(STORE_LIMIT) as shielded:
        shielded.shield = True
        try:
            await store.flush(response_id)
        except ClawrapError:
            logger.error("response %s was not stored", response_id)


def _flush_before_end(send: Send, store: ResponseStore, response_id: str) -> Send:
    """``send`` that writes the held response before the body's last message."""

    async def sending(message: Message) -> None:
        if message.get("type") == "http.response.body" and not message.get("more_body"):
            await _flush(store, response_id)
        await send(message)

    return sending


__all__ = ["IGNORED_TOOLS_HEADER", "ResponsesRoutes", "SocketMemory", "run_exchange"]
