"""Tests of the keyed content-defined chunker and the SQLite page-aligned blocks."""

from __future__ import annotations

import itertools
import random
import sqlite3
import threading
import tracemalloc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import runs_without_the_gil
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import _native
from agent.errors import UsageError
from agent.pipeline.chunker import Chunker, ChunkerKey, ChunkerParams, is_sqlite_name

SMALL = ChunkerParams(min_size=2048, avg_size=8192, max_size=65536)
# A non-power-of-two average and a max close to it, so forced cuts are common.
TIGHT = ChunkerParams(min_size=1000, avg_size=4000, max_size=4500)
DENSE = ChunkerParams(min_size=64, avg_size=256, max_size=2048)
MASK64 = (1 << 64) - 1


def reference_cut_points(secret: bytes, params: ChunkerParams, data: bytes) -> list[int]:
    """The chunking rule of the module docstring, byte by byte, without the native scanner."""

    def hkdf(info: bytes, length: int) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)

    bits = 0
    while 64 << (bits + 1) <= params.avg_size:
        bits += 1
    rule = CutRule(
        gear_table=hkdf(b"coffer chunker gear v1", 2048),
        prf_key=hkdf(b"coffer chunker prf v1", 16),
        mask=MASK64 ^ (MASK64 >> bits),
        strict=2**64 * 2**bits // (4 * params.avg_size),
        loose=2**64 * 4 * 2**bits // params.avg_size,
        params=params,
    )
    return rule.cut_points(data)


@dataclass(frozen=True)
class CutRule:
    """The cut rule with its constants given outright, as the native CutFinder takes them."""

    gear_table: bytes
    prf_key: bytes
    mask: int
    strict: int
    loose: int
    params: ChunkerParams

    def native(self) -> _native.CutFinder:
        p = self.params
        return _native.CutFinder(
            self.gear_table, self.prf_key, self.mask, self.strict, self.loose, p.min_size, p.avg_size, p.max_size
        )

    def cut_points(self, data: bytes) -> list[int]:
        """Every chunk end, the last one being len(data)."""
        cuts = self.settled_cuts(data)
        return [*cuts, len(data)] if data and (not cuts or cuts[-1] != len(data)) else cuts

    def settled_cuts(self, data: bytes) -> list[int]:
        """The cuts the rule makes within `data` (the stream's end is no cut of its own)."""
        gear = [int.from_bytes(self.gear_table[i * 8 : i * 8 + 8], "little") for i in range(256)]
        prf = Cipher(algorithms.AES(self.prf_key), modes.ECB()).encryptor()
        params = self.params
        cuts = []
        start = 0
        h = 0
        for i, byte in enumerate(data):
            h = ((h << 1) + gear[byte]) & MASK64
            cut = i + 1
            length = cut - start
            cut_here = length == params.max_size
            if not cut_here and i >= 63 and h & self.mask == 0 and length >= params.min_size:
                value = int.from_bytes(prf.update(h.to_bytes(8, "little") + bytes(8))[:8], "little")
                cut_here = value < (self.strict if length < params.avg_size else self.loose)
            if cut_here:
                cuts.append(cut)
                start = cut
        return cuts


def random_pieces(data: bytes, rng: random.Random, largest: int) -> Iterator[bytes | bytearray | memoryview]:
    """`data` in pieces of random sizes (empty ones included) and of every buffer type."""
    offset = 0
    while offset < len(data):
        size = rng.choice((0, 1, 7, rng.randint(1, largest)))
        piece = data[offset : offset + size]
        yield rng.choice((bytes, bytearray, memoryview))(piece)
        offset += size


def reused_buffer_pieces(data: bytes, size: int) -> Iterator[memoryview]:
    """Pieces like `readinto` gives them: one buffer overwritten for every piece."""
    buffer = bytearray(size)
    for offset in range(0, len(data), size):
        piece = data[offset : offset + size]
        buffer[: len(piece)] = piece
        with memoryview(buffer) as view:
            yield view[: len(piece)]
        buffer[:] = bytes(size)  # scribble over what the chunker was given


def copied(chunks: Iterable[memoryview]) -> list[bytes]:
    """The chunks of a stream, kept: each is a view of the chunker's buffer only until the next."""
    return [bytes(chunk) for chunk in chunks]


