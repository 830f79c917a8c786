"""What a session id may be: the one rule every surface and the store check it by.

Pure. Decoders call :func:`check_session_id` on a request's ``session_id`` (or
``X-Session-Id``) so that a bad id is a 400 at decode, before any slot or process is
taken; the session store and its routes apply the same rule to what they are handed.
"""

from __future__ import annotations

import re

from clawrap.core._errors import invalid_request

MAX_ID_LENGTH = 200  # session ids, branch ids included

_ID = re.compile(r"[A-Za-z0-9._:-]+")


def check_session_id(value: str, param: str = "session_id") -> str:
    """``value`` if it is a usable session id, else a 400 naming ``param``."""
    if not (0 < len(value) <= MAX_ID_LENGTH and _ID.fullmatch(value)):
        raise invalid_request(
            f"'{param}' must be 1 to {MAX_ID_LENGTH} characters from letters, digits and . _ : -",
            param=param,
            code="invalid_session_id",
        )
    return value


__all__ = ["MAX_ID_LENGTH", "check_session_id"]
