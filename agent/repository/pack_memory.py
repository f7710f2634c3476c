"""The memory packs are assembled in: page-aligned 1 MiB segments, reused pack after pack.

A pack under construction is a list of segments; each blob is sealed straight into the segments its
offsets fall in (`agent._native.gcm_seal_into`), and the finished pack is written from them (a local
folder writes whole segments with O_DIRECT, without a copy). Before, every blob was a fresh bytes object
of up to 8 MiB: allocations that large come and go through mmap, so each cost fresh pages (on this
project's benchmark VM every fresh page also costs the host a fault), and those kept by malloc's arenas
made the peak RSS creep up with the size of the backup (+27 % from 2 GB to 8 GB).

Segments are anonymous mappings: page-aligned, and touched only as far as they are used. A pack holds at
most one partly used segment, so an open pack costs its size rounded up to a MiB. Uploaded packs give their
segments back; up to `KEEP_FREE` of them wait for the next pack, the rest are unmapped, so what the pool
holds is bounded whatever the input size.
"""

from __future__ import annotations

import mmap
import threading

SEGMENT_SIZE = 1 << 20
KEEP_FREE = 32  # 32 MiB: about one uploaded pack's worth, taken back by the packs filling meanwhile


class SegmentPool:
    def __init__(self, keep_free: int = KEEP_FREE) -> None:
        self._free: list[mmap.mmap] = []
        self._keep_free = keep_free
        self._lock = threading.Lock()
        self.outstanding = 0  # segments taken and not given back: packs being built or stored

    def take(self) -> mmap.mmap:
        with self._lock:
            self.outstanding += 1
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, SEGMENT_SIZE)

    def give_back(self, segments: list[mmap.mmap]) -> None:
        with self._lock:
            self.outstanding -= len(segments)
            room = max(0, self._keep_free - len(self._free))
            self._free.extend(segments[:room])
        for segment in segments[room:]:
            try:
                segment.close()
            except BufferError:
                pass  # a view of it is still alive somewhere: unmapped when that goes

    @property
    def free_segments(self) -> int:
        return len(self._free)


POOL = SegmentPool()


class PackMemory:
    """The bytes of one pack, `size` long so far, in segments of the pool; write and read by pack offset."""

    def __init__(self, pool: SegmentPool = POOL) -> None:
        self._pool = pool
        self._segments: list[mmap.mmap] = []
        self._views: list[memoryview] = []

    def reserve(self, end: int) -> None:
        """Make room for bytes up to offset `end`."""
        while len(self._segments) * SEGMENT_SIZE < end:
            segment = self._pool.take()
            self._segments.append(segment)
            self._views.append(memoryview(segment))

    def regions(self, offset: int, length: int) -> list[memoryview]:
        """Writable views of `length` bytes from `offset` on, one per segment they span (reserved first)."""
        regions = []
        while length:
            index, start = divmod(offset, SEGMENT_SIZE)
            take = min(length, SEGMENT_SIZE - start)
            regions.append(self._views[index][start : start + take])
            offset += take
            length -= take
        return regions

    def write(self, offset: int, data: bytes) -> None:
        at = 0
        for region in self.regions(offset, len(data)):
            with region:
                region[:] = data[at : at + len(region)]
                at += len(region)

    def parts(self, size: int) -> list[memoryview]:
        """The first `size` bytes, as one view per segment (all whole but the last)."""
        return self.regions(0, size)

    def release(self) -> None:
        """Give the segments back; every view handed out must be released (or dropped) by now."""
        for view in self._views:
            view.release()
        segments, self._segments, self._views = self._segments, [], []
        self._pool.give_back(segments)
