"""The write side of the pipeline: chunk → keyed ID → dedup → compress → encrypt → pack → upload.

Many threads call `store_file` at once. The per-byte stages (cut finding, keyed BLAKE3,
zstd, AES-GCM) release the GIL, so they run in parallel on every core; the only shared
lock covers dedup and placing a blob in a pack (no per-byte work): the blob is encrypted
after its place, hence its nonce, is fixed. Packs upload on their own threads while the
next ones fill, at most `max_packs_in_flight` at a time, so memory stays bounded whatever the input size: open
packs (at most `OPEN_PACKS_PER_SPACE` per category) plus the packs in flight plus one chunk
per worker. Every `checkpoint_packs` uploaded packs an index object is written, so an
interrupted backup resumes by deduplicating against what it already uploaded.
"""

from __future__ import annotations

import secrets
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from agent.errors import CofferError, StorageError
from agent.keys import primitives
from agent.pipeline import compression
from agent.pipeline.chunker import Chunker, ChunkerParams
from agent.repository.index import Index, PackRecord
from agent.repository.pack import PackBuilder, PackedBlob
from agent.repository.repository import Repository, put_parts_if_absent

OPEN_PACKS_PER_SPACE = 2
# All open packs together stay under this: beyond it the fullest is sent early (a smaller pack), so memory
# does not grow with the number of categories a backup touches. With two packs in flight and a chunk per
# worker, a 2 GB import peaks near 250 MB (benchmarks/bench_memory.py prints the breakdown).
OPEN_BYTES_BUDGET = 48 << 20


@dataclass
class SpaceStats:
    chunks: int = 0
    new_chunks: int = 0
    bytes: int = 0  # plaintext bytes seen
    new_bytes: int = 0  # plaintext bytes of new chunks
    stored_bytes: int = 0  # bytes written into packs (compressed, encrypted)


@dataclass
class WriterStats:
    spaces: dict[str, SpaceStats] = field(default_factory=lambda: defaultdict(SpaceStats))
    files_unchanged: int = 0  # files reused from the files cache without being read
    unchanged_bytes: int = 0
    packs_uploaded: int = 0
    uploaded_bytes: int = 0
    index_objects: int = 0


@dataclass
class StoredStream:
    chunks: list[bytes]
    size: int


