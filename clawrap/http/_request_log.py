"""One log line per request: what was asked, what it cost, how long it took.

The router fills a :class:`RequestRecord` as the request goes (status from the
response start, model and token counts from the exchange) and logs it once at
the end. :func:`configure_logging` picks text lines or one JSON object per line
(``settings.log_format``).
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

logger = logging.getLogger("clawrap.requests")

_SAFE_ID = re.compile(r"[^A-Za-z0-9._:\-]")
MAX_REQUEST_ID = 128
# The LogRecord attribute that carries a request's fields to JsonLogFormatter.
FIELDS_ATTR = "clawrap_request"


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
    client: str | None = None  # the client's address (as trusted proxies tell it)

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


def log_request(record: RequestRecord) -> None:
    """Log ``record`` once: a text line, with the fields attached for :class:`JsonLogFormatter`."""
    data = record.fields()
    data["path"] = _printable(record.path)
    head = f"{record.method} {data['path']} {record.status if record.status else '-'}"
    rest = " ".join(
        f"{k}={_printable(str(v))}"
        for k, v in data.items()
        if k not in ("method", "path", "status")
    )
    logger.info("%s %s", head, rest, extra={FIELDS_ATTR: data})


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: request records as their fields, other records as messages."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, FIELDS_ATTR, None)
        if isinstance(fields, dict):
            out["event"] = "request"
            out.update(fields)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(log_format: str, level: str = "info") -> None:
    """Send clawrap's logs to stderr as text lines or JSON objects (``log_format``)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("clawrap")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


__all__ = [
    "JsonLogFormatter",
    "RequestRecord",
    "configure_logging",
    "log_request",
    "request_id",
]
