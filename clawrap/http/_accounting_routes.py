"""``GET /v1/usage`` (the usage ledger) and ``GET /metrics`` (Prometheus).

``GET /v1/usage`` answers with the ledger's rows, one per key, model and UTC day,
and their total::

    {"object": "list", "data": [{"key", "model", "date", "requests", "input_tokens",
     "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd", "errors"}],
     "total": {...the same sums...}}

Query: ``start`` and ``end`` (inclusive days, ``YYYY-MM-DD``) and, for an admin key,
``key`` (a key's name). A key that is not an admin sees its own rows only.
``GET /metrics`` is the Prometheus text format; it answers to any valid key, and
to ``CLAWRAP_METRICS_KEY``, which opens nothing else.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from urllib.parse import parse_qsl

from clawrap.accounting._accountant import Accountant
from clawrap.accounting._ledger import LedgerError, UsageRow
from clawrap.accounting._metrics import CONTENT_TYPE
from clawrap.core._errors import ClawrapError, invalid_request
from clawrap.http._asgi import send_bytes, send_json
from clawrap.http._route_call import Call, Handler, send_error

_SUMMED = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "errors",
)

logger = logging.getLogger("clawrap.accounting")


def _day(query: dict[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat() if len(value) == 10 else _bad(name)
    except ValueError:
        return _bad(name)


def _bad(name: str) -> str:
    raise invalid_request(f"{name} must be a day as YYYY-MM-DD.", param=name)


def row_object(row: UsageRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "model": row.model,
        "date": row.day,
        **{name: getattr(row, name) for name in _SUMMED},
    }


def usage_body(rows: list[UsageRow]) -> dict[str, Any]:
    data = [row_object(r) for r in rows]
    total: dict[str, Any] = {name: sum(r[name] for r in data) for name in _SUMMED}
    total["cost_usd"] = round(total["cost_usd"], 10)
    return {"object": "list", "data": data, "total": total}


class AccountingRoutes:
    def __init__(self, accountant: Accountant) -> None:
        self.accountant = accountant

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("GET", "/v1/usage"): self.usage, ("GET", "/metrics"): self.metrics}

    async def usage(self, call: Call) -> None:
        identity = call.identity
        try:
            if identity is None:
                raise ClawrapError("authentication", "Missing API key.", code="invalid_api_key")
            try:
                query = dict(parse_qsl(call.request.query, max_num_fields=10))
            except ValueError:
                raise invalid_request("Malformed query string.") from None
            key = query.get("key")
            if not identity.admin:
                if key is not None and key != identity.name:
                    raise ClawrapError(
                        "permission",
                        "Only an admin key may read the usage of other keys.",
                        code="not_admin",
                    )
                key = identity.name
            start, end = _day(query, "start"), _day(query, "end")
            try:
                rows = await self.accountant.ledger.rows(key, start, end)
            except LedgerError:
                logger.exception("the usage ledger cannot be read")
                raise ClawrapError(
                    "api_error",
                    "The usage ledger cannot be read; the server log has the details.",
                    status=503,
                    code="ledger_unavailable",
                ) from None
        except ClawrapError as error:
            await send_error(call, error)
            return
        await send_json(call.send, 200, usage_body(rows))

    async def metrics(self, call: Call) -> None:
        body = self.accountant.metrics.render()
        await send_bytes(call.send, 200, body, CONTENT_TYPE.encode())


__all__ = ["AccountingRoutes", "usage_body"]
