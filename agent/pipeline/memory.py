"""Process-wide malloc settings that keep the pipeline's memory flat.

glibc's malloc gives each thread that allocates its own arena (up to 8 per core), and memory freed in one arena
is not reused by the others: with a dozen pipeline threads passing megabyte buffers between them, freed
buffers pile up in idle arenas. Two arenas cut a 2 GB import's peak RSS by about 50 MB at no measurable CPU
cost (benchmarks/README.md), and a fixed mmap threshold keeps large freed blocks from lingering in them.
Other C libraries ignore this; it is a no-op where glibc is absent.
"""

from __future__ import annotations

import ctypes
import sys

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_M_ARENA_MAX = -8
ARENAS = 2
# Blocks of 1 MiB and more get mappings of their own, given back when freed. Left to itself, glibc raises this
# threshold every time it frees a mapped block (up to 32 MiB), after which blocks that large are carved from
# the arenas and their holes kept: an 8 GB import ended with 13 MiB more main heap and 14 MiB more thread arena
# than a 2 GB one. The pipeline's large buffers are reused (chunk assembly, reads, zstd output, pack segments),
# so few blocks that large are still allocated and the fixed threshold costs no measurable time.
MMAP_THRESHOLD = 1 << 20


def tune_malloc(arenas: int = ARENAS, mmap_threshold: int = MMAP_THRESHOLD) -> None:
    """Call before the pipeline starts its threads (arenas already made stay)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return
    mallopt(_M_ARENA_MAX, arenas)
    mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
