"""The command line: ``clawrap serve | login | mock-upstream | doctor | keys | usage``.

``serve`` has one flag per setting (``--max-concurrency``, ``--offline``, ...),
generated from :class:`~clawrap.core._config.Settings`. A flag overrides the
``CLAWRAP_*`` variable of the same name, which overrides the default. Lists
(``--cors-origins``) are comma-separated, like their variables. With no
command, ``serve`` runs. A ``.env`` file in the working directory is read first
(:func:`read_env_file`); a variable set in the real environment wins over it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

from clawrap._version import __version__
from clawrap.core._config import (
    Settings,
    SettingsError,
    accepts,
    env_name,
    flag_name,
    unknown_variables,
)

HELP: dict[str, str] = {
    "host": "address to listen on (default 127.0.0.1: this machine only)",
    "port": "port to listen on (default 8000; 0 picks a free one)",
    "api_key": "require this key from clients (Authorization: Bearer or x-api-key)",
    "keys_file": "API keys with names, limits and admin flags (TOML or JSON; clawrap keys add)",
    "metrics_key": "a key that may read GET /metrics and nothing else",
    "usage_db": "the usage ledger (default <data dir>/usage.sqlite3)",
    "database_url": "PostgreSQL shared by several instances (default: SQLite files)",
    "offline": "answer from a scripted model on loopback; no Claude account is used",
    "log_format": "text or json (one JSON object per line)",
    "max_concurrency": "most completions running at once (default 4)",
    "allowed_hosts": "extra Host names to answer to, comma-separated (DNS rebinding guard)",
    "cors_origins": "web origins allowed to call the server, comma-separated",
    "request_timeout": "seconds a whole request may take (default 600)",
    "idle_timeout": "seconds without output before a request fails (default 120)",
    "queue_timeout": "seconds a request may queue, in all, before 429 (default 60)",
    "default_model": "model used when a request names none (default sonnet)",
}

DELEGATED = ("mock-upstream", "doctor", "login", "keys", "usage", "db")


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for name, info in Settings.model_fields.items():
        env = env_name(name)
        text = HELP.get(name, "")
        text = f"{text} [{env}]" if text else f"[{env}]"
        if info.annotation is bool:
            parser.add_argument(
                flag_name(name),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=text,
            )
        else:
            parser.add_argument(
                flag_name(name),
                dest=name,
                default=None,
                metavar=name.upper(),
                type=_converter(name, info.annotation),
                help=text,
            )


def _converter(name: str, annotation: Any) -> Any:
    """Numbers are read here, so ``--port eighty`` is a usage error; every range and
    every other field is checked by :class:`Settings` itself."""
    number = annotation if annotation in (int, float) else None

    def convert(raw: str) -> Any:
        if number is None:
            return raw
        try:
            return number(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{raw!r} is not {accepts(name).split(',')[0]}"
            ) from None

    convert.__name__ = name  # argparse names the type in its error messages
    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clawrap",
        description="Claude Code behind the OpenAI and Anthropic APIs.",
    )
    parser.add_argument("--version", action="version", version=f"clawrap {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the server (the default)")
    _add_setting_flags(serve)
    commands.add_parser(
        "mock-upstream", help="serve the scripted model (for tests)", add_help=False
    )
    commands.add_parser("doctor", help="check the installation and print fixes", add_help=False)
    commands.add_parser(
        "login", help="sign in to Claude with the Claude Code CLI clawrap uses", add_help=False
    )
    commands.add_parser("keys", help="add API keys with their limits", add_help=False)
    commands.add_parser("usage", help="print the usage ledger", add_help=False)
    commands.add_parser("db", help="migrate or check the database schemas", add_help=False)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The flags over ``CLAWRAP_*`` over the defaults. Raises SettingsError, its problems
    naming the flag or variable each bad value came from."""
    overrides = {name: getattr(args, name, None) for name in Settings.model_fields}
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        given = [name for name, value in overrides.items() if value is not None]
        raise exc.from_source("flag", given) from None


