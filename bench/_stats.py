"""Small numeric and text helpers: percentiles, millisecond formatting, tables, progress lines.

Tables go to stdout (they are the result); progress goes to stderr (it is only company while
waiting), so ``python -m bench > result.txt`` keeps clean tables.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds for a table cell ("-" when there is no value)."""
    if seconds is None:
        return "-"
    value = seconds * 1000
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def mb(kilobytes: int | None) -> str:
    return "-" if kilobytes is None else f"{kilobytes / 1024:.0f}"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(cells[0]), rule, *(line(r) for r in cells[1:])]
    return f"\n## {title}\n\n" + "\n".join(body)


def emit(text: str) -> None:
    """Print a result block on stdout at once (so it is not interleaved with progress)."""
    print(text, flush=True)


class Progress:
    """``name: done/total`` on stderr, rewritten in place on a terminal, sparse otherwise."""

    def __init__(self, name: str, total: int) -> None:
        self.name = name
        self.total = total
        self.done = 0
        self._tty = sys.stderr.isatty()
        self._shown = -1
        self._show()

    def step(self, count: int = 1) -> None:
        self.done += count
        self._show()

    def finish(self, note: str = "") -> None:
        end = f" {note}" if note else ""
        if self._tty:
            sys.stderr.write(f"\r  {self.name}: {self.done}/{self.total}{end}\n")
        else:
            sys.stderr.write(f"  {self.name}: {self.done}/{self.total} done{end}\n")
        sys.stderr.flush()

    def _show(self) -> None:
        if self._tty:
            sys.stderr.write(f"\r  {self.name}: {self.done}/{self.total}")
            sys.stderr.flush()
            return
        # Not a terminal (a log file): a line at each quarter is enough.
        quarter = self.done * 4 // max(1, self.total)
        if quarter != self._shown and self.done < self.total:
            self._shown = quarter
            sys.stderr.write(f"  {self.name}: {self.done}/{self.total}\n")
            sys.stderr.flush()


def note(text: str) -> None:
    """A progress remark on stderr."""
    print(text, file=sys.stderr, flush=True)
