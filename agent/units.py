"""Human-readable sizes and times, shared by progress bars, command output and the fleet's events."""

from __future__ import annotations

import datetime as dt


def iso(seconds: float) -> str:
    """UTC to the second (`2026-12-02T02:15:05Z`): sub-second digits tell a reader nothing."""
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).isoformat().replace("+00:00", "Z")


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


_MULTIPLIERS = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """`10M`, `512k`, `1.5G`, `10MiB`, `10M/s` or a plain byte count → bytes; k, M, G, T are powers of 1024.
    ValueError for anything else, or for a negative or zero size."""
    cleaned = text.strip().lower().removesuffix("/s").removesuffix("ib").removesuffix("b")
    multiplier = _MULTIPLIERS.get(cleaned[-1:], 1)
    number = cleaned[:-1] if multiplier > 1 else cleaned
    try:
        value = float(number) * multiplier
    except ValueError:
        raise ValueError(f"expected a size such as 10M, 512k or 1048576, not {text!r}") from None
    if not 1 <= value < float("inf"):  # also NaN
        raise ValueError(f"expected a size of at least one byte, not {text!r}")
    return int(value)


def parse_fraction(text: str) -> float:
    """`20%`, `1/5` or `0.2` → a fraction in (0, 1]. ValueError for anything else or out of range."""
    cleaned = text.strip()
    try:
        if cleaned.endswith("%"):
            value = float(cleaned[:-1]) / 100
        elif "/" in cleaned:
            numerator, denominator = cleaned.split("/", 1)
            value = float(numerator) / float(denominator)
        else:
            value = float(cleaned)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"expected a share such as 20% or 1/5, not {text!r}") from None
    if not 0 < value <= 1:  # also NaN
        raise ValueError(f"expected a share above 0 and at most 100% (1/1), not {text!r}")
    return value
