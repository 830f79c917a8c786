"""clawrap's one family of errors.

Every failure a client can see is a :class:`ClawrapError`. Each carries the HTTP
status it becomes and a protocol-neutral ``kind``; the OpenAI and Anthropic
encoders render it in their own shape. Exceptions from below (the SDK, the CLI,
the network) are translated into this family at the backend boundary, so no
caller ever handles a foreign exception and no internal text reaches a client.
"""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal[
    "invalid_request",  # 400: the request is malformed or asks for something impossible
    "authentication",  # 401: missing or wrong key, or the Claude login is lost
    "permission",  # 403: not allowed (origin, agent mode disabled, ...)
    "not_found",  # 404: unknown route or model
    "method_not_allowed",  # 405
    "conflict",  # 409: e.g. a session already busy
    "request_too_large",  # 413
    "rate_limit",  # 429: upstream (or our own limiter) says slow down
    "api_error",  # 500/502: something failed upstream or inside
    "overloaded",  # 503/529: upstream overloaded, CLI cannot start
    "timeout",  # 504: the request ran past its deadline
]

_DEFAULT_STATUS: dict[ErrorKind, int] = {
    "invalid_request": 400,
    "authentication": 401,
    "permission": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "request_too_large": 413,
    "rate_limit": 429,
    "api_error": 502,
    "overloaded": 503,
    "timeout": 504,
}


class ClawrapError(Exception):
    """An error a client may see.

    ``message`` is written for the client: it must never contain internal text
    (tracebacks, file paths of the server, raw exception reprs).
    ``param`` names the offending request field, where there is one.
    ``code`` is a short machine-readable code (OpenAI's ``error.code``).
    ``retry_after`` (seconds) becomes a ``retry-after`` header.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.status = status if status is not None else _DEFAULT_STATUS[kind]
        self.param = param
        self.code = code
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ClawrapError({self.kind!r}, {self.message!r}, status={self.status})"


def invalid_request(
    message: str, *, param: str | None = None, code: str | None = None
) -> ClawrapError:
    """Shorthand for a 400 naming the offending field."""
    return ClawrapError("invalid_request", message, param=param, code=code)


__all__ = ["ClawrapError", "ErrorKind", "invalid_request"]
