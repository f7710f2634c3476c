"""Memory-scaling benchmark: the peak RSS of `coffer import` as the backup grows.

    .venv/bin/python -m benchmarks.bench_memory --sizes 1G,2G,4G,8G

For each size, smallest first: generate a seeded backup folder (benchmarks/dataset), back it up with
`coffer import` into a fresh repository, measure wall time, CPU time and peak RSS
(benchmarks/ingest/measure.py), then delete the folder and the repository before the next size, so the disk needs room for one size only.
Reports peak RSS per size and its growth from the smallest size to the largest (the target: at most 10 %
more at 8 GB than at 2 GB), and where Coffer's memory goes by its own constants. Writes JSON to
benchmarks/results/. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import shutil
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.archive.importer import default_workers
from agent.archive.parallel import LOOK_AHEAD, SMALL_INGEST_FILE
from agent.errors import CofferError, UsageError
from agent.ios.folder import PIECE_SIZE
from agent.ios.records import FLAG_FILE, FileRecord
from agent.pipeline.chunker import DEFAULT_CHUNKER_PARAMS
from agent.pipeline.writer import OPEN_BYTES_BUDGET, BlobWriter
from agent.repository.config import PackSettings
from agent.repository.pack_memory import KEEP_FREE, SEGMENT_SIZE
from benchmarks.bench_index import build
from benchmarks.datagen import DEFAULT_SEED, parse_size
from benchmarks.dataset.backup import DEVICE, generate
from benchmarks.ingest.measure import MIB, check_scratch_space, machine, read_through, run_measured
from benchmarks.ingest.tools import PROJECT_ROOT, TOOLS

BENCHMARKS = Path(__file__).resolve().parent
DEFAULT_SCRATCH = BENCHMARKS / "data" / "memory"
DEFAULT_RESULTS = BENCHMARKS / "results"
DEFAULT_SIZES = "1G,2G,4G,8G"
TARGET_GROWTH = 0.10  # at most 10 % more peak RSS at the largest size than at 2 GB
# The data set and its repository (about as big, media being incompressible) with some room.
_SCRATCH_FACTOR = 2.5


@dataclass(frozen=True)
class Share:
    """One bounded consumer of import memory, and how its bound follows from the code's constants."""

    name: str
    bytes: int
    rule: str


@functools.cache
def _row_bytes() -> int:
    """What one waiting item of an import holds: a file's record and its files-cache stamp (measured once)."""
    tracemalloc.start()
    try:
        rows = [
            (
                FileRecord.create("CameraRollDomain", f"Media/DCIM/100APPLE/IMG_{n:05}.HEIC", FLAG_FILE, size=n * 977,
                                  mtime=1_700_000_000 + n, inode=100_000 + n, protection_class=3),
                f"{n:032x}",
            )
            for n in range(1000)
        ]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return held // len(rows)


