"""Settings: one validated object, filled from defaults, ``CLAWRAP_*`` variables, flags or code.

Every field can be set from the environment as ``CLAWRAP_<FIELD NAME IN CAPITALS>``
(``CLAWRAP_MAX_CONCURRENCY=8``); lists are comma-separated, booleans accept
1/0/true/false/yes/no/on/off, and an empty variable counts as unset. Command-line
flags override the environment. Timeouts are seconds and are applied at call sites
with trio scopes.

Every value is checked against its field's type and range however it arrives
(``Settings(port=70000)`` in code, ``CLAWRAP_PORT=70000``, ``--port 70000``, or an
assignment later): a bad one raises :class:`SettingsError`, which names the
variable and what it accepts, one line per problem. ``Settings()`` from code reads
no environment; :meth:`Settings.from_env` does.

Adding a setting is one annotated line in the class body. Give numbers a range
(the ``Port``, ``Seconds``, ``SecondsOrOff``, ``Count`` and ``AtLeastOne`` types
below, or ``Annotated[int, Field(ge=..., le=...)]``): a test holds every numeric
field to that.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "CLAWRAP_"
# Shared stores of the per-minute windows: the ``limits`` package's Redis storages.
LIMITS_SCHEMES = ("redis", "rediss", "redis+unix")

Port = Annotated[int, Field(ge=0, le=65535)]
Seconds = Annotated[float, Field(gt=0)]
SecondsOrOff = Annotated[float, Field(ge=0)]  # for "0: never"
Count = Annotated[int, Field(ge=0)]
AtLeastOne = Annotated[int, Field(ge=1)]
Name = Annotated[str, Field(min_length=1)]


def default_data_dir() -> Path:
    """The user's data directory for clawrap (XDG on Linux, the usual places elsewhere)."""
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "clawrap"
    home = Path.home()
    if os.uname().sysname == "Darwin":
        return home / "Library" / "Application Support" / "clawrap"
    return home / ".local" / "share" / "clawrap"


