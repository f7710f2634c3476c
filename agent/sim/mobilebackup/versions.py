"""Dotted version strings ("3.3", "18.5") as comparable tuples."""

from __future__ import annotations


def version_tuple(value: object) -> tuple[int, ...]:
    """`"18.5.1"` -> `(18, 5, 1)`; anything unparsable sorts before every real version."""
    try:
        return tuple(int(part) for part in str(value).split("."))
    except ValueError:
        return (0,)