def breakdown(data_bytes: int) -> list[Share]:
    """Where `coffer import` of `data_bytes` keeps its memory, by the bounds the code sets.

    Everything but the index is bounded whatever the input size; the index grows with the number of
    chunks, which is estimated at one per average chunk size and measured on a synthetic index."""
    packs_in_flight = inspect.signature(BlobWriter).parameters["max_packs_in_flight"].default
    pack_max = PackSettings().max_size
    chunk_max = DEFAULT_CHUNKER_PARAMS.max_size
    workers = default_workers()
    chunks = max(1, data_bytes // DEFAULT_CHUNKER_PARAMS.avg_size)
    row_bytes = _row_bytes()
    return [
        Share("open packs", OPEN_BYTES_BUDGET, "OPEN_BYTES_BUDGET (agent/pipeline/writer.py)"),
        Share(
            "packs being stored",
            packs_in_flight * pack_max,
            f"max_packs_in_flight {packs_in_flight} × pack max size {pack_max / MIB:.0f} MiB",
        ),
        Share(
            "chunks being cut",
            workers * (chunk_max + PIECE_SIZE),
            f"{workers} workers × (chunk max {chunk_max / MIB:.0f} MiB + piece {PIECE_SIZE / MIB:.0f} MiB)",
        ),
        Share(
            "small files being cut",
            SMALL_INGEST_FILE + PIECE_SIZE,
            f"the small-file thread × (file under {SMALL_INGEST_FILE >> 10} KiB + piece {PIECE_SIZE / MIB:.0f} MiB) "
            "(agent/archive/parallel.py)",
        ),
        Share(
            "rows read ahead",
            LOOK_AHEAD * row_bytes,
            f"LOOK_AHEAD {LOOK_AHEAD:,} × {row_bytes:,} B, a file row waiting (measured, tracemalloc)",
        ),
        Share(
            "free pack segments",
            KEEP_FREE * SEGMENT_SIZE,
            f"KEEP_FREE {KEEP_FREE} × segment {SEGMENT_SIZE / MIB:.0f} MiB (agent/repository/pack_memory.py)",
        ),
        Share(
            "chunk index",
            build(chunks)[0].table_bytes,
            f"Index.table_bytes at {chunks:,} chunks (data size ÷ average chunk "
            f"{DEFAULT_CHUNKER_PARAMS.avg_size / MIB:.0f} MiB)",
        ),
    ]


def breakdown_table(shares: list[Share], baseline: int) -> str:
    lines = ["| consumer | MiB | bound |", "|---|---:|---|"]
    lines += [f"| {share.name} | {share.bytes / MIB:,.1f} | {share.rule} |" for share in shares]
    lines.append(f"| **bounded total** | {sum(share.bytes for share in shares) / MIB:,.1f} | |")
    lines.append(
        f"| interpreter and modules | {baseline / MIB:,.1f} | measured: peak RSS of `coffer --version` |"
    )
    return "\n".join(lines) + "\n"


def baseline_rss(logs: Path) -> int:
    """Peak RSS of `coffer --version`: Python, Coffer's modules and libraries before any work."""
    coffer = TOOLS["coffer"]
    coffer.version()  # a Coffer that does not start stops us here, with the reason
    logs.mkdir(parents=True, exist_ok=True)
    argv = [coffer.executable, *coffer.version_arguments]
    return run_measured(
        argv, env=coffer.environment(logs), log=logs / "baseline.log", cwd=PROJECT_ROOT
    ).peak_rss


@dataclass(frozen=True)
class SizeRun:
    size: str
    input_bytes: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss: int
    load_before: float

    @property
    def throughput(self) -> float:
        return self.input_bytes / MIB / self.wall_seconds


def import_one(scratch: Path, size: str, seed: int) -> SizeRun:
    """Generate one data set, import it into a fresh repository and measure that; then delete both."""
    coffer = TOOLS["coffer"]
    data = scratch / "input" / DEVICE.udid
    home = scratch / "home"
    logs = scratch / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    slug = size.lower()
    print(f"{size}: generating", flush=True)
    dataset = generate(data, parse_size(size), seed)
    coffer.init(home, logs / f"init-{slug}.log")
    read_through(data)  # import reads from the page cache, as in bench_ingest
    command = coffer.backup_command(home, data, slug, reread=False)
    log = logs / f"import-{slug}.log"
    result = run_measured(command.argv, env=command.env, log=log, cwd=PROJECT_ROOT)
    if result.exit_code != 0:
        raise CofferError(f"coffer import of the {size} data set failed (exit {result.exit_code}); see {log}")
    shutil.rmtree(data.parent)
    shutil.rmtree(home)
    run = SizeRun(
        size, dataset.bytes, result.wall_seconds, result.cpu_seconds, result.peak_rss, result.load_before
    )
    print(
        f"{size}: {run.wall_seconds:.1f} s wall {run.throughput:.1f} MiB/s {run.cpu_seconds:.1f} s CPU "
        f"peak RSS {run.peak_rss / MIB:,.1f} MiB (load {run.load_before:.1f})",
        flush=True,
    )
    return run


def growth(runs: list[SizeRun]) -> dict[str, float]:
    """Peak RSS growth (fraction) from the smallest size to the largest, and from 2G to the largest if run."""
    by_size = sorted(runs, key=lambda run: run.input_bytes)
    found = {f"{by_size[0].size}->{by_size[-1].size}": by_size[-1].peak_rss / by_size[0].peak_rss - 1}
    two = [run for run in by_size if parse_size(run.size) == 2 << 30]
    if two and two[0] is not by_size[-1]:
        found[f"2G->{by_size[-1].size}"] = by_size[-1].peak_rss / two[0].peak_rss - 1
    return found


def runs_table(runs: list[SizeRun]) -> str:
    lines = ["| size | input MiB | wall s | MiB/s | CPU s | peak RSS MiB |", "|---|---:|---:|---:|---:|---:|"]
    lines += [
        f"| {run.size} | {run.input_bytes / MIB:,.0f} | {run.wall_seconds:.1f} | {run.throughput:.1f} | "
        f"{run.cpu_seconds:.1f} | {run.peak_rss / MIB:,.1f} |"
        for run in runs
    ]
    return "\n".join(lines) + "\n"


def report(runs: list[SizeRun], shares: list[Share], baseline: int) -> str:
    """The per-size table, the growth against the target, and the breakdown at the largest size."""
    growths = growth(runs)
    lines = [runs_table(runs), "Peak RSS growth:", ""]
    lines += [f"- {span}: {value:+.1%}" for span, value in growths.items()]
    target = next((value for span, value in growths.items() if span.startswith("2G->")), None)
    verdict = (
        "not measured (needs 2G and a larger size)"
        if target is None
        else ("met" if target <= TARGET_GROWTH else "missed")
    )
    lines += [f"- target, at most {TARGET_GROWTH:.0%} more from 2G to the largest: {verdict}", ""]
    largest = max(run.input_bytes for run in runs)
    lines += [f"Where the memory goes at {largest / MIB:,.0f} MiB, by the code's bounds:", ""]
    return "\n".join(lines) + "\n" + breakdown_table(shares, baseline)


def _sizes(text: str) -> list[str]:
    sizes = [size.strip() for size in text.split(",") if size.strip()]
    if not sizes:
        raise UsageError("--sizes is empty: give sizes like 1G,2G,4G,8G")
    return sorted(sizes, key=parse_size)  # parse_size also rejects a size it cannot read


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"data set sizes (default {DEFAULT_SIZES})")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"data set seed (default {DEFAULT_SEED})"
    )
    parser.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="work folder, must not exist")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="where the JSON goes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        sizes = _sizes(args.sizes)
        check_scratch_space(args.scratch, _SCRATCH_FACTOR * parse_size(sizes[-1]), "the largest data set",
                            "leave it out of --sizes or give another --scratch")
        started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        baseline = baseline_rss(args.scratch / "logs")
        runs = [import_one(args.scratch, size, args.seed) for size in sizes]
    except CofferError as error:
        print(f"bench_memory: {error}", file=sys.stderr)
        if (args.scratch / "logs").is_dir():
            print(
                f"bench_memory: {args.scratch} is kept for its logs; remove it before the next run",
                file=sys.stderr,
            )
        return error.exit_code
    shutil.rmtree(args.scratch)
    largest = max(run.input_bytes for run in runs)
    shares = breakdown(largest)
    text = report(runs, shares, baseline)
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"memory-{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {
        "started": started_at,
        "seed": args.seed,
        "machine": machine(),
        "runs": [asdict(run) | {"throughput_mib_s": run.throughput} for run in runs],
        "growth": growth(runs),
        "baseline_rss": baseline,
        "breakdown": [asdict(share) for share in shares],
        "markdown": text,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print()
    print(text)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
