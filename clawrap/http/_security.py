"""Who may talk to the server: API key, Host (DNS rebinding) and Origin checks, CORS headers.

Pure functions over settings and lowercase request headers, so each rule is
tested directly. A refusal is returned as a :class:`~clawrap.core._errors.ClawrapError`
(the router renders it in the route's protocol shape); None means "allowed".

Why the Host check: a web page on ``evil.example`` can point its own DNS name at
127.0.0.1 and then talk to a loopback server as same-origin. The browser still
sends ``Host: evil.example``, so refusing unknown Host names stops it.
Why the Origin check: a browser page on another site may send simple requests
(no preflight) to localhost; the ``Origin`` header tells us it is a browser page,
and only configured origins (or this server's own pages) are let through.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping

from clawrap.accounting._keys import LOCAL, Identity, KeyRing
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# A Host header: a DNS name or IPv4 address, or a bracketed IPv6 address; then an optional port.
_HOST_SYNTAX = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*)|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
# Addresses that mean "every interface": not a name a client can use to reach us by.
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})

ALLOW_HEADERS = (
    "authorization, x-api-key, content-type, anthropic-version, anthropic-beta, "
    "anthropic-dangerous-direct-browser-access, x-session-id, x-request-id, "
    "x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version, "
    "x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, "
    "x-stainless-timeout, x-claude-max-turns, x-claude-allowed-tools, "
    "x-claude-disallowed-tools, x-claude-permission-mode, x-claude-effort, "
    "x-claude-thinking, x-claude-max-thinking-tokens"
)
ALLOW_METHODS = "GET, POST, OPTIONS"
EXPOSE_HEADERS = "x-request-id, retry-after"
PREFLIGHT_MAX_AGE = "600"

# Routes a monitor must reach without a key; /api/hello is the reachability probe Claude
# Code sends to its base URL before it starts.
OPEN_ROUTES = frozenset({("GET", "/health"), ("HEAD", "/v1/api/hello"), ("GET", "/v1/api/hello")})
METRICS_ROUTE = "/metrics"
# The identity of a request that came with the metrics key.
METRICS_READER = "metrics"


def host_name(host_header: str) -> str:
    """The name part of a Host header: lowercase, no port, no brackets, no trailing dot."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name = host[1:end] if end != -1 else host[1:]
    elif host.count(":") == 1:
        name = host.rsplit(":", 1)[0]
    else:
        # No port, or a bare IPv6 address (several colons) that a Host header should not carry.
        name = host
    return name.rstrip(".")


def _host_allowed(name: str, settings: Settings) -> bool:
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    bind = host_name(settings.host) if settings.host else ""
    if bind and bind not in _WILDCARD_BINDS and name == bind:
        return True
    for allowed in settings.allowed_hosts:
        pattern = host_name(allowed)
        if pattern == "*" or pattern == name:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


def check_host(settings: Settings, headers: Mapping[str, str]) -> ClawrapError | None:
    """403 unless the Host header names this machine or an allowed host.

    A request without Host (HTTP/1.0) is allowed: browsers always send one, so
    it cannot be a rebinding attack.
    """
    host = headers.get("host")
    if host is None:
        return None
    if not _HOST_SYNTAX.fullmatch(host.strip()):
        # h11 takes any bytes; a name with userinfo (127.0.0.1:80@evil.example), paths or
        # spaces would otherwise be cut down to something that looks allowed.
        shown = host if len(host) <= 80 else host[:77] + "..."
        return ClawrapError(
            "invalid_request",
            f"The Host header {shown!r} is not a host name or address with an optional port.",
            code="invalid_host",
        )
    name = host_name(host)
    if _host_allowed(name, settings):
        return None
    return ClawrapError(
        "permission",
        f"Requests for host {name!r} are refused: this server answers to localhost names only, "
        "to protect it from DNS rebinding. To reach it by this name, add it to "
        f"CLAWRAP_ALLOWED_HOSTS (e.g. CLAWRAP_ALLOWED_HOSTS={name}).",
        code="host_not_allowed",
    )


