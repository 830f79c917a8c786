"""One log line per request: what was asked, what it cost, how long it took.

The router fills a :class:`RequestRecord` as the request goes (status from the
response start, model and token counts from the exchange) and logs it once at
the end, as text or as one JSON object per line (``settings.log_format``).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import asdict, dataclass, field

import trio

logger = logging.getLogger("clawrap.requests")

_SAFE_ID = re.compile(r"[^A-Za-z0-9._:\-]")
MAX_REQUEST_ID = 128


def request_id(sent: str | None) -> str:
    """The client's ``X-Request-Id`` stripped to safe characters, or a new one.

    Sanitised because it is echoed in a header and written to logs: no control
    characters, no log-line injection, bounded length.
    """
    if sent:
        cleaned = _SAFE_ID.sub("", sent)[:MAX_REQUEST_ID]
        if cleaned:
            return cleaned
    return "req_" + secrets.token_hex(12)


@dataclass(slots=True)
class RequestRecord:
    method: str
    path: str
    request_id: str
    started: float = field(default_factory=trio.current_time)
    status: int | None = None
    model: str | None = None
    stream: bool | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    first_token: float | None = None  # trio time of the first content event
    error: str | None = None  # error kind, when the request failed
    disconnected: bool = False

    def mark_first_token(self) -> None:
        if self.first_token is None:
            self.first_token = trio.current_time()

    def fields(self) -> dict[str, object]:
        now = trio.current_time()
        data = asdict(self)
        del data["started"], data["first_token"]
        data["first_token_ms"] = (
            None if self.first_token is None else round((self.first_token - self.started) * 1000)
        )
        data["total_ms"] = round((now - self.started) * 1000)
        return {k: v for k, v in data.items() if v is not None and v is not False}


def _printable(text: str) -> str:
    # The path is the client's (percent-decoded): a "%0a" must not start a forged log line.
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def log_request(record: RequestRecord, log_format: str) -> None:
    data = record.fields()
    data["path"] = _printable(record.path)
    if log_format == "json":
        logger.info(json.dumps({"event": "request", **data}, ensure_ascii=False))
        return
    head = f"{record.method} {data['path']} {record.status if record.status else '-'}"
    rest = " ".join(
        f"{k}={_printable(str(v))}"
        for k, v in data.items()
        if k not in ("method", "path", "status")
    )
    logger.info("%s %s", head, rest)


__all__ = ["RequestRecord", "log_request", "request_id"]
