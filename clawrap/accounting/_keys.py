"""API keys: who a request is, and what that key may do.

Keys come from ``CLAWRAP_API_KEY`` (one key, named ``default``, an admin, no limits)
and from a keys file (``CLAWRAP_KEYS_FILE``, TOML or JSON by its extension), which
holds per key a name, the key's SHA-256 hash (never the key itself), an admin flag
and optional limits. A key is 32 random bytes (256 bits), so a plain SHA-256 is as
strong as any KDF here: there is nothing to guess, and checking it on every request
costs a microsecond. Every stored hash is compared with :func:`hmac.compare_digest`,
all of them each time, so the time taken says nothing about which one matched.

TOML file::

    [[keys]]
    name = "alice"
    hash = "sha256:9f86d0..."
    requests_per_minute = 60
    concurrent_runs = 2
    tokens_per_day = 2000000
    usd_per_day = 5.0
    usd_per_month = 50.0
    models = ["sonnet", "haiku"]
    agent = false

JSON: ``{"keys": [{...the same fields...}]}``. ``clawrap keys add NAME`` writes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

KEY_PREFIX = "sk-clawrap-"
HASH_PREFIX = "sha256:"
# When no key is configured at all, every request is this one local user.
LOCAL = "local"


class KeyLimits(BaseModel):
    """What one key may use. None: no limit of that kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(default=None, ge=1)
    concurrent_runs: int | None = Field(default=None, ge=1)
    tokens_per_day: int | None = Field(default=None, ge=1)
    usd_per_day: float | None = Field(default=None, gt=0)
    usd_per_month: float | None = Field(default=None, gt=0)
    models: tuple[str, ...] | None = None  # None: any model
    agent: bool = True  # agent mode allowed (if the server offers it)


NO_LIMITS = KeyLimits()


class KeyEntry(KeyLimits):
    """One entry of the keys file."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    hash: str
    admin: bool = False

    @field_validator("hash")
    @classmethod
    def _hash_form(cls, value: str) -> str:
        digest = value.removeprefix(HASH_PREFIX)
        if not value.startswith(HASH_PREFIX) or len(digest) != 64:
            raise ValueError("must be 'sha256:' and 64 hex digits")
        try:
            bytes.fromhex(digest)
        except ValueError:
            raise ValueError("must be 'sha256:' and 64 hex digits") from None
        return HASH_PREFIX + digest.lower()


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request is: a key's name, whether it is an admin, and its limits."""

    name: str
    admin: bool = False
    limits: KeyLimits = NO_LIMITS


class KeysFileError(Exception):
    """The keys file cannot be read or is not valid; the message says where and why."""


def hash_key(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh key: 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """The keys a server accepts. Empty: no key needed, every request is ``local``."""

    def __init__(self, entries: Iterable[tuple[str, Identity]] = ()) -> None:
        self._entries = [(bytes.fromhex(h.removeprefix(HASH_PREFIX)), i) for h, i in entries]
        names = [i.name for _, i in self._entries]
        if len(set(names)) != len(names):
            raise KeysFileError("two keys have the same name")

    @classmethod
    def load(cls, api_key: str | None, keys_file: str | Path | None) -> KeyRing:
        entries: list[tuple[str, Identity]] = []
        if api_key:
            entries.append((hash_key(api_key), Identity("default", admin=True)))
        if keys_file:
            for entry in read_keys_file(Path(keys_file)).keys:
                limits = KeyLimits(**entry.model_dump(include=set(KeyLimits.model_fields)))
                entries.append((entry.hash, Identity(entry.name, entry.admin, limits)))
        return cls(entries)

    @property
    def required(self) -> bool:
        return bool(self._entries)

    def names(self) -> list[str]:
        return [i.name for _, i in self._entries]

    def identify(self, candidates: Iterable[str]) -> Identity | None:
        """The identity of the first candidate that is a known key, else None."""
        if not self._entries:
            return Identity(LOCAL, admin=True)
        for candidate in candidates:
            digest = hashlib.sha256(candidate.encode()).digest()
            found: Identity | None = None
            for stored, identity in self._entries:
                # Every entry is compared, matched or not.
                if hmac.compare_digest(digest, stored) and found is None:
                    found = identity
            if found is not None:
                return found
        return None


def read_keys_file(path: Path) -> KeysFile:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeysFileError(f"cannot read the keys file {path}: {exc.strerror}") from None
    try:
        data: Any = (
            json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode())
        )
        return KeysFile.model_validate(data)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise KeysFileError(f"{path}: {where}: {first['msg']}") from None
        raise KeysFileError(f"{path} is not valid {_kind(path)}: {exc}") from None


def _kind(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "TOML"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def add_key(path: Path, name: str, *, admin: bool = False, **limits: Any) -> str:
    """Add a key named ``name`` to the keys file at ``path`` (created if missing) and
    return the key, which is stored only as its hash. KeysFileError if the name is taken
    or a limit is invalid."""
    key = new_key()
    fields = {k: v for k, v in limits.items() if v is not None}
    try:
        entry = KeyEntry(name=name, hash=hash_key(key), admin=admin, **fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise KeysFileError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    existing = read_keys_file(path) if path.exists() else KeysFile()
    if any(e.name == name for e in existing.keys):
        raise KeysFileError(f"{path} already has a key named {name!r}")
    data = entry.model_dump(exclude_defaults=True) | {"name": name, "hash": entry.hash}
    data = {"name": name, "hash": entry.hash} | data
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        whole = {"keys": [e.model_dump(exclude_defaults=True) for e in existing.keys] + [data]}
        text = json.dumps(whole, indent=2) + "\n"
        _write_private(path, text)
    else:
        # Appended as text, so the file's comments and layout stay as the operator wrote them.
        block = "\n[[keys]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in data.items())
        old = path.read_text() if path.exists() else ""
        _write_private(path, old + block)
    return key


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


__all__ = [
    "LOCAL",
    "Identity",
    "KeyLimits",
    "KeyRing",
    "KeysFileError",
    "add_key",
    "hash_key",
    "new_key",
    "read_keys_file",
]
