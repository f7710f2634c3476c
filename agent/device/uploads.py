"""Where each file a device uploads goes while the backup is running.

A device file whose category is known — from the previous backup's metadata, or because
its device path, checked against its fileID, names its domain and path — streams straight
into the chunk pipeline: chunking, hashing and compression run on worker threads while the
next bytes arrive, so the backup takes about as long as the transfer. Anything else (new
app-group files, every file of a device-encrypted backup, whose key only arrives at the
end) waits in encrypted staging. Metadata files stay in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agent.device.mirror import BackupMirror, BlobRef, MirrorEntry
from agent.device.staging import StagingArea
from agent.ios.categories import classify
from agent.ios.domains import locate
from agent.pipeline.chunker import is_sqlite_name
from agent.pipeline.writer import BlobWriter

HANDOFF_BYTES = 1 << 20  # hand data to a worker in pieces of about this size
QUEUE_PIECES = 8
PUT_WAIT_SECONDS = 0.25
FILES_IN_FLIGHT = 4
UNLIMITED_SPACE = 1 << 50
_END = object()


@dataclass
class UploadStats:
    files: int = 0
    bytes: int = 0
    streamed_files: int = 0
    staged_files: int = 0
    failed: list[str] = field(default_factory=list)


def blob_file_id(udid: str, file_name: str) -> str | None:
    """The fileID of `<udid>/Snapshot/xx/<id>` or `<udid>/xx/<id>`; None for other names."""
    parts = file_name.split("/")
    if parts[0] != udid:
        return None
    rest = parts[1:]
    if rest and rest[0] == "Snapshot":
        rest = rest[1:]
    if len(rest) == 2 and len(rest[0]) == 2 and len(rest[1]) == 40:
        return rest[1]
    return None


class _MetadataUpload:
    def __init__(self, mirror: BackupMirror, path: str) -> None:
        self._mirror, self._path, self._parts = mirror, path, bytearray()

    async def write(self, data: bytes) -> None:
        self._parts += data

    async def finish(self) -> None:
        self._mirror.put_data(self._path, bytes(self._parts))

    def abort(self, reason: str) -> None:
        self._parts.clear()


class _BlobUpload:
    """Bytes of one device file, handed to a worker thread in ~1 MiB pieces with back-pressure."""

    def __init__(self, host: DeviceHost, path: str, ref: BlobRef, consume: Callable[[Iterator[bytes]], None]) -> None:
        self._host, self._path, self._ref = host, path, ref
        self._queue: queue.Queue[object] = queue.Queue(QUEUE_PIECES)
        self._buffer = bytearray()
        self._size = 0
        self.future: Future[None] = host.pool.submit(consume, self._pieces())
        host.active.add(self)

    def _pieces(self) -> Iterator[bytes]:
        while (item := self._queue.get()) is not _END:
            yield item  # type: ignore[misc]

    async def _put(self, item: object) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                if self.future.done():
                    self.future.result()  # the worker failed: raise its error here, never wait for it
                    return
                # Back-pressure: the worker is behind. Wait off the event loop, but not forever.
                with contextlib.suppress(queue.Full):
                    await asyncio.to_thread(self._queue.put, item, True, PUT_WAIT_SECONDS)
                    return

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self._size += len(data)
        self._host.stats.bytes += len(data)
        self._host.on_bytes(len(data))
        if len(self._buffer) >= HANDOFF_BYTES:
            await self._put(bytes(self._buffer))
            self._buffer.clear()

    async def finish(self) -> None:
        if self._buffer:
            await self._put(bytes(self._buffer))
        await self._put(_END)
        self._ref.stored_size = self._size
        self._host.mirror.put(self._path, MirrorEntry(is_dir=False, size=self._size, blob=self._ref))
        self._host.active.discard(self)
        self._host.track(self.future)

    def abort(self, reason: str) -> None:
        """Drop this file: the worker sees the end of its input and stops. Never blocks."""
        self._host.stats.failed.append(f"{self._path}: {reason}")
        self._host.unsent[self._ref.file_id] = reason
        self._host.active.discard(self)
        while True:
            try:
                self._queue.put_nowait(_END)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()


class DeviceHost:
    """The HostFiles of a backup: mirror + pipeline + staging."""

    def __init__(
        self,
        *,
        udid: str,
        mirror: BackupMirror,
        writer: BlobWriter,
        staging: StagingArea,
        encrypted: bool,
        known_categories: dict[str, str],
        known_domains: set[str],
        free_space_path: Path | None,
        wanted: set[str] | None = None,
        on_bytes: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self.udid = udid
        self.mirror = mirror
        self.writer = writer
        self.staging = staging
        self.encrypted = encrypted
        self.known_categories = known_categories
        self.known_domains = known_domains
        self.free_space_path = free_space_path
        self.wanted = wanted  # None: every category
        self.on_bytes = on_bytes
        self.stats = UploadStats()
        self.unsent: dict[str, str] = {}  # fileID -> why the device did not send it (its own error text)
        self.pool = ThreadPoolExecutor(max_workers=FILES_IN_FLIGHT + 1, thread_name_prefix="coffer-ingest")
        self._in_flight = asyncio.Semaphore(FILES_IN_FLIGHT)
        self._futures: list[Future[None]] = []
        self.active: set[_BlobUpload] = set()

    # --- HostFiles --------------------------------------------------------------------
    async def begin_upload(self, file_name: str, device_name: str) -> _MetadataUpload | _BlobUpload:
        file_id = blob_file_id(self.udid, file_name)
        if file_id is None:
            return _MetadataUpload(self.mirror, file_name)
        self.stats.files += 1
        await self._in_flight.acquire()
        ref = BlobRef(file_id, 0)
        category = None if self.encrypted else self._category(file_id, device_name)
        if category is not None and not self.is_wanted(category):
            consume = self._drain(ref, category)
        elif category is not None:
            self.stats.streamed_files += 1
            consume = self._store_directly(ref, category, device_name)
        else:
            self.stats.staged_files += 1
            consume = self._stage(ref)
        return _BlobUpload(self, file_name, ref, consume)

    async def download(self, path: str) -> AsyncIterator[bytes]:
        yield self.mirror.read(path)

    def free_space(self) -> int:
        if self.free_space_path is None:
            return UNLIMITED_SPACE
        return shutil.disk_usage(self.free_space_path).free

    # --- routing ------------------------------------------------------------------------
    def _category(self, file_id: str, device_name: str) -> str | None:
        if file_id in self.known_categories:
            return self.known_categories[file_id]
        located = locate(file_id, device_name, self.known_domains)
        return classify(*located).value if located else None

    def _store_directly(self, ref: BlobRef, category: str, device_name: str) -> Callable[[Iterator[bytes]], None]:
        def consume(pieces: Iterator[bytes]) -> None:
            try:
                stored = self.writer.store_file(
                    category, pieces, relative_path=device_name, sqlite_hint=is_sqlite_name(device_name)
                )
                ref.category, ref.chunks, ref.plain_size = category, stored.chunks, stored.size
            finally:
                self._release()

        return consume

    def is_wanted(self, category: str) -> bool:
        return self.wanted is None or category in self.wanted

    def _drain(self, ref: BlobRef, category: str) -> Callable[[Iterator[bytes]], None]:
        def consume(pieces: Iterator[bytes]) -> None:
            try:
                for _piece in pieces:
                    pass
                ref.category, ref.excluded = category, True
            finally:
                self._release()

        return consume

    def _stage(self, ref: BlobRef) -> Callable[[Iterator[bytes]], None]:
        def consume(pieces: Iterator[bytes]) -> None:
            try:
                writer = self.staging.writer(self.staging.new_file())
                try:
                    for piece in pieces:
                        writer.write(piece)
                except BaseException:
                    writer.abort()
                    raise
                ref.staged = writer.finish()
            finally:
                self._release()

        return consume

    def _release(self) -> None:
        loop = self._loop
        loop.call_soon_threadsafe(self._in_flight.release)

    def track(self, future: Future[None]) -> None:
        self._futures.append(future)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def wait(self) -> None:
        """Wait for every file's worker; re-raise the first failure."""
        for future in self._futures:
            future.result()
        self._futures.clear()

    def close(self) -> None:
        """Stop every worker (after a failure, uploads in progress are abandoned)."""
        for upload in list(self.active):
            upload.abort("the backup stopped")
        self.pool.shutdown(wait=True, cancel_futures=True)
