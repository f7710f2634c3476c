"""Index benchmark: the memory and speed of the in-memory chunk index (`agent.repository.index.Index`).

    .venv/bin/python -m benchmarks.bench_index --chunks 10000000

Builds a synthetic index of N chunks through `Index.add_pack`, in packs of 25 blobs each with random
32-byte chunk IDs (what a repository of N chunks loads at start), and reports the process's RSS growth per
chunk (from /proc/self/statm before and after), the native table's own bytes (`Index.table_bytes`), the
build rate, and the rate of `lookup` and `in` for IDs that are there (hits) and IDs that are not (misses).
Prints a small table and writes the figures as JSON to benchmarks/results/. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.repository.index import Index, PackRecord
from benchmarks.ingest.measure import MIB, machine

DEFAULT_CHUNKS = 10_000_000
DEFAULT_LOOKUPS = 1_000_000
BLOBS_PER_PACK = 25
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"
# A few spaces, as a repository has one per category: the table keys on (space, chunk ID).
SPACES = ("photos", "messages", "apps", "other")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set size now (the second field of /proc/self/statm, in pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_SIZE


def chunk_id(number: int) -> bytes:
    """The ID of synthetic chunk `number`: random-looking 32 bytes, recomputable, so no list of them is kept
    (which would count in the RSS) and hits can be drawn from the whole index."""
    return hashlib.sha256(number.to_bytes(8, "little")).digest()


def space_of(number: int) -> str:
    return SPACES[(number // BLOBS_PER_PACK) % len(SPACES)]


def pack_record(pack: int, chunks: int) -> PackRecord:
    """Pack number `pack`: chunks pack*25 … (at most `chunks` in all), laid out one after the other."""
    first = pack * BLOBS_PER_PACK
    record = PackRecord(
        pack_id=hashlib.sha256(b"pack" + pack.to_bytes(8, "little")).hexdigest(), space=space_of(first)
    )
    offset = 0
    for number in range(first, min(first + BLOBS_PER_PACK, chunks)):
        length = 600_000 + number % 400_000
        record.blobs.append((chunk_id(number), offset, length, length + 1000))
        offset += length
    return record


def build(chunks: int) -> tuple[Index, float]:
    """An index of `chunks` synthetic chunks, and the seconds spent in `add_pack` (not making records)."""
    index = Index()
    spent = 0.0
    for pack in range((chunks + BLOBS_PER_PACK - 1) // BLOBS_PER_PACK):
        record = pack_record(pack, chunks)
        started = time.perf_counter()
        index.add_pack(record)
        spent += time.perf_counter() - started
    return index, spent


@dataclass(frozen=True)
class IndexFigures:
    chunks: int
    lookups: int
    rss_growth_bytes: int
    rss_bytes_per_chunk: float
    table_bytes: int
    table_bytes_per_chunk: float
    build_seconds: float
    build_chunks_per_s: float
    lookup_hits_per_s: float
    lookup_misses_per_s: float
    contains_hits_per_s: float
    contains_misses_per_s: float


def _rate(keys: list[tuple[str, bytes]], probe: Callable[[str, bytes], bool], expect: bool) -> float:
    """Probes per second over `keys`; checks every answer, so a broken index cannot look fast."""
    started = time.perf_counter()
    found = sum(1 for space, key in keys if probe(space, key))
    seconds = time.perf_counter() - started
    if found != (len(keys) if expect else 0):
        raise AssertionError(f"{found} of {len(keys)} probes found, expected {'all' if expect else 'none'}")
    return len(keys) / seconds


def measure(chunks: int, lookups: int, seed: int = 1) -> IndexFigures:
    before = rss_bytes()
    index, build_seconds = build(chunks)
    growth = rss_bytes() - before
    if len(index) != chunks:
        raise AssertionError(f"the index holds {len(index)} chunks, {chunks} were added")
    chooser = random.Random(seed)
    hits = [(space_of(n), chunk_id(n)) for n in (chooser.randrange(chunks) for _ in range(lookups))]
    # Misses: IDs never added, in the spaces that exist, so the probe reaches the table.
    misses = [(space_of(n), chunk_id(n)) for n in range(chunks, chunks + lookups)]

    def found(space: str, key: bytes) -> bool:
        return index.lookup(space, key) is not None

    def contained(space: str, key: bytes) -> bool:
        return (space, key) in index

    return IndexFigures(
        chunks=chunks,
        lookups=lookups,
        rss_growth_bytes=growth,
        rss_bytes_per_chunk=growth / chunks,
        table_bytes=index.table_bytes,
        table_bytes_per_chunk=index.table_bytes / chunks,
        build_seconds=build_seconds,
        build_chunks_per_s=chunks / build_seconds,
        lookup_hits_per_s=_rate(hits, found, True),
        lookup_misses_per_s=_rate(misses, found, False),
        contains_hits_per_s=_rate(hits, contained, True),
        contains_misses_per_s=_rate(misses, contained, False),
    )


def table(figures: IndexFigures) -> str:
    rows = [
        ("chunks", f"{figures.chunks:,}"),
        (
            "RSS growth",
            f"{figures.rss_growth_bytes / MIB:,.1f} MiB ({figures.rss_bytes_per_chunk:.1f} B/chunk)",
        ),
        (
            "Index.table_bytes",
            f"{figures.table_bytes / MIB:,.1f} MiB ({figures.table_bytes_per_chunk:.1f} B/chunk)",
        ),
        ("build (add_pack)", f"{figures.build_seconds:.1f} s, {figures.build_chunks_per_s:,.0f} chunks/s"),
        ("lookup, hits", f"{figures.lookup_hits_per_s:,.0f} /s"),
        ("lookup, misses", f"{figures.lookup_misses_per_s:,.0f} /s"),
        ("in, hits", f"{figures.contains_hits_per_s:,.0f} /s"),
        ("in, misses", f"{figures.contains_misses_per_s:,.0f} /s"),
    ]
    lines = ["| measure | value |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench_index", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--chunks", type=int, default=DEFAULT_CHUNKS, help=f"chunks to index (default {DEFAULT_CHUNKS:,})"
    )
    parser.add_argument(
        "--lookups",
        type=int,
        default=DEFAULT_LOOKUPS,
        help=f"probes of each kind (default {DEFAULT_LOOKUPS:,})",
    )
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="where the JSON goes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.chunks < 1 or args.lookups < 1:
        print("bench_index: --chunks and --lookups must be at least 1", file=sys.stderr)
        return 2
    print(f"indexing {args.chunks:,} chunks in packs of {BLOBS_PER_PACK}", flush=True)
    figures = measure(args.chunks, args.lookups)
    report = table(figures)
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"index-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps({"figures": asdict(figures), "machine": machine(), "markdown": report}, indent=2) + "\n"
    )
    print(report)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