def _origin_allowed(origin: str, settings: Settings) -> bool:
    return origin in settings.cors_origins or "*" in settings.cors_origins


def _same_origin(origin: str, headers: Mapping[str, str]) -> bool:
    # The Host was already checked against the allow list, so an Origin naming that
    # same host is one of this server's own pages (the landing page), not a foreign site.
    host = headers.get("host", "").strip().lower()
    return bool(host) and origin.lower() in (f"http://{host}", f"https://{host}")


def check_origin(settings: Settings, headers: Mapping[str, str]) -> ClawrapError | None:
    """403 when a browser page from an origin that is not configured sends the request."""
    origin = headers.get("origin")
    if origin is None:
        return None
    origin = origin.strip()
    if _origin_allowed(origin, settings) or _same_origin(origin, headers):
        return None
    return ClawrapError(
        "permission",
        f"Requests from the web origin {origin!r} are refused. To let a web app on that origin "
        f"use this server, add it to CLAWRAP_CORS_ORIGINS (e.g. CLAWRAP_CORS_ORIGINS={origin}).",
        code="origin_not_allowed",
    )


def check_fetch_site(settings: Settings, headers: Mapping[str, str]) -> ClawrapError | None:
    """403 for a request a browser says comes from another site, unless its origin is allowed.

    Browsers send ``Sec-Fetch-Site`` on every request, including the simple ones that
    carry no ``Origin`` (a form post, a ``text/plain`` fetch in no-cors mode). A
    ``Referer`` naming another site is refused the same way: it, too, only comes from
    a browser page.
    """
    origin = headers.get("origin", "").strip()
    allowed = bool(origin) and (_origin_allowed(origin, settings) or _same_origin(origin, headers))
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site") and not allowed:
        return ClawrapError(
            "permission",
            f"Requests from other web sites are refused (Sec-Fetch-Site: {site}). To let a "
            "web app use this server, add its origin to CLAWRAP_CORS_ORIGINS.",
            code="cross_site_request",
        )
    referer = headers.get("referer")
    if referer is not None and not allowed:
        page = _origin_of(referer)
        if page is not None and not (
            _origin_allowed(page, settings) or _same_origin(page, headers)
        ):
            return ClawrapError(
                "permission",
                f"Requests from the web page at {page!r} are refused. To let a web app on that "
                f"origin use this server, add it to CLAWRAP_CORS_ORIGINS.",
                code="origin_not_allowed",
            )
    return None


def _origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL, None for anything else."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return f"{scheme.lower()}://{host}" if host else None


def check_json_content_type(headers: Mapping[str, str]) -> ClawrapError | None:
    """415 unless the body is declared ``application/json``.

    A browser can send ``text/plain``, form encodings or no type at all to another
    site without asking it first (no CORS preflight); ``application/json`` always
    needs a preflight, which this server answers only for configured origins.
    """
    declared = headers.get("content-type", "")
    media = declared.split(";", 1)[0].strip().lower()
    if media == "application/json":
        return None
    shown = f"{declared.strip()!r}" if declared.strip() else "none"
    return ClawrapError(
        "invalid_request",
        f"The request body must be JSON sent with 'Content-Type: application/json' (got {shown}).",
        status=415,
        code="unsupported_media_type",
    )


