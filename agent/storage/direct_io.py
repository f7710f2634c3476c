"""Writing large files past the page cache (O_DIRECT), for packs and restored files.

A backup writes gigabytes that nobody reads soon. Through the page cache each byte is copied by the
kernel into a freshly allocated cache page, and the cache then evicts what the user was working with.
On a virtual machine whose free memory is handed back to the host (virtio-balloon free page
reporting), every such page also costs the host a fault: on the 2-core benchmark machine writing
2 GB of packs took 5–12 CPU-seconds of kernel time buffered, 0.3 direct (benchmarks/README.md).

With O_DIRECT the device reads the bytes straight from our buffer. The kernel then asks for aligned
memory, offsets and lengths: a part that lies page-aligned in memory (a pack's segments,
agent/repository/pack_memory.py) is written from where it is, whole blocks of it; other parts are
copied into one reused, page-aligned buffer per thread and written a buffer at a time; the last, partial
block is written whole and the file truncated to its length. Where a file system refuses O_DIRECT
(tmpfs before Linux 6.6, some network and FUSE file systems) or a write comes back short, the rest goes
through the page cache: the bytes on disk are the same either way. The caller still fsyncs: O_DIRECT
does not flush the device's cache or the file's metadata.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from collections.abc import Sequence

from agent._native import buffer_address, copy_into

ALIGNMENT = 4096  # a multiple of every logical block size in use (512, 4096)
BUFFER_SIZE = 4 << 20
# Below this the page cache is cheaper than a synchronous device write.
DIRECT_MIN_SIZE = 1 << 20
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16

_local = threading.local()


def _take_buffer() -> mmap.mmap:
    """The thread's buffer, or a new one while it is in use (two files written side by side in one thread)."""
    buffer = getattr(_local, "buffer", None)
    _local.buffer = None
    return buffer if buffer is not None else mmap.mmap(-1, BUFFER_SIZE)  # anonymous mappings are page-aligned


def _give_back(buffer: mmap.mmap) -> None:
    _local.buffer = buffer


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


class DirectWriter:
    """Writes a stream into the empty file `fd`, past the page cache when `expected_size` says it pays and the
    file system allows; `close` (or the end of a `with` block) writes the rest. The caller owns `fd`."""

    def __init__(self, fd: int, expected_size: int) -> None:
        self._fd = fd
        self._direct = bool(_O_DIRECT) and expected_size >= DIRECT_MIN_SIZE and _set_direct(fd, True)
        self._buffer: mmap.mmap | None = _take_buffer() if self._direct else None
        self._filled = 0
        self._written = 0

    def __enter__(self) -> DirectWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._stop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        with memoryview(data) as whole:
            source = whole.cast("B") if whole.format != "B" or whole.ndim != 1 else whole
            while source:
                if self._buffer is None:
                    _write_all(self._fd, source)
                    return
                if not self._filled and len(source) >= ALIGNMENT and buffer_address(source) % ALIGNMENT == 0:
                    # The file is at an aligned offset (nothing waits in the buffer) and the part lies aligned
                    # in memory: its whole blocks go from where they are, without a copy.
                    whole = len(source) - len(source) % ALIGNMENT
                    direct = _write_direct(self._fd, source, whole)
                    self._written += whole
                    source = source[whole:]
                    if not direct:
                        self._stop()
                    continue
                take = min(len(source), BUFFER_SIZE - self._filled)
                copy_into(self._buffer, self._filled, source[:take])  # GIL released: writes run beside the workers
                self._filled += take
                source = source[take:]
                if self._filled == BUFFER_SIZE:
                    self._flush(BUFFER_SIZE)

    def takes_blocks(self) -> bool:
        """Whether `write_blocks` would write straight from the caller's memory: the file is past the page cache
        and at an aligned offset (nothing waits in the buffer)."""
        return self._buffer is not None and not self._filled

    def write_blocks(self, blocks: Sequence[memoryview]) -> None:
        """Write whole, page-aligned blocks (see `_whole_blocks`) with as few `writev` calls as the system
        allows, when `takes_blocks()` said so; a refusal or a short write finishes through the page cache."""
        for start in range(0, len(blocks), _IOV_MAX):
            group = blocks[start : start + _IOV_MAX]
            total = sum(block.nbytes for block in group)
            try:
                written = os.writev(self._fd, group)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                written = 0
            self._written += total
            if written != total:
                self._stop()  # the rest through the page cache, after what did go
                for block in group:
                    if written < block.nbytes:
                        _write_all(self._fd, block.cast("B")[written:])
                    written = max(0, written - block.nbytes)
                for block in blocks[start + _IOV_MAX :]:
                    _write_all(self._fd, block.cast("B"))
                return

    def close(self) -> None:
        if self._buffer is not None and self._filled:
            with memoryview(self._buffer) as view:
                whole = -(-self._filled // ALIGNMENT) * ALIGNMENT
                view[self._filled : whole] = bytes(whole - self._filled)
            total = self._written + self._filled
            self._flush(whole)
            os.ftruncate(self._fd, total)  # drop the zeros that completed the last block
        self._stop()

    def _stop(self) -> None:
        if self._buffer is not None:
            _give_back(self._buffer)
            self._buffer = None
        if self._direct:
            _set_direct(self._fd, False)
            self._direct = False

    def _flush(self, length: int) -> None:
        assert self._buffer is not None
        with memoryview(self._buffer) as view:
            direct = _write_direct(self._fd, view, length)
        self._written += length
        self._filled = 0
        if not direct:  # the rest goes through the page cache
            self._stop()


def write_parts(fd: int, parts: Sequence[bytes | memoryview]) -> None:
    """Write the concatenation of `parts` at the start of the empty file `fd`.

    A run of parts that are whole, page-aligned blocks (a pack's full segments) goes to the device in one
    `writev`: one request of tens of megabytes instead of one synchronous 1 MiB write after another (a 24 MiB
    pack of 1 MiB segments, written and fsynced: 1,410–1,515 MiB/s one write per segment, 1,614–1,642 with
    writev, on the benchmark machine)."""
    with DirectWriter(fd, sum(memoryview(part).nbytes for part in parts)) as writer:
        blocks: list[memoryview] = []
        try:
            for part in parts:
                view = memoryview(part)
                if writer.takes_blocks() and _whole_blocks(view):
                    blocks.append(view)
                    continue
                view.release()
                _write_and_release(writer, blocks)
                writer.write(part)
            _write_and_release(writer, blocks)
        finally:
            _release(blocks)


def _write_and_release(writer: DirectWriter, blocks: list[memoryview]) -> None:
    """Write the gathered blocks, then let go of their views and empty the list."""
    try:
        writer.write_blocks(blocks)
    finally:
        _release(blocks)


def _release(views: list[memoryview]) -> None:
    for view in views:
        view.release()
    views.clear()


def _whole_blocks(view: memoryview) -> bool:
    return (
        view.contiguous and view.nbytes > 0 and view.nbytes % ALIGNMENT == 0
        and buffer_address(view.cast("B")) % ALIGNMENT == 0
    )


def _write_direct(fd: int, view: memoryview, length: int) -> bool:
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
