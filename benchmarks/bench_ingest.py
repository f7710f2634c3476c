"""Ingest benchmark: `coffer import` against `restic backup` and `borg create` on the same iOS backup folder.

    .venv/bin/python -m benchmarks.bench_ingest --size 2500M

In one run: generate a seeded backup folder (benchmarks/datagen.py), warm every tool up on a small one, back
the folder up with each tool into its own fresh repository (full), restore that backup into a new folder
with each tool (restore: Coffer `export`, `restic restore`, `borg extract`), measure the per-byte floor
(benchmarks/ingest/floor.py: Coffer's components on the folder with no import around them), change the
folder as a day of use would, back it up again (incremental), and, for restic and borg, once more into a copy of their
post-full repository with their files cache off (incremental, re-read: what Coffer always does). Each
backup and restore starts from the same machine state (`same_start`: nothing dirty, the page cache emptied,
the input and the tool's home read back) and is measured for wall time, CPU time and peak RSS, and each
repository for its size; just before each, the tool's start-up is measured (a command that only opens the repository), and throughput is
reported gross and net of it. The full backup and its restore run `--rounds` times (each into new
repositories), and the ratios take each tool's best round. The order of the tools rotates from phase
to phase and from round to round. Prints a Markdown table with the figures and Coffer's ratios, and writes them as JSON (and the
table as Markdown) to benchmarks/results/. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.errors import CofferError, UsageError
from benchmarks.datagen import DEFAULT_SEED, DEFAULT_SIZE, describe, parse_size
from benchmarks.dataset.backup import DEVICE, generate, mutate
from benchmarks.ingest.floor import MODES, WITH_WRITES, FloorResult, measure_floor
from benchmarks.ingest.measure import (
    MIB,
    TreeSize,
    check_scratch_space,
    run_header,
    run_measured,
    same_start,
    tree_size,
)
from benchmarks.ingest.report import FULL, INCREMENTAL, REREAD, RESTORE, Run, floor_markdown, markdown
from benchmarks.ingest.tools import PROJECT_ROOT, TOOLS, Command, Tool

BENCHMARKS = Path(__file__).resolve().parent
DEFAULT_SCRATCH = BENCHMARKS / "data" / "ingest"
DEFAULT_RESULTS = BENCHMARKS / "results"
WARM_UP_SIZE = 24 * MIB
# The baseline took each tool's best of two rounds in rotated order: single runs on this shared
# machine ranged from 1.1x to 2.4x.
DEFAULT_ROUNDS = 2
_STARTUP_RUNS = 3
# ext4 without a journal skips inodes freed less than 30 s ago, 60 s while their block is dirty.
_RECENTLY_DELETED_SECONDS = 61


def scratch_factor(rounds: int) -> int:
    """Data set sizes the scratch folder needs: the input, three repositories, three restored copies and the
    floor's two sets of packs per round (nothing is deleted before the end: see `Benchmark.restore`), two forked
    repositories, growth."""
    return 4 + 8 * rounds


class Benchmark:
    """One benchmark run in a scratch folder: the data set, each tool's home folder, the logs."""

    def __init__(self, scratch: Path, tools: list[Tool], seed: int) -> None:
        self.scratch = scratch
        self.tools = tools
        self.seed = seed
        self.data = scratch / "input" / DEVICE.udid
        self.logs = scratch / "logs"
        self.runs: list[Run] = []
        self.floors: list[FloorResult] = []
        self.warm_up: dict[str, float] = {}
        self.round = 1  # the full backup and its restore run once per round, each into new repositories
        self._last_deletion = time.monotonic()
        self.caches_dropped = True  # whether every run started with the page cache emptied (`same_start`)

    def deleted(self) -> None:
        """Say that files were just deleted (the data set generator deletes its staging folder)."""
        self._last_deletion = time.monotonic()

    def settle(self) -> None:
        """Wait until files deleted last are no longer "recently deleted" to ext4 (see `restore`), so that the
        first tool of a phase does not pay for the generator's deletions."""
        time.sleep(max(0.0, _RECENTLY_DELETED_SECONDS - (time.monotonic() - self._last_deletion)))

    def home(self, tool: Tool, phase: str) -> Path:
        # The re-read phase works on a fork of the last round's post-full home folder; the others share it.
        if phase == REREAD:
            return self.scratch / "reread" / tool.name
        return self.scratch / "homes" / f"round-{self.round}" / tool.name

    def warm_up_tools(self) -> None:
        """Back a small folder up once with every tool: binaries, Python modules and caches get loaded."""
        folder = self.scratch / "warm-up" / "input" / DEVICE.udid
        generate(folder, WARM_UP_SIZE, self.seed + 1)
        self.deleted()  # the generator's staging folder
        for tool in self.tools:
            home = self.scratch / "warm-up" / tool.name
            tool.init(home, self.logs / f"{tool.name}-warm-up.log")
            command = tool.backup_command(home, folder, "warm-up", reread=False)
            result = run_measured(command.argv, env=command.env, log=self.logs / f"{tool.name}-warm-up.log")
            self.warm_up[tool.name] = result.wall_seconds

    def run_phase(self, phase: str, tools: list[Tool], rotation: int) -> None:
        """Back the folder up with every tool, in the order `rotation` gives."""
        self.settle()
        size = tree_size(self.data)
        slug = phase.replace(", ", "-")
        for position, tool in self._order(tools, rotation):
            home = self.home(tool, phase)
            command = tool.backup_command(home, self.data, slug, reread=phase == REREAD)
            self._measure(phase, tool, position, home, command, size, warm=[self.data, home])

    def restore(self, tools: list[Tool], rotation: int) -> None:
        """Restore the full backup with every tool into a new folder, measured like a backup.

        Throughput is the backed-up input per wall second; the repository is unchanged (nothing added). Each
        tool's home is read into the page cache just before its restore (`same_start`): Coffer writes its packs
        past the page cache, restic and borg through it, and a restore should not be measured on whose
        repository the cache happened to keep. Nothing the
        benchmark wrote is deleted before its end: on an ext4 without a journal, as here, creating files in the
        minute after thousands were deleted costs a scan of the recently freed inodes (`recently_deleted`),
        which made the restore measured after a deletion up to 1.6× slower."""
        size = tree_size(self.data)
        for position, tool in self._order(tools, rotation):
            home = self.home(tool, FULL)
            target = self.scratch / "restore" / f"round-{self.round}" / tool.name
            target.mkdir(parents=True)
            command = tool.restore_command(home, target, FULL)
            self._measure(RESTORE, tool, position, home, command, size, warm=[home])
            restored = tree_size(target).apparent_bytes
            if restored < size.apparent_bytes:  # a restore that wrote less cannot count as fast
                raise CofferError(
                    f"{tool.name} restored {restored:,} bytes of {size.apparent_bytes:,} into {target}; "
                    f"see {self.logs / f'{tool.name}-{RESTORE}.log'}"
                )

    def _same_start(self, warm: list[Path]) -> None:
        dropped, _ = same_start(warm)
        self.caches_dropped = self.caches_dropped and dropped

    def measure_floors(self) -> None:
        """The per-byte floor on the same folder (benchmarks/ingest/floor.py), each mode once: Coffer's components
        with the packs written, without writing them, and the pack writes alone, as many bytes as the first."""
        self.settle()
        environment = TOOLS["coffer"].environment(self.scratch)
        written: FloorResult | None = None
        for mode in MODES:
            self._same_start([self.data])
            scratch = (
                self.scratch / "floor" / f"round-{self.round}" / mode.replace(", ", "-").replace(" ", "-")
            )
            floor = measure_floor(
                self.data,
                scratch,
                mode,
                env=environment,
                log=self.logs / "floor.log",
                disk_bytes=written.stored_bytes if written is not None else 0,
            )
            if mode == WITH_WRITES:
                written = floor
            self.floors.append(floor)
            print(
                f"  {self.round} floor: {mode:<30} {floor.wall_seconds:7.2f} s wall {floor.throughput:7.1f} MiB/s "
                f"{floor.cpu_seconds:7.1f} s CPU",
                flush=True,
            )

    @staticmethod
    def _order(tools: list[Tool], rotation: int) -> list[tuple[int, Tool]]:
        shift = rotation % len(tools)
        return list(enumerate(tools[shift:] + tools[:shift], start=1))

    def _measure(
        self,
        phase: str,
        tool: Tool,
        position: int,
        home: Path,
        command: Command,
        size: TreeSize,
        *,
        warm: list[Path],
    ) -> None:
        """Run one tool's command from the same start as every other (`same_start`, with `warm` in the page
        cache), check it succeeded, and record it with its repository afterwards."""
        log = self.logs / f"{tool.name}-{phase.replace(', ', '-')}.log"
        before = tree_size(tool.repository(home)).apparent_bytes
        self._same_start(warm)
        startup = self._startup(tool, home, log)
        result = run_measured(command.argv, env=command.env, log=log, cwd=command.cwd)
        if result.exit_code != 0:
            raise CofferError(f"{tool.name} failed in the {phase} phase (exit {result.exit_code}); see {log}")
        if startup >= result.wall_seconds:
            raise CofferError(
                f"{tool.name}'s start-up ({startup:.2f} s) took longer than its {phase} run "
                f"({result.wall_seconds:.2f} s): the data set is too small to measure, choose a larger --size"
            )
        repository = tree_size(tool.repository(home))
        run = Run(
            phase,
            tool.name,
            self.round,
            position,
            size.files,
            size.apparent_bytes,
            result,
            startup,
            repository,
            repository.apparent_bytes - before,
        )
        self.runs.append(run)
        print(
            f"  {self.round} {phase:<20} {tool.name:<7} {result.wall_seconds:7.1f} s wall {run.throughput:7.1f} MiB/s "
            f"{run.net_throughput:7.1f} net "
            f"{result.cpu_seconds:7.1f} s CPU  repo {repository.apparent_bytes / MIB:,.0f} MiB "
            f"(load {result.load_before:.1f})",
            flush=True,
        )

    @staticmethod
    def _startup(tool: Tool, home: Path, log: Path) -> float:
        """The tool's start-up on this repository now: the quickest of `_STARTUP_RUNS` runs of a command that
        only opens it (the quickest, so that noise makes the net figure smaller, not larger)."""
        command = tool.startup_command(home)
        times = []
        for _ in range(_STARTUP_RUNS):
            result = run_measured(command.argv, env=command.env, log=log, cwd=command.cwd)
            if result.exit_code != 0:
                raise CofferError(
                    f"{tool.name} could not open its repository (exit {result.exit_code}); see {log}"
                )
            times.append(result.wall_seconds)
        return min(times)

    def fork_homes(self, tools: list[Tool]) -> None:
        for tool in tools:
            shutil.copytree(self.home(tool, FULL), self.home(tool, REREAD), symlinks=True)


