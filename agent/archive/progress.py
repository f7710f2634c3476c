"""tqdm progress bars on stderr, with rate and ETA, thread-safe updates, off when not wanted."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator

from tqdm import tqdm


class Progress:
    def __init__(self, description: str, total: int | None, *, enabled: bool, unit: str = "B") -> None:
        self._bar = tqdm(
            total=total,
            desc=description,
            unit=unit,
            unit_scale=True,
            unit_divisor=1024,
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        self._lock = threading.Lock()

    def advance(self, amount: int) -> None:
        with self._lock:
            self._bar.update(amount)

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
