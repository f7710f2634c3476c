"""tqdm progress bars on stderr, with rate and ETA, thread-safe updates, off when not wanted."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator

from tqdm import tqdm


class Progress:
    def __init__(self, description: str, total: float | None, *, enabled: bool, unit: str = "B") -> None:
        self._bar = tqdm(
            total=total,
            desc=description,
            unit=unit,
            unit_scale=unit == "B",
            unit_divisor=1024,
            bar_format=None if unit == "B" else "{l_bar}{bar}| {n:.0f}/{total:.0f}% [{elapsed}<{remaining}{postfix}]",
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        self._lock = threading.Lock()

    def advance(self, amount: int) -> None:
        with self._lock:
            self._bar.update(amount)

    def set_to(self, value: float, postfix: str | None = None) -> None:
        """Move the bar to `value` (e.g. the device's own percentage), with an optional note after it."""
        with self._lock:
            self._bar.update(max(0.0, value - self._bar.n))
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)

    def counted(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        """Pass pieces through, advancing the bar by their sizes."""
        for piece in pieces:
            self.advance(len(piece))
            yield piece

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