def cors_headers(settings: Settings, headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """CORS response headers, only for a configured origin (nothing otherwise)."""
    origin = headers.get("origin")
    if origin is None:
        return []
    origin = origin.strip()
    if not _origin_allowed(origin, settings):
        return []
    return [
        # Echo the one matched origin (never "*"): the response is for that page only.
        ("access-control-allow-origin", origin),
        ("vary", "origin"),
        ("access-control-expose-headers", EXPOSE_HEADERS),
    ]


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return method == "OPTIONS" and "origin" in headers


def preflight_headers(settings: Settings, headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Headers of the 204 answer to a preflight from a configured origin."""
    return [
        *cors_headers(settings, headers),
        ("access-control-allow-methods", ALLOW_METHODS),
        ("access-control-allow-headers", ALLOW_HEADERS),
        ("access-control-max-age", PREFLIGHT_MAX_AGE),
    ]


def check_api_key(
    settings: Settings, method: str, path: str, headers: Mapping[str, str]
) -> ClawrapError | None:
    """401 when ``settings.api_key`` is set and the request does not carry it.

    ``GET /health`` and CORS preflights are always open: monitors and browsers
    send no credentials there.
    """
    found = authenticate(KeyRing.load(settings.api_key, None), settings, method, path, headers)
    return found if isinstance(found, ClawrapError) else None


def authenticate(
    keys: KeyRing, settings: Settings, method: str, path: str, headers: Mapping[str, str]
) -> Identity | ClawrapError:
    """Who the request is (its key's identity), or a 401.

    Open routes and preflights are anyone's; with no key configured every request is
    the local user. ``settings.metrics_key`` opens ``GET /metrics`` and nothing else.
    """
    if (method, path) in OPEN_ROUTES or is_preflight(method, headers):
        return Identity(LOCAL)
    candidates = presented_keys(headers)
    if settings.metrics_key and path == METRICS_ROUTE:
        expected = settings.metrics_key.encode()
        # compare_digest: the time taken must not reveal how much of the key matched.
        if any(hmac.compare_digest(c.encode(), expected) for c in candidates):
            return Identity(METRICS_READER)
    identity = keys.identify(candidates)
    if identity is not None:
        return identity
    return ClawrapError(
        "authentication",
        "Invalid API key."
        if any(candidates)
        else "Missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
        code="invalid_api_key",
    )


def presented_keys(headers: Mapping[str, str]) -> list[str]:
    # Both headers are tried: some tools send a placeholder Bearer and the real x-api-key.
    out: list[str] = []
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer":
            out.append(value.strip())
    key = headers.get("x-api-key")
    if key is not None:
        out.append(key.strip())
    return out


def unsafe_settings_warnings(settings: Settings) -> list[str]:
    """Plain-language warnings about settings that expose the server (for the banner)."""
    warnings: list[str] = []
    name = host_name(settings.host)
    keyed = settings.api_key or settings.keys_file
    if name not in _LOOPBACK_NAMES and not name.endswith(".localhost") and not keyed:
        warnings.append(
            f"listening on {settings.host} (beyond this machine) with no API key: anyone who "
            "can reach this port can use your Claude account. Set CLAWRAP_API_KEY or --api-key."
        )
    if "*" in settings.cors_origins:
        warnings.append(
            "CLAWRAP_CORS_ORIGINS includes '*': any web page you visit may call this server"
            + ("." if settings.api_key else " without a key. Set CLAWRAP_API_KEY.")
        )
    if any(entry.strip().endswith("/0") for entry in settings.trusted_proxies):
        warnings.append(
            "CLAWRAP_TRUSTED_PROXIES trusts every address: any client can set the address "
            "and Host it is taken for with X-Forwarded-* headers."
        )
    if "*" in settings.allowed_hosts:
        warnings.append("CLAWRAP_ALLOWED_HOSTS includes '*': DNS rebinding protection is off.")
    return warnings


__all__ = [
    "ALLOW_HEADERS",
    "ALLOW_METHODS",
    "METRICS_READER",
    "METRICS_ROUTE",
    "OPEN_ROUTES",
    "authenticate",
    "check_api_key",
    "check_fetch_site",
    "check_host",
    "check_json_content_type",
    "check_origin",
    "cors_headers",
    "host_name",
    "is_preflight",
    "preflight_headers",
    "presented_keys",
    "unsafe_settings_warnings",
]