def read_env_file(
    path: Path | None = None, environ: MutableMapping[str, str] | None = None
) -> list[str]:
    """Add the variables of ``path`` (default: ``.env`` in the working directory) that
    ``environ`` (default: the process environment, which the CLI inherits) lacks: the
    real environment wins. Returns the names added; a missing file adds nothing.

    Read once at start-up, before settings or any process, never per request.
    """
    from dotenv import dotenv_values

    path = Path.cwd() / ".env" if path is None else path
    target: MutableMapping[str, str] = os.environ if environ is None else environ
    if not path.is_file():
        return []
    added = []
    for name, value in dotenv_values(path).items():
        if value is not None and name not in target:
            target[name] = value
            added.append(name)
    return added


def main(argv: Sequence[str] | None = None) -> int:
    read_env_file()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in DELEGATED:
        return _delegate(args_list[0], args_list[1:])
    if not args_list or (
        args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version")
    ):
        args_list.insert(0, "serve")
    args = build_parser().parse_args(args_list)
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        return _refuse(exc)
    for problem in unknown_variables(os.environ):
        print(f"clawrap: warning: {problem}; it is ignored", file=sys.stderr)
    return _serve(settings)


def _refuse(error: SettingsError) -> int:
    for problem in error.problems:
        print(f"clawrap: {problem}", file=sys.stderr)
    return 2


def _delegate(command: str, argv: list[str]) -> int:
    if command == "mock-upstream":
        from clawrap.scripted._mock_upstream import mock_upstream_main

        return mock_upstream_main(argv)
    if command == "login":
        return _login(argv)
    if command == "db":
        from clawrap.cli._db_cmds import db_main

        return db_main(argv)
    if command in ("keys", "usage"):
        from clawrap.cli._accounting_cmds import keys_main, usage_main

        return keys_main(argv) if command == "keys" else usage_main(argv)
    from clawrap.cli._doctor import doctor_main

    return doctor_main(argv)


def _login(argv: list[str]) -> int:
    """``claude auth login`` with the very CLI the server will run (often the bundled one,
    which is not on PATH), so the login lands where the server looks for it."""
    import subprocess

    from clawrap.core._auth import cli_info

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return _refuse(exc)
    cli = cli_info(settings, run=False)
    if cli.path is None:
        print("clawrap: no Claude Code CLI found; set CLAWRAP_CLI_PATH", file=sys.stderr)
        return 1
    env = dict(os.environ)
    if settings.config_dir:
        env["CLAUDE_CONFIG_DIR"] = settings.config_dir
    return subprocess.call([str(cli.path), "auth", "login", *argv], env=env)


def settings_problems(settings: Settings) -> list[str]:
    """Values the server cannot run with, in words. :class:`Settings` checks every value
    as it is set, so this finds none unless a check was bypassed (``model_construct``)."""
    try:
        Settings.model_validate(dict(settings))
    except SettingsError as exc:
        return [str(p) for p in exc.problems]
    return []


def _serve(settings: Settings) -> int:
    from clawrap.cli._server import run
    from clawrap.http._request_log import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    try:
        return run(settings)
    except KeyboardInterrupt:
        return 130
    except BaseExceptionGroup as group:
        error = _os_error(group)
        if error is None:
            raise
        return _cannot_listen(settings, error)
    except OSError as error:
        return _cannot_listen(settings, error)


def _os_error(exc: BaseException) -> OSError | None:
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _os_error(inner)
            if found is not None:
                return found
    return None


def _cannot_listen(settings: Settings, error: OSError) -> int:
    print(
        f"clawrap: cannot listen on {settings.host}:{settings.port}: "
        f"{error.strerror or error}. Choose another --port or stop the other server.",
        file=sys.stderr,
    )
    return 1


__all__ = ["build_parser", "main", "read_env_file", "settings_from_args", "settings_problems"]