def ends(chunks: list[bytes]) -> list[int]:
    return list(itertools.accumulate(len(chunk) for chunk in chunks))


def chunk_lengths(cuts: list[int]) -> list[int]:
    return [end - start for start, end in itertools.pairwise([0, *cuts])]


def random_data(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("params", [SMALL, TIGHT, DENSE], ids=["small", "tight", "dense"])
@pytest.mark.parametrize("key_seed", [1, 2, 3])
def test_native_matches_reference(params: ChunkerParams, key_seed: int) -> None:
    rng = random.Random(key_seed * 100 + params.avg_size)
    secret = rng.randbytes(32)
    # Random bytes with a long run of one value (a constant hash: forced cuts or a
    # candidate at every position) and a repeating pattern.
    data = rng.randbytes(200_000) + bytes([rng.randrange(256)]) * 10_000 + rng.randbytes(300) * 100
    expected = reference_cut_points(secret, params, data)
    chunker = Chunker(secret, params)

    assert chunker.cut_points(data) == expected
    for _ in range(3):
        streamed = copied(chunker.chunks(random_pieces(data, rng, largest=9000)))
        assert ends(streamed) == expected
        assert b"".join(streamed) == data
    assert len(expected) > 10


@st.composite
def cut_rule_cases(draw: st.DrawFn) -> tuple[CutRule, bytes, list[int]]:
    """A cut rule with any constants, content mixing random bytes with runs of one value and repeated patterns,
    and the sizes of the pieces it arrives in. Thresholds at the top let every candidate cut, so each cut shows
    the hash at one position: a scan that carried a wrong hash over a block, stretch or piece edge (the native
    scan hashes 32 KiB blocks as four stretches side by side) cuts elsewhere."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    bits = draw(st.integers(0, 16))
    min_size = draw(st.integers(64, 6000))
    avg_size = draw(st.integers(min_size, 40_000))
    max_size = draw(st.integers(avg_size, 150_000))
    threshold = st.one_of(st.just(MASK64), st.integers(0, MASK64))
    rule = CutRule(
        gear_table=rng.randbytes(2048),
        prf_key=rng.randbytes(16),
        mask=MASK64 ^ (MASK64 >> bits),
        strict=draw(threshold),
        loose=draw(threshold),
        params=ChunkerParams(min_size, avg_size, max_size),
    )
    parts = []
    for kind in draw(st.lists(st.sampled_from(["random", "run", "pattern"]), min_size=1, max_size=6)):
        size = draw(st.integers(1, 60_000))
        if kind == "random":
            parts.append(rng.randbytes(size))
        elif kind == "run":
            parts.append(bytes([rng.randrange(256)]) * size)
        else:
            pattern = rng.randbytes(rng.randint(1, 300))
            parts.append((pattern * (size // len(pattern) + 1))[:size])
    return rule, b"".join(parts), draw(st.lists(st.integers(0, 70_000), max_size=8))


@settings(max_examples=60, deadline=None)
@given(cut_rule_cases())
def test_native_scan_matches_reference_for_any_rule(case: tuple[CutRule, bytes, list[int]]) -> None:
    rule, data, piece_sizes = case
    expected = rule.settled_cuts(data)
    assert rule.native().feed(data, 0) == expected
    finder, cuts, offset = rule.native(), [], 0
    for size in [*piece_sizes, len(data)]:
        piece = data[offset : offset + size]
        cuts += finder.feed(piece, offset) if piece else []
        offset += len(piece)
    assert cuts == expected


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("block, stretch", [(1, 0), (2, 0), (3, 0), (0, 1), (1, 2), (2, 3)])
@pytest.mark.parametrize("split", [None, -1, 0, 1])
def test_the_hash_carries_over_block_stretch_and_piece_edges(
    seed: int, block: int, stretch: int, split: int | None
) -> None:
    """A wrong hash carried over an edge of the scan lasts 63 bytes, so it is looked for there. The native scan
    hashes 32 KiB blocks as four 8 KiB stretches side by side, and a stream's pieces one after the other. Here
    every position is a candidate, none passes before avg_size (strict threshold 0) and half of them after it,
    and the filler is a run of a byte whose constant hash fails. Random bytes fill the 64 bytes before an edge,
    avg_size starts at the edge: the first cut lands in the 63 bytes after it, where each position's hash still
    holds bytes from before the edge. The stream is also split into two pieces at (or next to) the edge."""
    rng = random.Random(seed)
    min_size = 1000
    edge = min_size - 1 + block * 32 * 1024 + stretch * 8 * 1024  # the scan of the first chunk starts at min - 1
    rule = CutRule(rng.randbytes(2048), rng.randbytes(16), mask=0, strict=0, loose=1 << 63,
                   params=ChunkerParams(min_size, edge + 1, 400_000))
    gear = [int.from_bytes(rule.gear_table[i * 8 : i * 8 + 8], "little") for i in range(256)]
    prf = Cipher(algorithms.AES(rule.prf_key), modes.ECB()).encryptor()
    filler = next(
        b for b in range(256)
        if int.from_bytes(prf.update(run_hash(gear, b).to_bytes(8, "little") + bytes(8))[:8], "little") >= 1 << 63
    )
    data = bytearray([filler]) * (edge + 256)
    data[edge - 64 : edge] = rng.randbytes(64)
    expected = rule.settled_cuts(bytes(data))
    assert edge < expected[0] <= edge + 63
    if split is None:
        assert rule.native().feed(data, 0) == expected
    else:
        finder = rule.native()
        assert finder.feed(data[: edge + split], 0) + finder.feed(data[edge + split :], edge + split) == expected


def test_streaming_equals_whole_buffer_and_reconstructs_input() -> None:
    data = random_data(7, 3 << 20)
    chunker = Chunker(bytes(range(32)), SMALL)
    whole = copied(chunker.chunks([data]))
    assert ends(whole) == chunker.cut_points(data)
    assert b"".join(whole) == data
    rng = random.Random(8)
    for largest in (500, 70_000, 1 << 20):
        assert copied(chunker.chunks(random_pieces(data, rng, largest))) == whole
    assert copied(chunker.chunks(reused_buffer_pieces(data, 10_000))) == whole
    prefix = data[:100_000]
    assert ends(copied(chunker.chunks(reused_buffer_pieces(prefix, 1)))) == chunker.cut_points(prefix)


def test_empty_input_has_no_chunks() -> None:
    chunker = Chunker(bytes(32), SMALL)
    assert copied(chunker.chunks([])) == []
    assert copied(chunker.chunks([b"", bytearray(), memoryview(b"")])) == []
    assert chunker.cut_points(b"") == []


def test_wide_item_buffers_are_read_as_bytes() -> None:
    data = random_data(11, 100_000)
    chunker = Chunker(bytes(32), SMALL)
    wide = memoryview(data).cast("Q")
    assert copied(chunker.chunks([wide])) == copied(chunker.chunks([data]))


def test_chunk_sizes_are_bounded_and_average_near_target() -> None:
    for params, size in ((SMALL, 4 << 20), (ChunkerParams(), 48 << 20)):
        data = random_data(params.avg_size, size)
        cuts = Chunker(random_data(5, 32), params).cut_points(data)
        assert all(params.min_size <= length <= params.max_size for length in chunk_lengths(cuts)[:-1])
        mean = len(data) / len(cuts)
        assert params.avg_size / 1.5 < mean < params.avg_size * 1.5, (params, mean)


def gear_of(secret: bytes) -> list[int]:
    table = ChunkerKey.derive(secret).gear_table
    return [int.from_bytes(table[i * 8 : i * 8 + 8], "little") for i in range(256)]


def run_hash(gear: list[int], value: int) -> int:
    """The gear hash inside a run of one byte value (64 or more bytes in): sum of gear[value] << k for k < 64."""
    return (gear[value] * MASK64) & MASK64


def non_candidate_filler(secret: bytes, params: ChunkerParams) -> int:
    """A byte value whose repetition makes no position a candidate."""
    gear = gear_of(secret)
    return next(value for value in range(256) if run_hash(gear, value) & params.candidate_mask)


def test_forced_cut_at_max_size_on_content_without_candidates() -> None:
    secret = bytes(32)
    data = bytes([non_candidate_filler(secret, SMALL)]) * 300_000
    cuts = Chunker(secret, SMALL).cut_points(data)
    assert cuts == [*range(SMALL.max_size, len(data), SMALL.max_size), len(data)]


def constant_candidate_runs(params: ChunkerParams) -> Iterator[tuple[bytes, int, int]]:
    """(secret, byte value, PRF value) where a run of the byte is a candidate at every position."""
    for index in range(1 << 16):
        secret = index.to_bytes(32, "little")
        gear = gear_of(secret)
        prf = Cipher(algorithms.AES(ChunkerKey.derive(secret).prf_key), modes.ECB()).encryptor()
        for value in range(256):
            h = run_hash(gear, value)
            if h & params.candidate_mask == 0:
                yield secret, value, int.from_bytes(prf.update(h.to_bytes(8, "little") + bytes(8))[:8], "little")


@pytest.mark.parametrize("outcome", ["strict", "loose", "forced"])
def test_runs_with_a_candidate_at_every_byte(outcome: str) -> None:
    """A constant hash that is a candidate: every chunk of the run ends at min_size if its PRF
    value passes the strict threshold, at avg_size if only the loose one, else at max_size."""
    thresholds = {
        "strict": (0, SMALL.strict_threshold),
        "loose": (SMALL.strict_threshold, SMALL.loose_threshold),
    }
    low, high = thresholds.get(outcome, (SMALL.loose_threshold, 1 << 64))
    secret, filler, _ = next(run for run in constant_candidate_runs(SMALL) if low <= run[2] < high)
    data = random_data(9, 20_000) + bytes([filler]) * 150_000 + random_data(10, 20_000)
    chunker = Chunker(secret, SMALL)
    expected = reference_cut_points(secret, SMALL, data)
    assert chunker.cut_points(data) == expected
    assert ends(copied(chunker.chunks(random_pieces(data, random.Random(11), 30_000)))) == expected
    run_chunk_size = {"strict": SMALL.min_size, "loose": SMALL.avg_size, "forced": SMALL.max_size}[outcome]
    assert chunk_lengths(expected).count(run_chunk_size) >= 2


def test_insertion_near_start_keeps_later_chunks() -> None:
    chunker = Chunker(random_data(3, 32), SMALL)
    for seed in range(5):
        original = random_data(100 + seed, 1 << 20)
        edited = original[:100] + b"hello" + original[100:]
        original_chunks = copied(chunker.chunks([original]))
        edited_chunks = set(copied(chunker.chunks([edited])))
        lost = [chunk for chunk in original_chunks if chunk not in edited_chunks]
        assert len(lost) <= 2
        assert len(original_chunks) > 50


def test_boundaries_depend_on_the_key() -> None:
    data = random_data(21, 1 << 20)
    first = Chunker(b"\x01" * 32, SMALL).cut_points(data)
    assert Chunker(b"\x01" * 32, SMALL).cut_points(data) == first
    second = Chunker(b"\x02" * 32, SMALL).cut_points(data)
    assert second != first
    # Unrelated keys share almost no boundary, not just a shifted few.
    assert len(set(first[:-1]) & set(second[:-1])) < len(first) // 4


def test_key_derivation_separates_gear_table_and_prf_key() -> None:
    key = ChunkerKey.derive(bytes(32))
    assert len(key.gear_table) == 2048
    assert len(key.prf_key) == 16
    assert key.prf_key not in key.gear_table
    assert ChunkerKey.derive(bytes(32)) == key
    assert ChunkerKey.derive(b"\x01" + bytes(31)) != key
    assert key.prf_key.hex() not in repr(key)
    with pytest.raises(ValueError, match="32 bytes"):
        ChunkerKey.derive(bytes(16))


def test_parameters_are_validated() -> None:
    for sizes in ((4096, 2048, 8192), (2048, 8192, 4096), (32, 64, 128)):
        with pytest.raises(UsageError, match="min <= avg <= max"):
            ChunkerParams(*sizes)


def test_parameters_derive_the_documented_rates() -> None:
    params = ChunkerParams()
    assert params.candidate_bits == 14  # one candidate per 16 KiB for 1 MiB chunks
    assert params.candidate_mask == 0xFFFC_0000_0000_0000
    assert params.strict_threshold == 2**64 // 256
    assert params.loose_threshold == 2**64 // 16
    assert ChunkerParams(64, 64, 64).candidate_mask == 0  # every position is a candidate


def test_chunker_memory_stays_bounded_on_long_streams() -> None:
    chunker = Chunker(bytes(32), SMALL)
    piece = random_data(31, 256 * 1024)

    def stream() -> Iterator[bytes]:
        for _ in range(128):  # 32 MiB
            yield piece

    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in chunker.chunks(stream()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 128 * len(piece)
    assert peak < 4 * SMALL.max_size + 2 * len(piece)


def test_one_chunker_serves_several_threads() -> None:
    chunker = Chunker(random_data(41, 32), SMALL)
    inputs = [random_data(50 + i, 2 << 20) for i in range(4)]
    expected = [chunker.cut_points(data) for data in inputs]
    results: dict[int, list[int]] = {}

    def work(index: int) -> None:
        pieces = random_pieces(inputs[index], random.Random(index), largest=100_000)
        results[index] = ends(copied(chunker.chunks(pieces)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i] for i in range(4)] == expected


def test_cut_finding_releases_the_gil() -> None:
    """While a piece is scanned, another thread gets the GIL; with preemption switched off only a scan that
    releases the GIL lets the main thread run before the scanning thread ends."""
    chunker = Chunker(random_data(51, 32), ChunkerParams(min_size=64, avg_size=1 << 20, max_size=1 << 30))
    data = bytes([non_candidate_filler(random_data(51, 32), chunker.params)]) * (128 << 20)
    assert runs_without_the_gil(lambda: chunker.cut_points(data)) == [len(data)]


def test_cut_finder_checks_its_arguments() -> None:
    key = ChunkerKey.derive(bytes(32))
    with pytest.raises(ValueError, match="2048 bytes"):
        _native.CutFinder(bytes(100), key.prf_key, 0, 0, 0, 64, 128, 256)
    with pytest.raises(ValueError, match="16 bytes"):
        _native.CutFinder(key.gear_table, bytes(15), 0, 0, 0, 64, 128, 256)
    with pytest.raises(ValueError, match="min <= avg <= max"):
        _native.CutFinder(key.gear_table, key.prf_key, 0, 0, 0, 64, 32, 256)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Library/SMS/sms.db", True),
        ("sms.db-wal", True),
        ("Photos.sqlite", True),
        ("x.SQLITE-shm", True),
        ("AddressBook.sqlitedb", True),
        ("a/b.sqlite3-journal", True),
        ("CloudKit.storedata", True),
        ("CloudKit.storedata-wal", True),
        ("notes.txt", False),
        ("db", False),
        ("photo.dbx", False),
        ("archive.db.gz", False),
        ("sms.db-walx", False),
    ],
)
def test_is_sqlite_name(name: str, expected: bool) -> None:
    assert is_sqlite_name(name) is expected


def make_database(path: Path, page_size: int, rows: int, seed: int) -> sqlite3.Connection:
    rng = random.Random(seed)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(f"PRAGMA page_size = {page_size}")
    connection.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, body BLOB)")
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO item VALUES (?, ?)", ((i, rng.randbytes(1500)) for i in range(rows)))
    connection.execute("COMMIT")
    return connection


def test_sqlite_database_is_cut_in_page_aligned_blocks(tmp_path: Path) -> None:
    path = tmp_path / "sms.db"
    make_database(path, 4096, rows=3000, seed=1).close()
    before = path.read_bytes()
    assert len(before) > 4 << 20
    chunker = Chunker(bytes(32), SMALL)
    cuts = chunker.cut_points(before, sqlite_hint=True)
    assert all(cut % 65536 == 0 for cut in cuts[:-1]) and cuts[-1] == len(before)
    assert ends(copied(chunker.chunks(random_pieces(before, random.Random(2), 5000), sqlite_hint=True))) == cuts
    assert chunker.cut_points(before) != cuts  # without the hint: content-defined

    connection = sqlite3.connect(path, isolation_level=None)
    rng = random.Random(3)
    for row in (17, 900, 1800, 2500, 2999):
        connection.execute("UPDATE item SET body = ? WHERE id = ?", (rng.randbytes(1500), row))
    connection.close()
    after = path.read_bytes()
    assert len(after) == len(before)
    old_blocks = set(copied(chunker.chunks([before], sqlite_hint=True)))
    new_blocks = copied(chunker.chunks([after], sqlite_hint=True))
    changed = [block for block in new_blocks if block not in old_blocks]
    # Five rows and the header page (its change counter): at most six 64 KiB blocks.
    assert 0 < len(changed) <= 6
    assert len(new_blocks) > 60


def test_sqlite_page_size_65536_is_stored_as_one(tmp_path: Path) -> None:
    path = tmp_path / "big.sqlite"
    make_database(path, 65536, rows=400, seed=4).close()
    data = path.read_bytes()
    assert data[16:18] == b"\x00\x01"
    cuts = Chunker(bytes(32), SMALL).cut_points(data, sqlite_hint=True)
    assert cuts == list(range(65536, len(data) + 1, 65536))


@pytest.mark.parametrize("page_size", [4096, 65536])
def test_sqlite_wal_is_cut_after_its_header_then_in_whole_frames(tmp_path: Path, page_size: int) -> None:
    path = tmp_path / "Photos.sqlite"
    connection = make_database(path, page_size, rows=10, seed=5)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    rng = random.Random(6)
    for row in range(10, 10 + (300 if page_size == 4096 else 40)):
        connection.execute("INSERT INTO item VALUES (?, ?)", (row, rng.randbytes(1500)))
    wal = (tmp_path / "Photos.sqlite-wal").read_bytes()
    connection.close()
    frame = 24 + page_size
    frames_per_block = 16 if page_size == 4096 else 1
    assert len(wal) > 32 + 4 * frame

    chunks = copied(
        Chunker(bytes(32), SMALL).chunks(random_pieces(wal, random.Random(7), 20_000), sqlite_hint=True)
    )
    assert b"".join(chunks) == wal
    assert len(chunks[0]) == 32
    assert {len(chunk) for chunk in chunks[1:-1]} == {frames_per_block * frame}
    assert len(chunks[-1]) % frame == 0


def test_sqlite_hint_falls_back_to_content_defined_chunks() -> None:
    chunker = Chunker(bytes(32), SMALL)
    plain = random_data(71, 100_000)
    bad_page_size = b"SQLite format 3\x00" + (1000).to_bytes(2, "big") + plain
    short = b"SQLite format 3\x00\x10"[:10]
    for data in (
        plain,
        bad_page_size,
        short,
        b"\x37\x7f\x06\x82" + bytes(4) + (3).to_bytes(4, "big") + plain,
    ):
        assert chunker.cut_points(data, sqlite_hint=True) == chunker.cut_points(data)
        streamed = chunker.chunks(reused_buffer_pieces(data, 5), sqlite_hint=True)
        assert copied(streamed) == copied(chunker.chunks([data]))


def test_a_chunk_kept_past_the_next_fails_loudly_instead_of_changing() -> None:
    """Chunks are views of a reused buffer: one kept by mistake raises, it never shows another chunk's bytes."""
    chunker = Chunker(random_data(8, 32), SMALL)
    stream = chunker.chunks([random_data(9, 300_000)])
    first = next(stream)
    snapshot = bytes(first)
    next(stream)
    with pytest.raises(ValueError, match="released"):
        bytes(first)
    assert snapshot == copied(chunker.chunks([random_data(9, 300_000)]))[0]


def test_two_streams_chunked_side_by_side_in_one_thread_stay_apart() -> None:
    chunker = Chunker(random_data(10, 32), SMALL)
    one, two = random_data(11, 400_000), random_data(12, 400_000)
    expected = copied(chunker.chunks([one])), copied(chunker.chunks([two]))
    interleaved: tuple[list[bytes], list[bytes]] = ([], [])
    for a, b in itertools.zip_longest(chunker.chunks(random_pieces(one, random.Random(1), 7000)),
                                      chunker.chunks(random_pieces(two, random.Random(2), 7000))):
        if a is not None:
            interleaved[0].append(bytes(a))
        if b is not None:
            interleaved[1].append(bytes(b))
    assert interleaved == expected
