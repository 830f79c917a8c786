"""Which Claude credentials the CLI will use, and which CLI binary, without revealing secrets.

:func:`detect_auth` looks at the same places the Claude Code CLI looks, in the
same order of precedence (cloud providers first, then keys and tokens in the
environment, then the stored ``claude login``), and describes what it found in
one line. Secrets are never shown: at most the last four characters of a key.

:func:`cli_info` names the CLI binary the backend will start (an explicit
``cli_path``, else the binary bundled in the claude-agent-sdk wheel, else
``claude`` on ``PATH``, the same order as the SDK) and its version.

The names checked here were read from the bundled CLI (``strings``): the
environment variables below, ``<config dir>/.credentials.json`` (config dir:
``CLAUDE_CONFIG_DIR`` or ``~/.claude``) and, on macOS, the Keychain item
``Claude Code-credentials`` (with ``-<sha256(config dir)[:8]>`` appended when
``CLAUDE_CONFIG_DIR`` is set).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from clawrap.core._config import Settings

AuthMethod = Literal["api_key", "oauth_token", "cli_login", "bedrock", "vertex", "offline", "none"]

LOGIN_HINT = "run `clawrap login` (signs in with the Claude Code CLI) or set ANTHROPIC_API_KEY"

# How long a probe of the outside world (Keychain, `claude --version`) may take.
_PROBE_TIMEOUT = 5.0

# The CLI's own test for a true environment flag.
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class AuthInfo:
    """What authenticates the CLI to Claude. ``summary`` and ``hint`` hold no secret."""

    method: AuthMethod
    ok: bool
    summary: str
    hint: str = ""


@dataclass(frozen=True, slots=True)
class CliInfo:
    """The CLI binary the backend will run.

    ``source`` is "settings" (``cli_path``), "bundled" (inside the SDK wheel),
    "path" (``claude`` on ``PATH``) or "none". ``error`` says why ``path`` or
    ``version`` is missing.
    """

    path: str | None
    source: Literal["settings", "bundled", "path", "none"]
    version: str | None
    error: str | None = None


def mask(secret: str) -> str:
    """A secret shown only by its last four characters, e.g. ``...a1b2``."""
    secret = secret.strip()
    if len(secret) < 12:
        # A short value could be guessed from its tail; show nothing of it.
        return "(set)"
    return "..." + secret[-4:]


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _TRUE


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def claude_config_dir(settings: Settings, env: Mapping[str, str]) -> Path:
    """The directory the CLI keeps its login and transcripts in."""
    if settings.config_dir:
        return Path(settings.config_dir).expanduser()
    configured = _get(env, "CLAUDE_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser()
    return _home(env) / ".claude"


def _home(env: Mapping[str, str]) -> Path:
    home = _get(env, "HOME")
    return Path(home) if home else Path.home()


def detect_auth(settings: Settings, environ: Mapping[str, str] | None = None) -> AuthInfo:
    """Describe the credentials the CLI will use, in the CLI's order of precedence.

    ``environ`` defaults to ``os.environ``, which the CLI inherits. Never raises:
    unreadable files and failing probes count as "not found".
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    if settings.offline:
        return AuthInfo(
            "offline",
            True,
            "offline: a scripted model on loopback, no Claude account used",
        )
    if _flag(env, "CLAUDE_CODE_USE_BEDROCK"):
        return _bedrock(env)
    if _flag(env, "CLAUDE_CODE_USE_VERTEX"):
        return _vertex(env)

    config_dir = claude_config_dir(settings, env)
    login = _cli_login(config_dir, env, explicit=bool(settings.config_dir))
    also = (
        f"; a Claude Code login is also present ({login.summary}) but is not used"
        if login.ok
        else ""
    )

    api_key = _get(env, "ANTHROPIC_API_KEY")
    if api_key:
        return AuthInfo("api_key", True, f"ANTHROPIC_API_KEY {mask(api_key)}{also}")
    for name in ("CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"):
        token = _get(env, name)
        if token:
            return AuthInfo("oauth_token", True, f"{name} {mask(token)}{also}")
    if login.ok:
        return login
    return AuthInfo(
        "none",
        False,
        f"no Claude credentials found (looked for a login in {_tilde(config_dir, env)})",
        LOGIN_HINT,
    )


