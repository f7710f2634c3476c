"""The index: which pack holds each (category, chunk ID), at which offset and length.

Index objects (`index/<sha256>`) are append-only. A backup writes one every few packs as a
checkpoint, so an interrupted backup resumes by deduplicating against what it already
uploaded. Each object is sealed under the index key, which every writer holds (that is how a
put-only station deduplicates) and padded to a size class, so its size tells the provider
little about how many chunks it lists; the plaintext is a small JSON header naming the packs
followed by fixed-size binary entries, zstd-compressed.

The index is a cache of what the packs' trailers say, never the only record: a chunk keeps
every candidate location any object lists (readers try them in turn), a damaged object is
skipped by `Repository.load_index`, and `coffer repair index` rebuilds it all from the trailers.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import zstandard

from agent._native import ChunkTable
from agent.errors import RepositoryDamagedError
from agent.keys import primitives

INDEX_PREFIX = "index/"
ENTRY = struct.Struct("<32sIII")  # chunk id, offset, length, raw length
LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class BlobLocation:
    pack: str  # pack ID (hex)
    space: str  # category (or internal space) of the pack
    offset: int
    length: int
    raw_length: int
    source: str = field(default="", compare=False)  # the index object that listed it ('' when written now)


@dataclass
class PackRecord:
    """One pack as an index object lists it."""

    pack_id: str
    space: str
    blobs: list[tuple[bytes, int, int, int]] = field(default_factory=list)  # (chunk id, offset, length, raw)

    @property
    def stored_size(self) -> int:
        return sum(length for _, _, length, _ in self.blobs)


def encode_index(records: Iterable[PackRecord], index_key: bytes, supersedes: list[str] | None = None) -> bytes:
    records = list(records)
    header = {
        "v": 1,
        "packs": [{"id": r.pack_id, "space": r.space, "count": len(r.blobs)} for r in records],
        "supersedes": supersedes or [],
    }
    header_bytes = json.dumps(header, sort_keys=True).encode("utf-8")
    parts = [LENGTH.pack(len(header_bytes)), header_bytes]
    for record in records:
        parts.extend(ENTRY.pack(*blob) for blob in record.blobs)
    plain = zstandard.compress(b"".join(parts), 3)
    return primitives.seal_object(index_key, plain, purpose=b"index v2")


def decode_index(data: bytes, index_keys: list[bytes], name: str) -> tuple[list[PackRecord], list[str]]:
    try:
        plain = zstandard.decompress(primitives.open_object(index_keys, data, purpose=b"index v2"))
    except (primitives.DecryptionError, zstandard.ZstdError) as exc:
        raise RepositoryDamagedError(f"index object {name} fails authentication") from exc
    try:
        (header_length,) = LENGTH.unpack_from(plain, 0)
        header = json.loads(plain[LENGTH.size : LENGTH.size + header_length])
        position = LENGTH.size + header_length
        records = []
        for pack in header["packs"]:
            record = PackRecord(pack_id=str(pack["id"]), space=str(pack["space"]))
            for _ in range(int(pack["count"])):
                record.blobs.append(ENTRY.unpack_from(plain, position))
                position += ENTRY.size
            records.append(record)
        return records, [str(name) for name in header.get("supersedes", [])]
    except (struct.error, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise RepositoryDamagedError(f"index object {name} is not a valid index object") from exc


class Index:
    """The in-memory union of every index object; safe to use from several threads.

    A chunk may have several candidate locations (two writers stored it at once, or an index object
    lists a wrong one): all are kept, in the order they were added, and readers fall back to the next
    when one fails, so an added index object can never deny a restore while the true data exists.
    A pack listed by several objects keeps the union of their entries.

    The first location of every chunk lives in a native hash table (`agent._native.ChunkTable`, about
    100 bytes per chunk: benchmarks/bench_index.py measures it at 10 M chunks); further candidates, which
    only conflicts or a hostile index object create, in a dictionary beside it. A pack's listing is
    rebuilt from them when asked for (maintenance commands), not kept twice.
    """

    def __init__(self) -> None:
        self._table = ChunkTable()
        self._more: dict[tuple[str, bytes], list[BlobLocation]] = {}  # candidates after the first
        self._space_codes: dict[str, int] = {}
        self._spaces: list[str] = []
        self._pack_numbers: dict[str, int] = {}
        self._pack_ids: list[str] = []
        self._pack_spaces: list[str] = []
        self._source_codes: dict[str, int] = {"": 0}
        self._sources: list[str] = [""]
        self._by_pack: dict[str, PackRecord] | None = None  # built on demand, dropped by add_pack
        self.objects: set[str] = set()  # names of the index objects loaded
        self.damaged: dict[str, str] = {}  # index objects skipped while loading -> why
        self._lock = threading.Lock()

    @staticmethod
    def _code(codes: dict[str, int], names: list[str], name: str) -> int:
        code = codes.get(name)
        if code is None:
            code = codes[name] = len(names)
            names.append(name)
        return code

    def add_pack(self, record: PackRecord, source: str = "") -> None:
        with self._lock:
            self._by_pack = None
            number = self._pack_numbers.get(record.pack_id)
            if number is None:
                number = self._pack_numbers[record.pack_id] = len(self._pack_ids)
                self._pack_ids.append(record.pack_id)
                self._pack_spaces.append(record.space)  # a later object naming another space does not change it
            space = self._code(self._space_codes, self._spaces, record.space)
            source_code = self._code(self._source_codes, self._sources, source)
            for chunk_id, offset, length, raw_length in record.blobs:
                if self._table.add(space, chunk_id, number, offset, length, raw_length, source_code) >= 0:
                    continue  # new, or this very location again
                location = BlobLocation(record.pack_id, record.space, offset, length, raw_length, source)
                candidates = self._more.setdefault((record.space, chunk_id), [])
                if location not in candidates:
                    candidates.append(location)

    def _first(self, space: str, chunk_id: bytes) -> BlobLocation | None:
        code = self._space_codes.get(space)
        found = self._table.get(code, chunk_id) if code is not None else None
        if found is None:
            return None
        pack, offset, length, raw_length, source = found
        return BlobLocation(self._pack_ids[pack], space, offset, length, raw_length, self._sources[source])

    def lookup(self, space: str, chunk_id: bytes) -> BlobLocation | None:
        """The first candidate location of a chunk (where a restore tries first)."""
        return self._first(space, chunk_id)

    def locations(self, space: str, chunk_id: bytes) -> list[BlobLocation]:
        """Every candidate location of a chunk, in the order a reader tries them."""
        first = self._first(space, chunk_id)
        if first is None:
            return []
        return [first, *self._more.get((space, chunk_id), ())]

    def entries(self) -> Iterator[tuple[bytes, BlobLocation]]:
        """(chunk ID, location) of every candidate location."""
        with self._lock:
            items = [
                (chunk_id, BlobLocation(self._pack_ids[pack], self._spaces[space], offset, length, raw, self._sources[source]))
                for space, chunk_id, pack, offset, length, raw, source in self._table.items()
            ]
            items.extend((key[1], location) for key, candidates in self._more.items() for location in candidates)
        return iter(items)

    def __contains__(self, key: tuple[str, bytes]) -> bool:
        space, chunk_id = key
        code = self._space_codes.get(space)
        return code is not None and self._table.get(code, chunk_id) is not None

    def __len__(self) -> int:
        return len(self._table)

    @property
    def table_bytes(self) -> int:
        """The native table's memory (benchmarks report it)."""
        return int(self._table.memory_bytes)

    def _records(self) -> dict[str, PackRecord]:
        with self._lock:
            if self._by_pack is None:
                records = {pack_id: PackRecord(pack_id, self._pack_spaces[number])
                           for number, pack_id in enumerate(self._pack_ids)}
                for _, chunk_id, pack, offset, length, raw, _ in self._table.items():
                    records[self._pack_ids[pack]].blobs.append((chunk_id, offset, length, raw))
                for (_, chunk_id), candidates in self._more.items():
                    for location in candidates:
                        records[location.pack].blobs.append((chunk_id, location.offset, location.length, location.raw_length))
                for record in records.values():
                    record.blobs = sorted(set(record.blobs), key=lambda blob: (blob[1], blob[0]))
                self._by_pack = records
            return self._by_pack

    def packs(self) -> Iterator[PackRecord]:
        return iter(list(self._records().values()))

    def pack(self, pack_id: str) -> PackRecord | None:
        return self._records().get(pack_id)
