"""A device's cable speed: paces the bytes its file transfers put on the wire.

Unlimited by default. A limit (a USB 2.0 iPhone moves roughly 35 MB/s) makes transfers last long
enough to watch progress, or to pull the cable in the middle of one.
"""

from __future__ import annotations

import asyncio


class TransferThrottle:
    """Shared by all connections of one device, as they share one cable."""

    def __init__(self, bytes_per_second: int | None = None) -> None:
        self.bytes_per_second = bytes_per_second
        self._free_at = 0.0  # loop time at which the cable has sent everything paced so far

    async def pace(self, sent: int) -> None:
        """Account for `sent` bytes: wait until the cable could have carried them. Always yields to
        the event loop, so long transfers never starve the device's other connections."""
        delay = 0.0
        if self.bytes_per_second:
            now = asyncio.get_running_loop().time()
            self._free_at = max(self._free_at, now) + sent / self.bytes_per_second
            delay = self._free_at - now
        await asyncio.sleep(delay)