Source = Literal["code", "env", "flag"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad value: the field, the value given, what the field accepts, and where the
    value came from (``code``, the ``env``ironment or a command-line ``flag``)."""

    field: str
    value: Any
    rule: str
    source: Source = "code"

    def __str__(self) -> str:
        shown = "(hidden)" if "key" in self.field else _shown(self.value)
        if self.source == "env":
            where = f"{env_name(self.field)}={shown}"
        elif self.source == "flag":
            where = f"{flag_name(self.field)} {shown}"
        else:
            where = f"{self.field}={shown} ({env_name(self.field)})"
        return f"{where}: {self.rule}"


class SettingsError(Exception):
    """Values the server cannot run with; ``str()`` is one line per :class:`Problem`.

    Not a ValueError on purpose: pydantic would fold one raised in a validator into
    its own error and lose the wording.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def from_source(self, source: Source, fields: Iterable[str]) -> SettingsError:
        """The same problems, those of ``fields`` labelled as coming from ``source``."""
        names = set(fields)
        return SettingsError(
            replace(p, source=source) if p.field in names else p for p in self.problems
        )


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``CLAWRAP_*`` variables no setting reads (typos), each with the closest one, if any.

    Settings ignore them; these words let the command line and ``doctor`` say so.
    """
    known = {env_name(name) for name in Settings.model_fields}
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.75)
        found.append(f"{name} is not a setting" + (f" (did you mean {close[0]}?)" if close else ""))
    return found


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        env_ignore_empty=True,
        enable_decoding=False,  # lists are comma-separated, not JSON
        extra="forbid",
        validate_assignment=True,
        validate_default=True,
        hide_input_in_errors=True,  # an API key must not reach a log through an error
    )

    # -- listening
    host: Name = "127.0.0.1"
    port: Port = 8000
    api_key: str | None = None
    keys_file: str | None = None  # per-key names, limits and admin flags (TOML or JSON)
    metrics_key: str | None = None  # a key that may read GET /metrics and nothing else
    allowed_hosts: tuple[Name, ...] = ()
    cors_origins: tuple[Name, ...] = ()
    # Balancers whose X-Forwarded-For / X-Forwarded-Host / Forwarded headers are believed.
    trusted_proxies: tuple[Name, ...] = ()
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    debug: bool = False  # enables POST /v1/debug/request

    # -- limits and time
    max_body_bytes: AtLeastOne = 20 * 1024 * 1024
    request_timeout: Seconds = 600.0  # whole request deadline
    idle_timeout: Seconds = 120.0  # longest gap between upstream events
    max_concurrency: AtLeastOne = 4  # concurrent CLI runs
    queue_timeout: Seconds = 60.0  # longest a request queues (session, run slot, pool), in all
    header_timeout: Seconds = 75.0  # connection open (or idle after a response) -> headers in
    max_connections: AtLeastOne = 256  # open client connections; one more gets a 503
    body_timeout: Seconds = 300.0  # headers in -> whole body received (20 MiB at ~0.6 Mbit/s)
    # -- response cache (opt-in per request with X-Enable-Cache, or for all with this)
    response_cache: bool = False
    cache_ttl: Seconds = 300.0
    cache_max_entries: Count = 256
    max_n: AtLeastOne = 4  # most choices (`n`) one chat completion may ask for, each a run

    # -- models
    default_model: Name = "sonnet"
    models: tuple[Name, ...] = ()  # overrides the advertised catalogue
    allow_any_model: bool = False  # pass unknown model ids through to the CLI
    model_map: tuple[Name, ...] = ()  # "requested=served" pairs, e.g. "gpt-4o=sonnet"

    # -- the Claude Code CLI
    cli_path: str | None = None
    # Longest wait for a CLI process to answer the SDK's initialize (~0.3 s normally; a first
    # run may be slowed by a malware scan of the binary). The SDK alone would wait 60 s.
    cli_start_timeout: Seconds = 30.0
    # Retries of a run that met an upstream overload (529, 503) or rate limit before any
    # output, per model, with backoff within the request's deadline. clawrap retries; the
    # CLI does not (CLAUDE_CODE_MAX_RETRIES=0).
    upstream_retries: Count = 2
    fallback_models: tuple[Name, ...] = ()  # tried in turn once the request's model gives up
    breaker_threshold: AtLeastOne = 5  # overloads in a row that open a model's breaker
    breaker_cooldown: SecondsOrOff = 30.0  # seconds an open breaker refuses before one probe
    # Seconds between runs of the CLI's own login check (`claude auth status`); 0: never.
    auth_probe_interval: SecondsOrOff = 300.0
    offline: bool = False  # start the scripted model in-process and point the CLI at it
    config_dir: str | None = None  # CLAUDE_CONFIG_DIR for the CLI; None keeps the user's
    data_dir: Path = Field(default_factory=default_data_dir)

    # -- warm processes
    pool_size: Count = 2  # processes kept warm per common configuration
    pool_max: AtLeastOne = 8  # most CLI processes that may exist at once
    pool_idle_expiry: Seconds = 600.0
    pool_memory_mb: AtLeastOne = 4096  # budget for all CLI processes (counted as 400 MB each)
    pool_parked: Count = 4  # processes kept holding a conversation for its next turn (0: off)
    # Seconds a process keeps a client's tool calls open for the results (0: no waiting;
    # each tool-result round then resumes the conversation on a new process).
    tool_wait: SecondsOrOff = 300.0

    # -- sessions
    session_ttl: Seconds = 3600.0
    session_db: str | None = None  # default: <data_dir>/sessions.sqlite3
    usage_db: str | None = None  # default: <data_dir>/usage.sqlite3
    # -- storage shared by several instances: postgresql://... (default: SQLite files)
    database_url: str | None = None
    database_pool: AtLeastOne = 10  # connections to it, per instance

    # -- several instances
    limits_url: str | None = None  # shared store of the per-minute windows (redis://...)
    drain_seconds: SecondsOrOff = 30.0  # on SIGTERM, how long running requests may go on

    # -- stored Responses API responses (<data_dir>/responses.sqlite3)
    response_ttl: Seconds = 3600.0  # seconds a stored response may sit unused
    response_store_mb: AtLeastOne = 256  # total size bound; the least recently used go first

    # -- content
    allow_remote_images: bool = False  # http(s) image URLs go to the model as URL sources
    json_schema_max_depth: AtLeastOne = 64  # deepest nesting of a response_format json_schema

    # -- agent mode
    agent_roots: tuple[Name, ...] = ()  # empty: agent mode off
    agent_allow_bypass: bool = False
    agent_timeout: Seconds = 1800.0
    mcp_config: str | None = None  # Claude Code's MCP JSON format

    # -- how values are read and checked

    @field_validator("*", mode="before")
    @classmethod
    def _from_text(cls, value: Any, info: ValidationInfo) -> Any:
        """Text as the environment and flags give it: stripped, lists split at commas,
        names of levels in any case, an empty string for an optional one as unset."""
        if not isinstance(value, str):
            return value
        value = value.strip()
        annotation = cls.model_fields[str(info.field_name)].annotation
        if get_origin(annotation) is tuple:
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if get_origin(annotation) is Literal:
            return value.lower()
        if value == "" and NoneType in get_args(annotation):
            return None
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("the database URL must start with postgresql:// or postgres://")
        return value or None

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("model_map")
    @classmethod
    def _model_pairs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pair in value:
            source, sep, target = pair.partition("=")
            if not (sep and source.strip() and target.strip()):
                raise ValueError(f"model map entries are requested=served, not {pair!r}")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            scheme, sep, rest = origin.partition("://")
            if origin != "*" and not (sep and scheme and rest and "/" not in rest):
                raise ValueError(
                    f"cors origins must be * or scheme://host[:port] with no path, not {origin!r}"
                )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted proxies are IP addresses or networks (10.0.0.0/8), not {entry!r}"
                ) from None
        return value

    @field_validator("limits_url")
    @classmethod
    def _limits_url(cls, value: str | None) -> str | None:
        if value is not None and value.partition("://")[0].lower() not in LIMITS_SCHEMES:
            raise ValueError(
                "limits url must be redis://host[:port][/db], rediss://... or "
                "redis+unix:///path (or unset: in memory)"
            )
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _in_words(cls, values: Any, handler: Callable[[Any], Settings]) -> Settings:
        try:
            return handler(values)
        except ValidationError as exc:
            raise SettingsError(_problems(exc, values)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Code gets what it passes: only from_env reads the environment.
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``CLAWRAP_*`` from ``environ`` (the process environment by
        default), then non-None ``overrides``. Raises :class:`SettingsError`."""
        found = _Environment(cls, os.environ if environ is None else environ)()
        given = {name: value for name, value in overrides.items() if value is not None}
        try:
            return cls(**{**found, **given})
        except SettingsError as exc:
            raise exc.from_source("env", set(found) - set(given)) from None


class _Environment(EnvSettingsSource):
    """pydantic-settings' reading of ``CLAWRAP_*`` variables, from a given mapping."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The library's own hook (its .env source overrides it too); as it would with
        # case_sensitive=False, match names in any case.
        ignore_empty = self.env_ignore_empty
        return {
            name.lower(): value
            for name, value in self._environ.items()
            if not (ignore_empty and value == "")
        }


def _problems(exc: ValidationError, values: Any) -> list[Problem]:
    given = values if isinstance(values, Mapping) else {}
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            problems.append(Problem(field, given.get(field), "there is no such setting"))
            continue
        if field not in Settings.model_fields:
            problems.append(Problem(field, given.get(field), str(error["msg"])))
            continue
        if error["type"] == "value_error":
            rule = str(error["msg"]).removeprefix("Value error, ")
        else:
            rule = f"{field.replace('_', ' ')} must be {accepts(field)}"
        problems.append(Problem(field, given.get(field, error.get("input")), rule))
    return problems


def accepts(field: str) -> str:
    """What ``field`` accepts, in words: ``a whole number from 0 to 65535``."""
    info = Settings.model_fields[field]
    kind = _kind(info.annotation)
    bounds: dict[str, Any] = {}
    for item in info.metadata:
        for bound in ("ge", "gt", "le", "lt", "min_length"):
            if getattr(item, bound, None) is not None:
                bounds[bound] = getattr(item, bound)
    low = bounds.get("ge", bounds.get("gt"))
    if "ge" in bounds and "le" in bounds:
        kind += f" from {bounds['ge']} to {bounds['le']}"
    elif "ge" in bounds:
        kind += f", at least {low}"
    elif "gt" in bounds:
        kind += f", more than {low}"
    elif bounds.get("min_length"):
        kind = "non-empty " + kind
    if _optional(info.annotation):
        kind += " (or unset)"
    return kind


def _optional(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, UnionType) and NoneType in get_args(annotation)


def _kind(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType):
        return " or ".join(_kind(a) for a in args if a is not NoneType)
    if origin is Literal:
        names = [str(a) for a in args]
        return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    if origin is tuple:
        return "a comma-separated list"
    if origin is Annotated:
        return _kind(args[0])
    if annotation is bool:
        return "on or off (1/0, true/false, yes/no, on/off)"
    if annotation is int:
        return "a whole number"
    if annotation is float:
        return "a number"
    if annotation is Path:
        return "a path"
    return "text"


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = [
    "AtLeastOne",
    "Count",
    "Name",
    "Port",
    "Problem",
    "Seconds",
    "SecondsOrOff",
    "Settings",
    "SettingsError",
    "accepts",
    "default_data_dir",
    "env_name",
    "flag_name",
    "unknown_variables",
]
