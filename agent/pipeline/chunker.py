"""Keyed content-defined chunking of file contents, and page-aligned blocks for SQLite files.

Content-defined chunking (FastCDC-style normalized chunking), keyed as in the fix of
"Breaking and Fixing Content-Defined Chunking" (CCS 2025): a secret gear table alone
can be recovered from observed chunk sizes, so the cut decision goes through a PRF.

1. Keys. A 32-byte chunker secret is expanded with HKDF-SHA256 into a 256-entry uint64
   gear table and a 16-byte AES-128 key used as the PRF (`ChunkerKey`).
2. Candidates. The gear hash ``h = (h << 1) + gear[byte]`` (mod 2**64) forgets a byte
   after 64 positions, so whether the position after byte i is a *candidate* depends
   only on bytes i-63..i and never on where the current chunk started. A position is
   a candidate when the top ``n`` bits of ``h`` are zero, with
   ``n = floor(log2(avg_size / 64))``: candidate rate ``p_c = 2**-n``, about one per
   ``avg_size / 64`` bytes (one per 16 KiB for the 1 MiB default). The top bits are the
   ones that depend on the whole 64-byte window; the low bits see only the last few
   bytes. Positions less than 64 bytes into the stream are never candidates. As no
   cut falls within min_size of a chunk start, hashing starts afresh 64 bytes before
   that point (FastCDC's skip), which yields exactly the hash of the whole stream.
3. PRF. For each candidate, ``v`` is the first 8 bytes (little-endian) of
   AES-128-ECB(prf_key, h as 8 bytes little-endian || 8 zero bytes) (libcrypto).
   ``v`` is uniform on [0, 2**64) and unpredictable without the key.
4. Normalized cut rule, for a chunk starting at s and a candidate cut at c, L = c - s:
   ``L < min_size``: no cut; ``min_size <= L < avg_size``: cut if ``v < T_strict``;
   ``L >= avg_size``: cut if ``v < T_loose``; ``L == max_size``: forced cut. The first
   candidate that passes ends the chunk. The per-byte cut probability is
   ``p_c * T / 2**64``; FastCDC's normalization level 2 asks for ``1 / (4 * avg)``
   before the normal point and ``4 / avg`` after it, hence

       T_strict = 2**64 * 2**n / (4 * avg_size)    (about 2**64 / 256)
       T_loose  = 2**64 * 4 * 2**n / avg_size      (about 2**64 / 16)

   On random data the mean chunk is about 1.2 * avg_size (512 KiB skipped, a 12 %
   chance of a cut before 1 MiB, then 256 KiB on average).

Steps 2 to 4 run in the native extension (`agent._native.CutFinder`): one call per piece
of the stream, with the GIL released over the whole piece. It hashes 32 KiB at a time as four
stretches side by side (each from 64 bytes before its start, which gives the same hash), and
the earliest stretch with a passing candidate holds the cut. tests/test_chunker.py holds
the byte-by-byte reference it is checked against.

SQLite files (`is_sqlite_name`) dedup far better when cut at page boundaries, since
SQLite rewrites scattered pages in place: with ``sqlite_hint`` a database that starts
with the SQLite header is cut into blocks of max(page size, 64 KiB) rounded up to a
whole number of pages, and a write-ahead log into its 32-byte header followed by
blocks of whole frames (24 + page size bytes) of about 64 KiB. Anything else falls
back to content-defined chunking.

`Chunker.chunks` streams: pieces of any size in, whole chunks out. Each piece is copied once
(GIL released) into an assembly buffer that the thread reuses file after file, and chunks are
views of it: no allocation or further copy per chunk. The buffer holds at most one unfinished
chunk (< max_size) and one slice of a piece.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent._native import CutFinder, copy_into
from agent.errors import UsageError

CHUNKER_SECRET_SIZE = 32
GEAR_TABLE_SIZE = 256 * 8
PRF_KEY_SIZE = 16
HASH_WINDOW = 64
_GEAR_INFO = b"coffer chunker gear v1"
_PRF_INFO = b"coffer chunker prf v1"
# One candidate per avg_size / 64 bytes leaves 64 PRF draws per average chunk: enough
# for the normalized rule to shape the size distribution, few enough to cost nothing.
_CANDIDATES_PER_AVERAGE_CHUNK = 64

SQLITE_HEADER_MAGIC = b"SQLite format 3\x00"
SQLITE_WAL_MAGICS = (0x377F0682, 0x377F0683)
SQLITE_WAL_HEADER_SIZE = 32
SQLITE_WAL_FRAME_HEADER_SIZE = 24
SQLITE_BLOCK_TARGET = 64 * 1024
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".sqlitedb", ".storedata")
_SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")
# Enough of a file to tell a database (magic + page size at 16) or a WAL (page size at 8).
_SQLITE_SNIFF_SIZE = len(SQLITE_HEADER_MAGIC) + 2

Piece = bytes | bytearray | memoryview
# Pieces enter the assembly buffer this many bytes at a time, so a whole file given as one piece needs no
# bigger buffer.
_SLICE = 1 << 20


@dataclass(frozen=True)
class ChunkerKey:
    """The keys of the chunker, derived from the repository's chunker secret."""

    gear_table: bytes = field(repr=False)
    prf_key: bytes = field(repr=False)

    @classmethod
    def derive(cls, secret: bytes) -> ChunkerKey:
        if len(secret) != CHUNKER_SECRET_SIZE:
            raise ValueError(f"a chunker secret is {CHUNKER_SECRET_SIZE} bytes, got {len(secret)}")
        return cls(
            gear_table=_hkdf(secret, _GEAR_INFO, GEAR_TABLE_SIZE),
            prf_key=_hkdf(secret, _PRF_INFO, PRF_KEY_SIZE),
        )


