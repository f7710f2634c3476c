"""Human-readable sizes, shared by progress bars and command output."""

from __future__ import annotations


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