def _bedrock(env: Mapping[str, str]) -> AuthInfo:
    region = _get(env, "AWS_REGION") or _get(env, "AWS_DEFAULT_REGION")
    if _get(env, "AWS_BEARER_TOKEN_BEDROCK"):
        creds = "AWS_BEARER_TOKEN_BEDROCK"
    elif _get(env, "AWS_ACCESS_KEY_ID"):
        creds = "AWS_ACCESS_KEY_ID"
    elif _get(env, "AWS_PROFILE"):
        creds = f"AWS profile {_get(env, 'AWS_PROFILE')!r}"
    elif _flag(env, "CLAUDE_CODE_SKIP_BEDROCK_AUTH"):
        creds = "no AWS auth (CLAUDE_CODE_SKIP_BEDROCK_AUTH, e.g. behind a gateway)"
    else:
        creds = "the AWS default credential chain"
    if not region:
        return AuthInfo(
            "bedrock",
            False,
            f"Amazon Bedrock (CLAUDE_CODE_USE_BEDROCK) with {creds}, but no region",
            "set AWS_REGION (e.g. us-east-1); the CLI does not read the region from ~/.aws/config",
        )
    return AuthInfo("bedrock", True, f"Amazon Bedrock in {region} with {creds}")


def _vertex(env: Mapping[str, str]) -> AuthInfo:
    project = _get(env, "ANTHROPIC_VERTEX_PROJECT_ID")
    region = _get(env, "CLOUD_ML_REGION")
    if _get(env, "GOOGLE_APPLICATION_CREDENTIALS"):
        creds = "GOOGLE_APPLICATION_CREDENTIALS"
    elif _flag(env, "CLAUDE_CODE_SKIP_VERTEX_AUTH"):
        creds = "no Google auth (CLAUDE_CODE_SKIP_VERTEX_AUTH, e.g. behind a gateway)"
    else:
        creds = "Google application default credentials"
    missing = [
        name
        for name, value in (("ANTHROPIC_VERTEX_PROJECT_ID", project), ("CLOUD_ML_REGION", region))
        if not value
    ]
    if missing:
        return AuthInfo(
            "vertex",
            False,
            f"Google Vertex AI (CLAUDE_CODE_USE_VERTEX) with {creds}, missing {', '.join(missing)}",
            "set " + " and ".join(missing) + " (e.g. CLOUD_ML_REGION=us-east5)",
        )
    return AuthInfo(
        "vertex", True, f"Google Vertex AI, project {project} in {region}, with {creds}"
    )


def _cli_login(config_dir: Path, env: Mapping[str, str], *, explicit: bool) -> AuthInfo:
    """A stored ``claude login``: the credentials file, or the macOS Keychain."""
    creds = config_dir / ".credentials.json"
    shown = _tilde(creds, env)
    try:
        raw = creds.read_bytes()
    except OSError:
        raw = b""
    if raw.strip():
        plan = _subscription(raw)
        return AuthInfo("cli_login", True, f"Claude Code login ({shown}{plan})")
    if platform.system() == "Darwin" and _keychain_has_login(config_dir, env, explicit=explicit):
        return AuthInfo("cli_login", True, "Claude Code login (macOS Keychain)")
    return AuthInfo("none", False, "", LOGIN_HINT)


def _subscription(raw: bytes) -> str:
    """ ", Max plan" when the file says so; nothing when it cannot tell."""
    try:
        data = json.loads(raw)
        oauth = data.get("claudeAiOauth") if isinstance(data, dict) else None
        plan = oauth.get("subscriptionType") if isinstance(oauth, dict) else None
    except ValueError:
        return ""
    if isinstance(plan, str) and re.fullmatch(r"[A-Za-z0-9_ -]{1,32}", plan):
        return f", {plan} plan"
    return ""