def _git_commit() -> str:
    output = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=PROJECT_ROOT, check=False
    )
    return output.stdout.strip() or "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench_ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", default=DEFAULT_SIZE, help=f"data set size (default {DEFAULT_SIZE}; 300M to try)"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"data set seed (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help="a comma-separated subset of coffer,restic,borg (default all three)",
    )
    parser.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="work folder, must not exist")
    parser.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS, help="where the JSON and Markdown go"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"full backups and restores per tool, each round in another order; the ratios take each tool's "
        f"best (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument("--no-reread", action="store_true", help="skip the re-read phase of restic and borg")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (data set, repositories)"
    )
    return parser


def _tools(names: str) -> list[Tool]:
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in TOOLS]
    if unknown or not chosen:
        raise UsageError(f"unknown tools {', '.join(unknown) or '(none)'}: choose from {', '.join(TOOLS)}")
    return [TOOLS[name] for name in chosen]


def run(args: argparse.Namespace) -> dict[str, Any]:
    size = parse_size(args.size)
    tools = _tools(args.tools)
    if args.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    versions = {tool.name: tool.version() for tool in tools}  # a missing tool stops us here, with the fix
    check_scratch_space(
        args.scratch,
        scratch_factor(args.rounds) * size,
        f"a {size / (1 << 30):.1f} GiB data set",
        "choose a smaller --size or another --scratch",
    )
    benchmark = Benchmark(args.scratch, tools, args.seed)
    benchmark.logs.mkdir(parents=True)
    started_at, started = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.perf_counter()
    print(f"generating a {args.size} data set (seed {args.seed}) in {benchmark.data}", flush=True)
    dataset = generate(benchmark.data, size, args.seed)
    benchmark.deleted()
    print(describe(dataset), flush=True)
    print("warming up every tool on a small data set", flush=True)
    benchmark.warm_up_tools()
    for number in range(1, args.rounds + 1):
        benchmark.round = number
        for tool in tools:
            tool.init(benchmark.home(tool, FULL), benchmark.logs / f"{tool.name}-init.log")
        benchmark.run_phase(FULL, tools, 2 * number - 2)
        benchmark.restore(tools, 2 * number - 1)
        benchmark.measure_floors()
    rereaders = [tool for tool in tools if tool.has_files_cache] if not args.no_reread else []
    benchmark.fork_homes(rereaders)
    day = mutate(benchmark.data, args.seed)
    benchmark.deleted()
    print(
        f"day of use: {day.added_files} files added, {day.changed_files} changed, {day.deleted_files} deleted"
    )
    benchmark.run_phase(INCREMENTAL, tools, 2 * args.rounds)
    if rereaders:
        benchmark.run_phase(REREAD, rereaders, 2 * args.rounds + 1)
    return {
        **run_header(started_at, started, args.size, args.seed),
        "coffer_commit": _git_commit(),
        "rounds": args.rounds,
        "page_cache_emptied_before_each_run": benchmark.caches_dropped,
        "versions": versions,
        "dataset": dataclasses.asdict(dataset),
        "day_of_use": dataclasses.asdict(day),
        "warm_up_seconds": benchmark.warm_up,
        "runs": [dataclasses.asdict(run) | {"throughput_mib_s": run.throughput} for run in benchmark.runs],
        "floor": [
            dataclasses.asdict(floor) | {"throughput_mib_s": floor.throughput} for floor in benchmark.floors
        ],
        "markdown": markdown(benchmark.runs)
        + floor_markdown(benchmark.floors, benchmark.runs, os.cpu_count() or 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        results = run(args)
    except CofferError as error:
        print(f"bench_ingest: {error}", file=sys.stderr)
        if (args.scratch / "logs").is_dir():
            print(
                f"bench_ingest: {args.scratch} is kept for its logs; remove it before the next run",
                file=sys.stderr,
            )
        return error.exit_code
    if not args.keep:
        shutil.rmtree(args.scratch)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(results["markdown"])
    print()
    print(results["markdown"])
    print(f"results: {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
