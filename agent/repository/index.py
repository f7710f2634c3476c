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
    """

    def __init__(self) -> None:
        self._locations: dict[tuple[str, bytes], list[BlobLocation]] = {}
        self._packs: dict[str, PackRecord] = {}
        self.objects: set[str] = set()  # names of the index objects loaded
        self.damaged: dict[str, str] = {}  # index objects skipped while loading -> why
        self._lock = threading.Lock()

    def add_pack(self, record: PackRecord, source: str = "") -> None:
        with self._lock:
            known = self._packs.get(record.pack_id)
            if known is None:
                known = self._packs[record.pack_id] = PackRecord(record.pack_id, record.space)
            listed = set(known.blobs)
            for blob in record.blobs:
                chunk_id, offset, length, raw_length = blob
                location = BlobLocation(record.pack_id, record.space, offset, length, raw_length, source)
                candidates = self._locations.setdefault((record.space, chunk_id), [])
                if location not in candidates:
                    candidates.append(location)
                if blob not in listed:
                    known.blobs.append(blob)
                    listed.add(blob)

    def lookup(self, space: str, chunk_id: bytes) -> BlobLocation | None:
        """The first candidate location of a chunk (where a restore tries first)."""
        candidates = self._locations.get((space, chunk_id))
        return candidates[0] if candidates else None

    def locations(self, space: str, chunk_id: bytes) -> list[BlobLocation]:
        """Every candidate location of a chunk, in the order a reader tries them."""
        return list(self._locations.get((space, chunk_id), ()))

    def entries(self) -> Iterator[tuple[bytes, BlobLocation]]:
        """(chunk ID, location) of every candidate location."""
        with self._lock:
            items = [(key[1], location) for key, candidates in self._locations.items() for location in candidates]
        return iter(items)

    def __contains__(self, key: tuple[str, bytes]) -> bool:
        return key in self._locations

    def __len__(self) -> int:
        return len(self._locations)

    def packs(self) -> Iterator[PackRecord]:
        return iter(list(self._packs.values()))

    def pack(self, pack_id: str) -> PackRecord | None:
        return self._packs.get(pack_id)