def _keychain_has_login(config_dir: Path, env: Mapping[str, str], *, explicit: bool) -> bool:
    """Whether the login Keychain holds the CLI's item. Bounded; never reads the secret.

    The CLI names its item "Claude Code-credentials", plus a hash of the config
    directory when ``CLAUDE_CONFIG_DIR`` (or clawrap's ``config_dir``) moves it.
    """
    service = "Claude Code-credentials"
    if explicit or _get(env, "CLAUDE_CONFIG_DIR"):
        digest = hashlib.sha256(str(config_dir).encode()).hexdigest()[:8]
        service += "-" + digest
    try:
        # Without -w, `security` prints the item's attributes, never the password.
        done = subprocess.run(
            ["security", "find-generic-password", "-s", service],
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _tilde(path: Path, env: Mapping[str, str]) -> str:
    home = str(_home(env))
    text = str(path)
    if home not in ("", "/") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home) :]
    return text


# -- the CLI binary


def bundled_cli() -> Path | None:
    """The CLI binary inside the installed claude-agent-sdk, found without importing it."""
    try:
        spec = importlib.util.find_spec("claude_agent_sdk")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    name = "claude.exe" if platform.system() == "Windows" else "claude"
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "_bundled" / name
        if candidate.is_file():
            return candidate
    return None


def _bundled_version(binary: Path) -> str | None:
    """The version the SDK records for its bundled CLI (``claude.version``, ``_cli_version``)."""
    for source, pattern in (
        (binary.parent / "claude.version", r"^\s*([0-9][^\s]*)"),
        (binary.parent.parent / "_cli_version.py", r"__cli_version__\s*=\s*['\"]([^'\"]+)"),
    ):
        try:
            found = re.search(pattern, source.read_text(encoding="utf-8"))
        except OSError:
            continue
        if found:
            return found.group(1)
    return None


def sdk_version() -> str | None:
    """The installed claude-agent-sdk's version, found without importing it (None if absent)."""
    try:
        return importlib.metadata.version("claude-agent-sdk")
    except importlib.metadata.PackageNotFoundError:
        pass
    # Without distribution metadata (a single-file build), the package's own record.
    try:
        spec = importlib.util.find_spec("claude_agent_sdk")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for location in spec.submodule_search_locations or []:
        try:
            text = (Path(location) / "_version.py").read_text(encoding="utf-8")
        except OSError:
            continue
        if found := re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text):
            return found.group(1)
    return None


def cli_info(settings: Settings, *, run: bool = True) -> CliInfo:
    """Which CLI the backend will start, and its version.

    With ``run`` the version comes from ``<cli> --version`` (bounded); otherwise,
    or when that fails, from the SDK's record for its bundled binary.
    """
    source: Literal["settings", "bundled", "path", "none"]
    if settings.cli_path:
        path = Path(settings.cli_path).expanduser()
        source = "settings"
        if not path.is_file():
            return CliInfo(str(path), source, None, "cli_path names no file")
    elif (bundled := bundled_cli()) is not None:
        path, source = bundled, "bundled"
    elif (found := shutil.which("claude")) is not None:
        path, source = Path(found), "path"
    else:
        return CliInfo(
            None,
            "none",
            None,
            "no Claude Code CLI: reinstall claude-agent-sdk (it bundles one)"
            " or set CLAWRAP_CLI_PATH",
        )
    version: str | None = None
    error: str | None = None
    if run:
        version, error = _run_version(path)
    if version is None and source == "bundled":
        version = _bundled_version(path)
        if version is not None:
            error = None
    return CliInfo(str(path), source, version, error)


def _run_version(path: Path) -> tuple[str | None, str | None]:
    try:
        done = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return None, f"`{path.name} --version` did not answer within {_PROBE_TIMEOUT:g} s"
    except OSError as exc:
        return None, f"cannot run {path}: {exc.strerror or exc}"
    out = done.stdout.decode("utf-8", "replace").strip()
    found = re.match(r"\s*([0-9]+\.[0-9]+[^\s]*)", out)
    if done.returncode != 0 or not found:
        return None, f"`{path.name} --version` failed (exit status {done.returncode})"
    return found.group(1), None


__all__ = [
    "LOGIN_HINT",
    "AuthInfo",
    "AuthMethod",
    "CliInfo",
    "bundled_cli",
    "claude_config_dir",
    "cli_info",
    "detect_auth",
    "mask",
    "sdk_version",
]