class BlobWriter:
    def __init__(
        self,
        repository: Repository,
        index: Index,
        *,
        checkpoint_packs: int = 4,
        max_packs_in_flight: int = 2,
        on_uploaded: Callable[[int], None] | None = None,
    ) -> None:
        repository.keys.require_write()
        self.repository = repository
        self.index = index
        keys = repository.keys
        assert keys.id_key is not None and keys.chunker_key is not None
        self._keys = keys
        settings = repository.config.chunker
        self.chunker = Chunker(
            keys.chunker_key, ChunkerParams(settings.min_size, settings.avg_size, settings.max_size)
        )
        self.stats = WriterStats()
        self._checkpoint_packs = checkpoint_packs
        self.on_uploaded = on_uploaded  # called with each pack's size once stored (progress bars)
        self._lock = threading.Lock()
        self._pending: set[tuple[str, bytes]] = set()  # chunks packed but not yet indexed
        self._open: dict[str, list[tuple[PackBuilder, int]]] = defaultdict(list)  # space -> (pack, target size)
        self._open_bytes = 0
        self._unindexed: list[PackRecord] = []
        self._uploads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="coffer-upload")
        self._in_flight = threading.BoundedSemaphore(max_packs_in_flight)
        self._futures: list[Future[None]] = []
        self._failure: BaseException | None = None
        # Which open pack a blob joins, and each pack's target size, show in the pack sizes the storage provider
        # sees: drawn from the OS generator, since Mersenne Twister's outputs let an observer predict the rest.
        self._random = secrets.SystemRandom()

    # --- public ------------------------------------------------------------------
    def store_file(
        self, space: str, pieces: Iterable[bytes], *, relative_path: str = "", sqlite_hint: bool = False
    ) -> StoredStream:
        compressible = compression.likely_compressible(relative_path)
        chunks: list[bytes] = []
        size = 0
        first = True
        for chunk in self.chunker.chunks(pieces, sqlite_hint=sqlite_hint):
            chunk_id, stored_compressed = self.store_chunk(space, chunk, compress=compressible)
            if first and compressible and stored_compressed is False:
                compressible = False  # the file's first chunk did not compress: assume the rest won't either
            first = False
            chunks.append(chunk_id)
            size += len(chunk)
        return StoredStream(chunks, size)

    def store_bytes(self, space: str, data: bytes, *, relative_path: str = "") -> StoredStream:
        return self.store_file(space, [data], relative_path=relative_path)

    def store_chunk(self, space: str, chunk: bytes, *, compress: bool) -> tuple[bytes, bool | None]:
        """Store one chunk unless present; return (ID, compressed) — None when deduplicated."""
        self._raise_failure()
        chunk_id = primitives.chunk_id(self._keys.chunk_id_key(space), chunk)  # type: ignore[arg-type]
        key = (space, chunk_id)
        with self._lock:
            stats = self.stats.spaces[space]
            stats.chunks += 1
            stats.bytes += len(chunk)
            if key in self.index or key in self._pending:
                return chunk_id, None
            self._pending.add(key)
            stats.new_chunks += 1
            stats.new_bytes += len(chunk)
        payload, compressed = compression.compress(chunk) if compress else (chunk, False)
        pack, blob, ready = self._place(space, chunk_id, len(payload), len(chunk))
        try:
            pack.fill(blob, payload, compressed=compressed)  # outside the lock: threads encrypt side by side
        finally:
            if isinstance(payload, memoryview) and compressed:
                payload.release()  # the thread's compressor writes its next frame into the same buffer
            for ready_pack, ready_space in ready:
                self._submit(ready_pack, ready_space)
        return chunk_id, compressed

    def flush(self) -> None:
        """Upload every open pack and write the final index checkpoint."""
        with self._lock:
            # A space's second open pack may never have received a blob: such a pack is dropped, not
            # uploaded (an empty pack would say "this category had little new data").
            remaining = [(space, pack) for space, packs in self._open.items() for pack, _ in packs if pack.blobs]
            for packs in self._open.values():
                for pack, _ in packs:
                    if not pack.blobs:
                        pack.release()
            self._open.clear()
            self._open_bytes = 0
        for space, pack in remaining:
            self._submit(pack, space)
        for future in self._futures:
            try:
                future.result()
            except BaseException:
                pass
        self._uploads.shutdown(wait=True)
        # Index what did reach storage even when another upload failed, so the next run reuses it.
        try:
            self._checkpoint(force=True)
        except CofferError:
            if self._failure is None:
                raise
        self._raise_failure()

    # --- internals ----------------------------------------------------------------
    def _raise_failure(self) -> None:
        if self._failure is not None:
            if isinstance(self._failure, CofferError):
                raise self._failure
            raise StorageError(f"upload failed: {self._failure}") from self._failure

    def _place(
        self, space: str, chunk_id: bytes, payload_length: int, raw_length: int
    ) -> tuple[PackBuilder, PackedBlob, list[tuple[PackBuilder, str]]]:
        """Reserve room for a blob in one of the space's open packs; also return the packs now ready to upload."""
        ready: list[tuple[PackBuilder, str]] = []
        with self._lock:
            packs = self._open[space]
            if len(packs) < OPEN_PACKS_PER_SPACE:
                public = self.repository.keys.public_keys[space]  # this writer's own key set, never storage's
                pack = PackBuilder(public, self.repository.tag(space))
                packs.append((pack, self._target_size()))
                self._open_bytes += pack.size
            slot = self._random.randrange(len(packs)) if len(packs) > 1 else 0  # a draw is a getrandom call
            pack, target = packs[slot]
            blob = pack.reserve(chunk_id, payload_length, raw_length=raw_length)
            self._open_bytes += blob.length
            self.stats.spaces[space].stored_bytes += blob.length
            if pack.size >= target:
                ready.append((self._close_locked(space, slot), space))
            while self._open_bytes > OPEN_BYTES_BUDGET:
                fullest_space, fullest_slot = max(
                    ((s, i) for s, open_packs in self._open.items() for i in range(len(open_packs))),
                    key=lambda si: self._open[si[0]][si[1]][0].size,
                )
                ready.append((self._close_locked(fullest_space, fullest_slot), fullest_space))
        return pack, blob, ready

    def _close_locked(self, space: str, slot: int) -> PackBuilder:
        pack, _target = self._open[space].pop(slot)
        self._open_bytes -= pack.size
        return pack

    def _target_size(self) -> int:
        settings = self.repository.config.packs
        return self._random.randint(settings.min_size, settings.max_size)

    def _submit(self, pack: PackBuilder, space: str) -> None:
        self._in_flight.acquire()
        try:
            self._futures.append(self._uploads.submit(self._upload, pack, space))
        except BaseException:
            self._in_flight.release()
            raise

    def _upload(self, pack: PackBuilder, space: str) -> None:
        try:
            try:
                pack_id, parts = pack.finish()
                size = sum(len(part) for part in parts)
                tags = {"coffer-category": pack.tag}
                put_parts_if_absent(self.repository.storage, self.repository.pack_name(space, pack_id), parts, tags)
                del parts
            finally:
                pack.release()  # the pack's memory goes back before its index entry is recorded
            record = PackRecord(pack_id, space, [(b.chunk_id, b.offset, b.length, b.raw_length) for b in pack.blobs])
            with self._lock:
                self.index.add_pack(record)
                for chunk_id, *_ in record.blobs:
                    self._pending.discard((space, chunk_id))
                self._unindexed.append(record)
                self.stats.packs_uploaded += 1
                self.stats.uploaded_bytes += size
            self._checkpoint(force=False)
            if self.on_uploaded is not None:
                self.on_uploaded(size)
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self._in_flight.release()

    def _checkpoint(self, *, force: bool) -> None:
        """Write an index object for the packs uploaded since the last one, once there are enough of them.
        The write (sealing, a put and its fsync) happens outside the lock every `store_chunk` takes."""
        with self._lock:
            if not self._unindexed or (not force and len(self._unindexed) < self._checkpoint_packs):
                return
            batch, self._unindexed = self._unindexed, []
        try:
            name = self.repository.write_index(batch)
        except BaseException:
            with self._lock:
                self._unindexed[:0] = batch  # the final checkpoint tries them again
            raise
        with self._lock:
            self.index.objects.add(name)
            self.stats.index_objects += 1
