"""A token bucket that caps the bytes per second a backend moves.

One bucket is shared by every thread of a backend (parallel multipart parts,
concurrent gets), so the cap holds for the backend as a whole. The bucket
starts full with a burst of a tenth of a second's worth of bytes, which keeps
small objects snappy while long transfers average out at the rate.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

_BURST_SECONDS = 0.1
_MIN_BURST_BYTES = 16 * 1024


@dataclass
class TokenBucket:
    """Blocks callers of `consume` so that bytes flow at no more than `rate` per second."""

    rate: float
    burst: float = 0.0
    _tokens: float = field(init=False)
    _updated: float = field(init=False, default_factory=time.monotonic)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"a bandwidth limit must be positive, got {self.rate} bytes/s")
        if self.burst <= 0:
            self.burst = max(self.rate * _BURST_SECONDS, _MIN_BURST_BYTES)
        self._tokens = self.burst

    def consume(self, nbytes: int) -> None:
        """Wait until `nbytes` may be sent or received.

        Large amounts are taken a burst at a time so that threads sharing the
        bucket interleave instead of one of them starving the others.
        """
        remaining = float(nbytes)
        while remaining > 0:
            take = min(remaining, self.burst)
            self._take(take)
            remaining -= take

    def _take(self, amount: float) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            # Reserve the tokens now (possibly going negative) so that callers
            # queue in order; each one sleeps off its own debt outside the lock.
            self._tokens -= amount
            debt = -self._tokens
        if debt > 0:
            time.sleep(debt / self.rate)
