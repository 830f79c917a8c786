"""``clawrap doctor``: check, one line each, what clawrap needs, and say how to fix what fails.

Checks: the Python version, the Claude Code CLI and its version, the Claude
credentials, the listening port, the data directory, unsafe settings and, with
``--live`` only, one small real request through the CLI (it spends a little of
the account's usage, so it is never sent unasked). The exit status is 1 when a
check fails, 0 otherwise; warnings do not fail.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from clawrap._version import __version__
from clawrap.core._auth import LOGIN_HINT, cli_info, detect_auth
from clawrap.core._config import Settings, SettingsError, unknown_variables

log = logging.getLogger("clawrap.doctor")

Status = Literal["ok", "warn", "fail", "skip"]

STORED_LOGIN_FIX = (
    "with a stored login the CLI adds its environment note to every plain request; run "
    "`claude setup-token` and set CLAUDE_CODE_OAUTH_TOKEN so the model sees only the client's "
    "conversation"
)

# The live request: small, no tools, no settings files, bounded.
LIVE_TIMEOUT = 90.0
LIVE_PROMPT = "Reply with the single word: ok"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


# -- the checks, each a plain function returning one Check


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    shown = ".".join(map(str, version))
    if version[:2] >= (3, 11):
        return Check("Python", "ok", shown)
    return Check("Python", "fail", f"{shown} is too old", "install Python 3.11 or newer")


def check_cli(settings: Settings) -> Check:
    info = cli_info(settings)
    if info.path is None or info.version is None:
        fix = "set CLAWRAP_CLI_PATH to a working `claude`, or reinstall claude-agent-sdk"
        where = f" ({info.path})" if info.path else ""
        return Check("Claude CLI", "fail", f"{info.error or 'not usable'}{where}", fix)
    return Check("Claude CLI", "ok", f"{info.version} ({info.source}: {info.path})")


def check_auth(settings: Settings, environ: Mapping[str, str]) -> Check:
    auth = detect_auth(settings, environ)
    if auth.ok and auth.method == "cli_login":
        # The CLI's bare mode never reads a stored login: plain requests then carry its
        # environment note (working directory, platform, date) the client never sent.
        return Check("Authentication", "warn", auth.summary, STORED_LOGIN_FIX)
    if auth.ok:
        return Check("Authentication", "ok", auth.summary)
    return Check("Authentication", "fail", auth.summary, auth.hint or LOGIN_HINT)


def check_port(settings: Settings) -> Check:
    where = f"{settings.host}:{settings.port}"
    try:
        infos = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return Check("Port", "fail", f"cannot resolve {settings.host!r}: {exc.strerror}", "")
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            # As the server will: a port left in TIME_WAIT is free to listen on.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except PermissionError:
        fix = "choose a port above 1023 with --port or CLAWRAP_PORT"
        return Check("Port", "fail", f"{where}: not allowed to listen there", fix)
    except OSError as exc:
        running = _clawrap_answers(settings.host, settings.port)
        detail = f"{where} is in use" + (" (clawrap already runs there)" if running else "")
        fix = "stop the other process, or choose another port with --port or CLAWRAP_PORT"
        if exc.errno not in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            detail = f"{where}: {exc.strerror or exc}"
        return Check("Port", "fail", detail, fix)
    return Check("Port", "ok", f"{where} is free")


def _clawrap_answers(host: str, port: int) -> bool:
    """Whether what listens there answers /health like clawrap does. Bounded, best effort."""
    connect_to = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    try:
        conn = http.client.HTTPConnection(connect_to, port, timeout=1.0)
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            return response.status == 200 and b"status" in response.read(4096)
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return False


def check_data_dir(settings: Settings) -> Check:
    path = Path(settings.data_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-", delete=True) as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        fix = "make it writable, or point CLAWRAP_DATA_DIR at a writable directory"
        return Check("Data directory", "fail", f"{path}: {exc.strerror or exc}", fix)
    return Check("Data directory", "ok", f"{path} (writable)")


def check_variables(environ: Mapping[str, str]) -> list[Check]:
    """``CLAWRAP_*`` variables no setting reads: a typo leaves a default in place unnoticed."""
    return [
        Check("Settings", "warn", f"{problem}; it is ignored", "fix or remove the variable")
        for problem in unknown_variables(environ)
    ]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_settings(settings: Settings) -> list[Check]:
    """Settings that expose the machine: each one its own line."""
    found: list[Check] = []
    exposed = not is_loopback(settings.host)
    if exposed and not settings.api_key:
        found.append(
            Check(
                "Settings",
                "fail",
                f"listening on {settings.host} (beyond this machine) without an API key",
                "set CLAWRAP_API_KEY (e.g. from `openssl rand -hex 32`) or listen on 127.0.0.1",
            )
        )
    if "*" in settings.cors_origins:
        found.append(
            Check(
                "Settings",
                "fail",
                "CLAWRAP_CORS_ORIGINS is '*': any web page you visit may call this server",
                "list the exact origins that need browser access, e.g. http://localhost:3000",
            )
        )
    if settings.agent_roots and settings.agent_allow_bypass:
        status: Status = "fail" if exposed or not settings.api_key else "warn"
        found.append(
            Check(
                "Settings",
                status,
                "agent mode may bypass permission prompts (CLAWRAP_AGENT_ALLOW_BYPASS) in "
                + ", ".join(settings.agent_roots),
                "unset CLAWRAP_AGENT_ALLOW_BYPASS unless every client is trusted"
                + ("; it needs an API key and a loopback address" if status == "fail" else ""),
            )
        )
    if not found:
        where = "loopback only" if not exposed else f"{settings.host}, API key required"
        found.append(Check("Settings", "ok", f"listening on {where}; nothing unsafe set"))
    return found


# -- the live request


def check_live(settings: Settings, environ: Mapping[str, str], model: str) -> Check:
    """One small real request through the CLI; never raises."""
    if settings.offline:
        return Check("Live request", "skip", "offline mode uses no Claude account")
    import trio

    try:
        return trio.run(_live, settings, environ, model)
    except Exception as exc:  # a doctor reports, it does not crash
        return Check("Live request", "fail", f"{type(exc).__name__}: {_first_line(exc)}")


async def _live(settings: Settings, environ: Mapping[str, str], model: str) -> Check:
    import trio
    from claude_agent_sdk import (
        AssistantMessage,
        ClaudeAgentOptions,
        ClaudeSDKClient,
        CLINotFoundError,
        ResultMessage,
    )

    # The CLI inherits os.environ; an explicitly given environment overlays it.
    env = dict(environ) if environ is not os.environ else {}
    env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"  # one upstream call, not two
    env["CLAUDE_CODE_MAX_RETRIES"] = "1"
    if settings.config_dir:
        env["CLAUDE_CONFIG_DIR"] = settings.config_dir
    stderr: list[str] = []
    options = ClaudeAgentOptions(
        tools=[],
        setting_sources=[],
        system_prompt="You answer in one word.",
        max_turns=1,
        model=model,
        env=env,
        cli_path=settings.cli_path,
        stderr=lambda line: stderr.append(line) if len(stderr) < 50 else None,
    )
    client = ClaudeSDKClient(options)
    messages = client.receive_messages()
    error: str | None = None
    text = ""
    result: Any = None
    try:
        with trio.move_on_after(LIVE_TIMEOUT) as scope:
            await client.connect()
            await client.query(LIVE_PROMPT)
            async for message in messages:
                if isinstance(message, AssistantMessage):
                    error = error or message.error
                    text += "".join(getattr(block, "text", "") for block in message.content)
                elif isinstance(message, ResultMessage):
                    result = message
                    break
    except CLINotFoundError:
        return Check("Live request", "fail", "the Claude Code CLI was not found", "see above")
    except Exception as exc:
        return Check("Live request", "fail", f"the CLI failed: {_first_line(exc)}", _tail(stderr))
    finally:
        # The SDK bounds its own teardown (EOF, SIGTERM, SIGKILL); let it finish.
        with trio.CancelScope(shield=True):
            await client.disconnect()
            # Disconnecting closes the message stream, so this ends at once; it
            # finishes the SDK's nested generators instead of leaving them to GC.
            try:
                async for _ in messages:
                    pass
            except Exception:
                # What closed the stream, reported again: the check's result is already known.
                log.debug("the live check's message stream ended in an error", exc_info=True)
    if scope.cancelled_caught:
        return Check(
            "Live request",
            "fail",
            f"no answer within {LIVE_TIMEOUT:g} s",
            "check the network and https://status.anthropic.com",
        )
    is_error = bool(getattr(result, "is_error", False))
    said = (getattr(result, "result", None) or text or "").strip()
    if error == "authentication_failed" or _looks_unauthorised(said):
        return Check(
            "Live request",
            "fail",
            f"Claude refused the credentials (401): {_first_line(said)}",
            _refused_fix(detect_auth(settings, environ).method),
        )
    if error or is_error or result is None:
        kind = error or getattr(result, "subtype", None) or "no result"
        return Check("Live request", "fail", f"{kind}: {_first_line(said)}", _tail(stderr))
    cost = getattr(result, "total_cost_usd", None)
    spent = f", cost ${cost:.4f}" if isinstance(cost, float) else ""
    answer = _first_line(said)[:40]
    return Check(
        "Live request", "ok", f"{model} answered {answer!r} in {result.duration_ms} ms{spent}"
    )


def _refused_fix(method: str) -> str:
    if method == "api_key":
        return "check ANTHROPIC_API_KEY, or unset it and run `clawrap login`"
    if method == "oauth_token":
        return "renew the token with `claude setup-token`, or unset it and run `clawrap login`"
    if method in ("bedrock", "vertex"):
        return "check the cloud credentials the CLI uses (see the Authentication line)"
    return "log in again with `clawrap login`, or set ANTHROPIC_API_KEY"


def _looks_unauthorised(text: str) -> bool:
    low = text.lower()
    return any(s in low for s in ("invalid api key", "/login", "authentication_error", "401"))


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0][:200] if lines else ""


def _tail(lines: list[str]) -> str:
    return "CLI said: " + _first_line(lines[-1]) if lines else ""


# -- running and printing


def run_checks(
    settings: Settings, environ: Mapping[str, str], *, live: bool, model: str
) -> list[Check]:
    checks = [check_python(), check_cli(settings), check_auth(settings, environ)]
    if live:
        if checks[1].status == "fail":
            checks.append(Check("Live request", "skip", "no usable CLI"))
        else:
            checks.append(check_live(settings, environ, model))
    else:
        checks.append(Check("Live request", "skip", "add --live to send one small real request"))
    checks += [check_port(settings), check_data_dir(settings), *check_settings(settings)]
    checks += check_variables(environ)
    return checks


_UNICODE = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "-"}
_ASCII = {"ok": "OK", "warn": "WARN", "fail": "FAIL", "skip": "--"}


def render(checks: list[Check], *, unicode: bool) -> str:
    marks = _UNICODE if unicode else _ASCII
    width = max(len(c.name) for c in checks)
    mark_width = max(len(m) for m in marks.values())
    lines = [f"clawrap doctor {__version__}"]
    for check in checks:
        mark = marks[check.status].ljust(mark_width)
        lines.append(f"  {mark}  {check.name.ljust(width)}  {check.detail}")
        if check.fix and check.status in ("fail", "warn"):
            lines.append(f"  {' ' * mark_width}  {' ' * width}  fix: {check.fix}")
    failed = sum(c.status == "fail" for c in checks)
    lines.append("all checks passed" if not failed else f"{failed} check(s) failed")
    text = "\n".join(lines) + "\n"
    if not unicode:
        text = text.encode("ascii", "replace").decode("ascii")
    return text


def _speaks_utf8(out: TextIO) -> bool:
    encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "")
    return encoding in ("utf8", "utf8sig")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="clawrap doctor", description="Check that clawrap can run here, and how to fix it."
    )
    parser.add_argument("--live", action="store_true", help="send one small real request")
    parser.add_argument("--port", type=int, help="the port to check (default: CLAWRAP_PORT)")
    parser.add_argument("--host", help="the address to check (default: CLAWRAP_HOST)")
    parser.add_argument("--model", default="haiku", help="model for --live (default: haiku)")
    return parser.parse_args(argv)


def doctor_main(
    argv: list[str],
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the checks, print one line each, return 1 when any failed."""
    args = parse_args(argv)
    env: Mapping[str, str] = os.environ if environ is None else environ
    stream = sys.stdout if out is None else out
    try:
        settings = Settings.from_env(env, port=args.port, host=args.host)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"clawrap doctor: {problem}", file=sys.stderr)
        return 1
    checks = run_checks(settings, env, live=args.live, model=args.model)
    # A reader that went away (`clawrap doctor | head`) is not a failed check.
    with contextlib.suppress(BrokenPipeError):
        stream.write(render(checks, unicode=_speaks_utf8(stream)))
        stream.flush()
    return 1 if any(c.status == "fail" for c in checks) else 0


__all__ = ["Check", "check_settings", "doctor_main", "is_loopback", "render", "run_checks"]