def _hkdf(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


@dataclass(frozen=True)
class ChunkerParams:
    """Chunk size bounds in bytes; the derived properties are the rule of the module docstring."""

    min_size: int = 512 * 1024
    avg_size: int = 1 << 20
    max_size: int = 8 << 20

    def __post_init__(self) -> None:
        if not HASH_WINDOW <= self.min_size <= self.avg_size <= self.max_size:
            raise UsageError(
                f"chunk sizes must satisfy {HASH_WINDOW} <= min <= avg <= max, got "
                f"min={self.min_size} avg={self.avg_size} max={self.max_size}"
            )

    @property
    def candidate_bits(self) -> int:
        """n: a position is a candidate when the top n bits of the hash are zero."""
        return (self.avg_size // _CANDIDATES_PER_AVERAGE_CHUNK).bit_length() - 1

    @property
    def candidate_mask(self) -> int:
        bits = self.candidate_bits
        return ((1 << bits) - 1) << (64 - bits)

    @property
    def strict_threshold(self) -> int:
        """T_strict: PRF values below it cut between min_size and avg_size."""
        return (1 << (64 + self.candidate_bits)) // (4 * self.avg_size)

    @property
    def loose_threshold(self) -> int:
        """T_loose: PRF values below it cut from avg_size on."""
        return (1 << (66 + self.candidate_bits)) // self.avg_size


DEFAULT_CHUNKER_PARAMS = ChunkerParams()


_SQLITE_NAME_ENDINGS = tuple(suffix + companion for suffix in _SQLITE_SUFFIXES for companion in _SQLITE_COMPANIONS)


def is_sqlite_name(relative_path: str) -> bool:
    """True for names SQLite databases and their -wal/-shm/-journal companions use."""
    return relative_path.lower().endswith(_SQLITE_NAME_ENDINGS)


class _Cuts(Protocol):
    def feed(self, data: memoryview, stream_offset: int) -> list[int]:
        """Takes the next `data` of the stream; returns the chunk end offsets it settles.

        Every returned offset lies in (stream_offset, stream_offset + len(data)]: a cut
        is settled as soon as the byte before it has been seen.
        """
        ...


class _FixedBlockCuts:
    """Cuts after an optional header, then every `block_size` bytes."""

    def __init__(self, header_size: int, block_size: int) -> None:
        self._next_cut = header_size or block_size
        self._block_size = block_size

    def feed(self, data: memoryview, stream_offset: int) -> list[int]:
        cuts = list(range(self._next_cut, stream_offset + len(data) + 1, self._block_size))
        if cuts:
            self._next_cut = cuts[-1] + self._block_size
        return cuts


def _valid_page_size(page_size: int) -> bool:
    return 512 <= page_size <= 65536 and page_size & (page_size - 1) == 0


def _sqlite_blocks(head: bytes) -> _FixedBlockCuts | None:
    """Page-aligned blocks for a SQLite database or WAL starting with `head`; None if neither."""
    if head.startswith(SQLITE_HEADER_MAGIC) and len(head) >= 18:
        stored = int.from_bytes(head[16:18], "big")
        page_size = 65536 if stored == 1 else stored
        if not _valid_page_size(page_size):
            return None
        pages = -(-max(page_size, SQLITE_BLOCK_TARGET) // page_size)
        return _FixedBlockCuts(0, pages * page_size)
    if len(head) >= 12 and int.from_bytes(head[:4], "big") in SQLITE_WAL_MAGICS:
        page_size = int.from_bytes(head[8:12], "big")
        if not _valid_page_size(page_size):
            return None
        frame_size = SQLITE_WAL_FRAME_HEADER_SIZE + page_size
        frames = max(1, round(SQLITE_BLOCK_TARGET / frame_size))
        return _FixedBlockCuts(SQLITE_WAL_HEADER_SIZE, frames * frame_size)
    return None


def _byte_view(piece: Piece) -> memoryview:
    return memoryview(piece).cast("B")


def _peek(pieces: Iterator[Piece], size: int) -> tuple[bytes, Iterator[Piece]]:
    """The first `size` bytes of the stream (fewer if it is shorter) and the whole stream again."""
    head = bytearray()
    taken: list[Piece] = []
    for piece in pieces:
        with _byte_view(piece) as view:
            head += view[: size - len(head)]
        if len(head) >= size:
            taken.append(piece)
            break
        # A piece shorter than the head is copied: the source may reuse its buffer for
        # the next piece, which is read before this one is chunked.
        taken.append(bytes(piece))
    return bytes(head), itertools.chain(taken, pieces)


class _AssemblyBuffers(threading.local):
    def __init__(self) -> None:
        self.free: mmap.mmap | None = None


_buffers = _AssemblyBuffers()


@contextlib.contextmanager
def _assembly_buffer(size: int) -> Iterator[mmap.mmap]:
    """The calling thread's assembly buffer of at least `size` bytes, or a new one while it is in use (two
    streams chunked side by side in one thread). An anonymous mapping: pages are touched only as used."""
    buffer = _buffers.free
    if buffer is None or len(buffer) < size:
        buffer = mmap.mmap(-1, size)
    _buffers.free = None
    try:
        yield buffer
    finally:
        _buffers.free = buffer


class Chunker:
    """Splits byte streams into chunks; one instance may serve several threads at once."""

    def __init__(self, secret: bytes, params: ChunkerParams = DEFAULT_CHUNKER_PARAMS) -> None:
        self.params = params
        self._key = ChunkerKey.derive(secret)

    def chunks(self, pieces: Iterable[Piece], *, sqlite_hint: bool = False) -> Iterator[memoryview]:
        """Yields the chunks of the concatenation of `pieces`, in order, as views of a reused buffer.

        A chunk is valid until the next one is asked for (then it is released): a caller that keeps one
        copies it. With `sqlite_hint`, a stream that starts like a SQLite database or WAL is cut at page
        boundaries.
        """
        stream = iter(pieces)
        if sqlite_hint:
            head, stream = _peek(stream, _SQLITE_SNIFF_SIZE)
            finder = self._finder(head)
        else:
            finder = self._content_defined()
        with _assembly_buffer(self.params.max_size + _SLICE) as buffer, memoryview(buffer) as view:
            base = 0  # the stream offset of buffer[0]
            start = 0  # where the current chunk starts in the buffer
            filled = 0
            for piece in stream:
                with _byte_view(piece) as source:
                    for at in range(0, source.nbytes, _SLICE):
                        part = source[at : at + _SLICE]
                        if filled + part.nbytes > len(buffer):
                            # The chunks before `start` are finished with: move the unfinished one to the front.
                            copy_into(buffer, 0, view[start:filled])
                            base, filled, start = base + start, filled - start, 0
                        copy_into(buffer, filled, part)
                        for cut in finder.feed(view[filled : filled + part.nbytes], base + filled):
                            with view[start : cut - base] as chunk:
                                yield chunk
                            start = cut - base
                        filled += part.nbytes
            if filled > start:
                with view[start:filled] as chunk:
                    yield chunk

    def cut_points(self, data: Piece, *, sqlite_hint: bool = False) -> list[int]:
        """The end offset of every chunk of `data`, the last one being len(data)."""
        with _byte_view(data) as view:
            finder = (
                self._finder(bytes(view[:_SQLITE_SNIFF_SIZE])) if sqlite_hint else self._content_defined()
            )
            cuts = finder.feed(view, 0) if view.nbytes else []
            if view.nbytes and (not cuts or cuts[-1] != view.nbytes):
                cuts.append(view.nbytes)
            return cuts

    def _finder(self, head: bytes) -> _Cuts:
        return _sqlite_blocks(head) or self._content_defined()

    def _content_defined(self) -> _Cuts:
        params = self.params
        return CutFinder(
            self._key.gear_table, self._key.prf_key, params.candidate_mask, params.strict_threshold,
            params.loose_threshold, params.min_size, params.avg_size, params.max_size,
        )
