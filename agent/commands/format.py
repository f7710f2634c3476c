"""Human-readable sizes, times and tables for command output."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from agent.units import iso, size

__all__ = ["iso", "plural", "size", "table", "timestamp"]


def timestamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 file`, `2 files`; `many` for an irregular plural (`1 index object`, `2 index objects` need none)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
