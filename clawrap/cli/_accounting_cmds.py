"""``clawrap keys add NAME`` and ``clawrap usage``: the keys file and the usage ledger.

``keys add`` creates a key, stores only its hash in the keys file
(``--file``, else ``CLAWRAP_KEYS_FILE``) and prints the key once. ``usage``
prints the ledger (``--db``, else ``CLAWRAP_DATABASE_URL``'s, ``CLAWRAP_USAGE_DB``
or the data directory's)
as a table, one line per key, model and UTC day, with a total.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import trio

from clawrap.accounting._keys import KeysFileError, add_key, read_keys_file
from clawrap.accounting._ledger import Ledger, LedgerError, UsageRow
from clawrap.core._config import Settings
from clawrap.storage._database import Database, DatabaseError, SqliteDatabase
from clawrap.storage._open import sqlite_path

_LIMIT_FLAGS: tuple[tuple[str, type], ...] = (
    ("requests_per_minute", int),
    ("concurrent_runs", int),
    ("tokens_per_day", int),
    ("usd_per_day", float),
    ("usd_per_month", float),
)


def keys_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="clawrap keys", description="Manage API keys.")
    commands = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = commands.add_parser("add", help="create a key; it is printed once, only its hash kept")
    add.add_argument("name")
    add.add_argument("--file", help="the keys file (default: CLAWRAP_KEYS_FILE)")
    add.add_argument("--admin", action="store_true", help="may read every key's usage")
    for name, kind in _LIMIT_FLAGS:
        add.add_argument("--" + name.replace("_", "-"), type=kind, metavar="N")
    add.add_argument("--models", help="models the key may use, comma-separated")
    add.add_argument("--no-agent", action="store_true", help="refuse agent mode to this key")
    listing = commands.add_parser("list", help="names, admin flags and limits (no keys)")
    listing.add_argument("--file")
    args = parser.parse_args(list(argv))
    path = args.file or Settings.from_env().keys_file
    if not path:
        print("clawrap: name the keys file with --file or CLAWRAP_KEYS_FILE", file=sys.stderr)
        return 2
    try:
        if args.action == "list":
            for entry in read_keys_file(Path(path)).keys:
                shown = entry.model_dump(exclude={"name", "hash"}, exclude_defaults=True)
                extra = " ".join(f"{k}={v}" for k, v in shown.items())
                print(f"{entry.name} {extra}".rstrip())
            return 0
        limits = {name: getattr(args, name) for name, _ in _LIMIT_FLAGS}
        models = (
            tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else None
        )
        key = add_key(
            Path(path),
            args.name,
            admin=args.admin,
            models=models,
            agent=False if args.no_agent else None,
            **limits,
        )
    except KeysFileError as exc:
        print(f"clawrap: {exc}", file=sys.stderr)
        return 1
    print(key)
    print(f"Key {args.name!r} added to {path}. This is the only time it is shown.", file=sys.stderr)
    return 0


def usage_table(rows: list[UsageRow]) -> str:
    head = (
        "day",
        "key",
        "model",
        "requests",
        "input",
        "output",
        "cache read",
        "cache write",
        "cost USD",
        "errors",
    )
    lines = [
        (
            r.day,
            r.key,
            r.model,
            str(r.requests),
            str(r.input_tokens),
            str(r.output_tokens),
            str(r.cache_read_tokens),
            str(r.cache_write_tokens),
            f"{r.cost_usd:.4f}",
            str(r.errors),
        )
        for r in rows
    ]
    total = (
        "total",
        "",
        "",
        *(
            str(sum(getattr(r, f) for r in rows))
            for f in (
                "requests",
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_write_tokens",
            )
        ),
        f"{sum(r.cost_usd for r in rows):.4f}",
        str(sum(r.errors for r in rows)),
    )
    table = [head, *lines, total]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]

    def fmt(row: Sequence[str]) -> str:
        cells = [
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), rule, *(fmt(r) for r in lines), rule, fmt(total)])


async def _read(
    database: Database, key: str | None, start: str | None, end: str | None
) -> list[UsageRow]:
    ledger = await Ledger.open(database, owned=True)
    try:
        return await ledger.rows(key, start, end)
    finally:
        await ledger.aclose()


def usage_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="clawrap usage", description="Print the usage ledger.")
    parser.add_argument("--db", help="the ledger (default: CLAWRAP_USAGE_DB or the data dir's)")
    parser.add_argument("--key", help="one key's name")
    parser.add_argument("--start", help="first UTC day, YYYY-MM-DD")
    parser.add_argument("--end", help="last UTC day, YYYY-MM-DD")
    args = parser.parse_args(list(argv))
    settings = Settings.from_env()
    try:
        if args.db is None and settings.database_url:
            from clawrap.storage._postgres import PostgresDatabase

            database: Database = PostgresDatabase.connect(settings.database_url, 1)
        else:
            path = args.db or sqlite_path(settings, "usage")
            if path != ":memory:" and not Path(path).exists():
                print(f"clawrap: no usage ledger at {path}", file=sys.stderr)
                return 1
            database = SqliteDatabase.connect(path)
        rows = trio.run(partial(_read, database, args.key, args.start, args.end))
    except (LedgerError, DatabaseError) as exc:
        print(f"clawrap: {exc}", file=sys.stderr)
        return 1
    print(usage_table(rows))
    return 0


__all__ = ["keys_main", "usage_main", "usage_table"]
