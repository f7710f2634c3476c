"""Writing large files past the page cache (O_DIRECT), for packs and restored files.

A backup writes gigabytes that nobody reads soon. Through the page cache each byte is copied by the
kernel into a freshly allocated cache page, and the cache then evicts what the user was working with.
On a virtual machine whose free memory is handed back to the host (virtio-balloon free page
reporting), every such page also costs the host a fault: on the 2-core benchmark machine writing
2 GB of packs took 5–12 CPU-seconds of kernel time buffered, 0.3 direct (benchmarks/README.md).

With O_DIRECT the device reads the bytes straight from our buffer. The kernel then asks for aligned
memory, offsets and lengths: the parts are copied into one reused, page-aligned buffer per thread
and written a buffer at a time; the last, partial block is written whole and the file truncated to its
length. Where a file system refuses O_DIRECT (tmpfs before Linux 6.6, some network and FUSE file
systems) or a write comes back short, the rest goes through the page cache: the bytes on disk are
the same either way. The caller still fsyncs: O_DIRECT does not flush the device's cache or the
file's metadata.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from collections.abc import Sequence

from agent._native import copy_into

ALIGNMENT = 4096  # a multiple of every logical block size in use (512, 4096)
BUFFER_SIZE = 4 << 20
# Below this the page cache is cheaper than a synchronous device write.
DIRECT_MIN_SIZE = 1 << 20
_O_DIRECT = getattr(os, "O_DIRECT", 0)

_local = threading.local()


def _buffer() -> mmap.mmap:
    buffer = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = mmap.mmap(-1, BUFFER_SIZE)  # anonymous mappings are page-aligned
    return buffer


def _set_direct(fd: int, on: bool) -> bool:
    """Switch O_DIRECT on or off for `fd`; False if the file system does not take it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT if on else flags & ~_O_DIRECT)
    except OSError:
        return False
    return True


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def write_parts(fd: int, parts: Sequence[bytes | memoryview]) -> None:
    """Write the concatenation of `parts` at the start of the empty file `fd`, bypassing the page cache
    where it pays and the file system allows."""
    total = sum(memoryview(part).nbytes for part in parts)
    if not _O_DIRECT or total < DIRECT_MIN_SIZE or not _set_direct(fd, True):
        for part in parts:
            _write_all(fd, memoryview(part))
        return
    buffer = _buffer()
    view = memoryview(buffer)
    filled = 0
    written = 0
    direct = True
    try:
        for part in parts:
            source = memoryview(part).cast("B")
            while source:
                if not direct:
                    _write_all(fd, source)
                    break
                take = min(len(source), BUFFER_SIZE - filled)
                copy_into(buffer, filled, source[:take])  # GIL released: packs are written beside the workers
                filled += take
                source = source[take:]
                if filled == BUFFER_SIZE:
                    direct = _flush_direct(fd, view, BUFFER_SIZE)
                    written += BUFFER_SIZE
                    filled = 0
        if filled and direct:
            whole = -(-filled // ALIGNMENT) * ALIGNMENT
            view[filled:whole] = bytes(whole - filled)
            direct = _flush_direct(fd, view, whole)
            os.ftruncate(fd, written + filled)  # drop the zeros that completed the last block
    finally:
        view.release()
    if direct:
        _set_direct(fd, False)


def _flush_direct(fd: int, view: memoryview, length: int) -> bool:
    """Write `view[:length]` (aligned) directly; on a refusal or a short write switch the file to the page
    cache, finish the buffer that way and return False."""
    try:
        written = os.write(fd, view[:length])
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # alignment the file system will not take; anything else is a real error
            raise
        written = 0
    if written == length:
        return True
    _set_direct(fd, False)
    _write_all(fd, view[written:length])
    return False
