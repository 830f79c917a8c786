"""HTTP/1 framing that hypercorn and h11 let through, checked before routing.

Pure functions over the ASGI scope's version and headers; the app answers a
refusal and closes the connection.

- An HTTP version other than 1.0/1.1 in an HTTP/1 request line (``HTTP/2.0``)
  is a 505: h11 parses any ``HTTP/d.d``, and hypercorn hands it on.
- A request with both ``Content-Length`` and ``Transfer-Encoding`` is served
  (h11 frames it by ``Transfer-Encoding``) but its connection is closed after
  the answer, as RFC 9112 section 6.1 requires: a proxy in front may have framed
  it the other way, and whatever follows on that connection cannot be trusted.
- A header block over :data:`MAX_HEADER_BYTES` is a 431. h11's own bound
  (``h11_max_incomplete_size``) applies only to a block still incomplete when
  the buffer passes it, and hypercorn reads 64 KiB at a time: a block that
  completes in the read crossing the bound (up to ~128 KiB) was accepted.
  h11's bound stays as the memory guard; this is the size rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from clawrap.core._errors import ClawrapError

# The most bytes of request line and headers a request may have (also h11's buffer bound).
MAX_HEADER_BYTES = 64 * 1024
HTTP_VERSIONS = frozenset({"1.0", "1.1", "2", "3"})


def check_version(version: str) -> ClawrapError | None:
    """505 for an HTTP version this server does not speak."""
    if version in HTTP_VERSIONS:
        return None
    shown = version if len(version) <= 10 else version[:10] + "..."
    return ClawrapError(
        "invalid_request",
        f"HTTP version {shown!r} is not supported; use HTTP/1.1.",
        status=505,
        code="http_version_not_supported",
    )


def header_block_size(method: str, raw_path: bytes, headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The size of the request line and header block as sent (to within a few bytes)."""
    size = len(method) + len(raw_path) + len(" HTTP/1.1\r\n\r\n") + 1
    for name, value in headers:
        size += len(name) + len(value) + 4  # ": " and CRLF
    return size


def check_header_size(size: int) -> ClawrapError | None:
    """431 for a header block over :data:`MAX_HEADER_BYTES`."""
    if size <= MAX_HEADER_BYTES:
        return None
    return ClawrapError(
        "invalid_request",
        f"The request's headers are {size} bytes; the limit is {MAX_HEADER_BYTES}.",
        status=431,
        code="headers_too_large",
    )


def ambiguous_length(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Both ``Content-Length`` and ``Transfer-Encoding``: answer, then close."""
    names = {bytes(name).lower() for name, _ in headers}
    return b"content-length" in names and b"transfer-encoding" in names


__all__ = [
    "HTTP_VERSIONS",
    "MAX_HEADER_BYTES",
    "ambiguous_length",
    "check_header_size",
    "check_version",
    "header_block_size",
]
