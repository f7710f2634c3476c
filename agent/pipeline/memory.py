"""Process-wide malloc settings that keep the pipeline's memory flat.

glibc's malloc gives each thread that allocates its own arena (up to 8 per core), and memory freed in one arena
is not reused by the others: with a dozen pipeline threads passing megabyte buffers between them, freed
buffers pile up in idle arenas. Two arenas cut a 2 GB import's peak RSS by about 50 MB at no measurable CPU
cost (benchmarks/README.md).

glibc also raises its mmap threshold to the size of every mapped block it frees (up to 32 MiB), and its trim
threshold to twice that: after one large block, every block up to that size is cut from the heap, and up to
twice as much freed heap stays resident. The largest early block of an import is its Manifest.db, which grows
with the number of files, so the memory kept grew with the device (a 12 MiB Manifest.db kept about 16 MiB
more at 8 GB than a 3 MiB one at 2 GB). Both are pinned instead: blocks of 4 MiB and more are mapped, and
free heap beyond 8 MiB is returned. Chunks (1 MiB on average, which a restore allocates one after the other)
stay below the threshold, so they reuse heap memory instead of faulting fresh pages.

Other C libraries ignore this; it is a no-op where glibc is absent.
"""

from __future__ import annotations

import ctypes
import sys

# glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 8 << 20


def tune_malloc(arenas: int = ARENAS) -> None:
    """Call before the pipeline starts its threads (arenas already made stay)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return
    mallopt(_M_ARENA_MAX, arenas)
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
