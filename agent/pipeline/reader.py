"""The read side of the pipeline: fetch, verify, decrypt and decompress blobs.

Every blob is checked three ways before its bytes are used: AES-GCM authenticates it (with
its chunk ID as associated data), its length must match the index, and its keyed ID is
recomputed from the plaintext when the key allows. A chunk with several candidate locations is
read from the first that passes all three, so a damaged copy or a wrong index entry costs a
retry, never the restore. Reads of one file are prefetched a few
blobs ahead on a small thread pool, so storage latency overlaps decryption.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from agent.errors import ObjectNotFoundError, RepositoryDamagedError
from agent.keys import primitives
from agent.pipeline import compression
from agent.repository.index import BlobLocation, Index
from agent.repository.pack import HEADER_READ_SIZE, open_blob, open_pack_key
from agent.repository.repository import Repository

PACK_KEY_CACHE = 1024


class BlobReader:
    def __init__(
        self, repository: Repository, index: Index, *, on_read: Callable[[int], None] | None = None, workers: int = 4
    ) -> None:
        self.repository = repository
        self.index = index
        self._pack_keys: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coffer-read")
        self._on_read = on_read
        self.packs_touched: set[str] = set()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def locate(self, space: str, chunk_id: bytes) -> list[BlobLocation]:
        locations = self.index.locations(space, chunk_id)
        if not locations:
            raise RepositoryDamagedError(
                f"blob {chunk_id.hex()[:16]} of {space} is in no pack the index knows (an index object or a pack "
                "was lost: `coffer check` tells which, `coffer repair` rebuilds the index from the packs)"
            )
        return locations

    def _pack_key(self, location: BlobLocation, name: str) -> bytes:
        with self._lock:
            key = self._pack_keys.get(location.pack)
            if key is not None:
                self._pack_keys.move_to_end(location.pack)
                return key
        self.repository.keys.require_read(location.space)
        header = self._get_range(name, 0, HEADER_READ_SIZE)
        key = open_pack_key(header, self.repository.keys.private_keys_for(location.space), self.repository.tag(location.space), name)
        with self._lock:
            self._pack_keys[location.pack] = key
            while len(self._pack_keys) > PACK_KEY_CACHE:
                self._pack_keys.popitem(last=False)
        return key

    def _get_range(self, name: str, offset: int, length: int, *, writable: bool = False) -> bytes | bytearray:
        storage = self.repository.storage
        read = storage.get_range_writable if writable else storage.get_range
        try:
            data = read(name, offset, length)
        except ObjectNotFoundError as exc:
            raise RepositoryDamagedError(f"pack {name} is missing") from exc
        if len(data) != length:
            raise RepositoryDamagedError(f"pack {name} is truncated")
        return data

    def read(self, space: str, chunk_id: bytes) -> bytes | memoryview:
        """The verified plaintext of a chunk, from the first of its candidate locations that holds it: a view
        of the buffer it was read and decrypted in when it was stored raw (that buffer is the chunk's own)."""
        failures: list[RepositoryDamagedError] = []
        for location in self.locate(space, chunk_id):
            try:
                plain = self.read_at(location, chunk_id)
            except RepositoryDamagedError as exc:
                failures.append(exc)  # a damaged copy, or a wrong entry an index object added: try the next
                continue
            if self._on_read is not None:
                self._on_read(len(plain))
            return plain
        if len(failures) == 1:
            raise failures[0]
        raise RepositoryDamagedError(f"{failures[0]} (and {len(failures) - 1} other locations fail too)")

    def read_at(self, location: BlobLocation, chunk_id: bytes) -> bytes | memoryview:
        """Read and verify the chunk at one location; damage (or a wrong location) raises RepositoryDamagedError."""
        name = self.repository.pack_name(location.space, location.pack)
        with self._lock:
            self.packs_touched.add(location.pack)
        key = self._pack_key(location, name)
        sealed = self._get_range(name, location.offset, location.length, writable=True)  # decrypted in place
        payload, compressed = open_blob(key, location.offset, chunk_id, sealed, f"pack {name}")
        try:
            plain = compression.decompress(payload, location.raw_length) if compressed else payload
        except compression.DecompressionError as exc:
            raise RepositoryDamagedError(f"pack {name}: blob {chunk_id.hex()[:16]} does not decompress") from exc
        if len(plain) != location.raw_length:
            raise RepositoryDamagedError(f"pack {name}: blob {chunk_id.hex()[:16]} has the wrong length")
        id_key = self.repository.keys.chunk_id_key(location.space)
        if id_key is not None and primitives.chunk_id(id_key, plain) != chunk_id:
            raise RepositoryDamagedError(f"pack {name}: blob {chunk_id.hex()[:16]} does not match its ID")
        return plain

    def read_stream(self, space: str, chunk_ids: Iterable[bytes]) -> Iterator[bytes | memoryview]:
        """Yield the plaintext of each chunk in order, prefetching as many ahead as the storage asks for."""
        ahead = self.repository.storage.read_ahead
        if ahead <= 0:
            for chunk_id in chunk_ids:
                yield self.read(space, chunk_id)
            return
        pending = []
        for chunk_id in chunk_ids:
            pending.append(self._pool.submit(self.read, space, chunk_id))
            if len(pending) > ahead:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()
