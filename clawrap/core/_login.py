"""The CLI's login state as its own status command reports it, and what it means for requests.

Sans-IO. A prober (the Claude backend) runs ``claude auth status --json`` now and
then and hands the output to :func:`parse_status`; :class:`LoginState` keeps the
latest :class:`LoginProbe` and the last authentication failure seen upstream.

Completions are refused (:meth:`LoginState.refusal`, a 401 naming ``clawrap
login``) only while the latest probe *ran* and said "not logged in". Nothing
else closes that gate: an upstream 401 is recorded and asks for an early probe,
but it is the probe that decides, and the next probe that finds a login opens
the gate again. A probe that could not run (CLI missing, timed out, unreadable
output) leaves the state "unknown", which refuses nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from clawrap.core._errors import ClawrapError

LOGGED_OUT_MESSAGE = (
    "Claude Code is not logged in on the server: run `clawrap login` there (or set "
    "ANTHROPIC_API_KEY). Requests are served again as soon as the login is back."
)


@dataclass(frozen=True, slots=True)
class LoginProbe:
    """One run of the CLI's status command.

    ``logged_in`` is None when the command could not tell (``error`` says why).
    ``auth_method`` and ``api_provider`` are the CLI's own words (``api_key``,
    ``claude.ai``, ``oauth_token``, ...; ``firstParty``, ``bedrock``, ...).
    ``at`` is the wall-clock time (seconds since the epoch) it finished.
    """

    logged_in: bool | None
    auth_method: str | None
    api_provider: str | None
    at: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """An authentication failure reported upstream (an HTTP 401 to a model call)."""

    at: float
    code: str
    message: str


def _word(value: Any) -> str | None:
    """A short identifier from the CLI's JSON, or None (nothing long or odd is kept)."""
    if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable():
        return value
    return None


def parse_status(stdout: bytes, at: float) -> LoginProbe:
    """The probe an ``auth status --json`` output stands for (its exit status is not used:
    the CLI exits 1 when logged out, and the JSON says so more precisely)."""
    try:
        data = json.loads(stdout)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("loggedIn"), bool):
        return LoginProbe(None, None, None, at, "the CLI's status command gave no login state")
    return LoginProbe(
        data["loggedIn"], _word(data.get("authMethod")), _word(data.get("apiProvider")), at
    )


class LoginState:
    """The latest probe and the last upstream authentication failure."""

    def __init__(self) -> None:
        self.probe: LoginProbe | None = None
        self.last_failure: AuthFailure | None = None
        self.probes = 0

    def probed(self, probe: LoginProbe) -> None:
        self.probe = probe
        self.probes += 1

    def failed(self, error: ClawrapError, at: float) -> None:
        self.last_failure = AuthFailure(at, error.code or error.kind, error.message)

    @property
    def logged_in(self) -> bool | None:
        """What the latest probe found; None before the first or when it could not tell."""
        return self.probe.logged_in if self.probe is not None else None

    def refusal(self) -> ClawrapError | None:
        """The 401 completions get while the CLI reports no login; None otherwise."""
        if self.logged_in is False:
            return ClawrapError("authentication", LOGGED_OUT_MESSAGE, code="claude_not_logged_in")
        return None

    def body(self) -> dict[str, Any]:
        """The JSON-able state for ``GET /v1/auth/status``."""
        probe = self.probe
        failure = self.last_failure
        return {
            "logged_in": self.logged_in,
            "completions": "refused" if self.refusal() is not None else "served",
            "cli_status": None
            if probe is None
            else {
                "logged_in": probe.logged_in,
                "auth_method": probe.auth_method,
                "api_provider": probe.api_provider,
                "checked_at": int(probe.at),
                "error": probe.error,
            },
            "probes": self.probes,
            "last_failure": None
            if failure is None
            else {"at": int(failure.at), "code": failure.code, "message": failure.message},
        }


__all__ = ["LOGGED_OUT_MESSAGE", "AuthFailure", "LoginProbe", "LoginState", "parse_status"]
