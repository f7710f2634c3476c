"""The results of an ingest benchmark run and their Markdown report: absolute figures, then Coffer's ratios.

Absolute times on a shared machine say little; ratios between tools measured in the same run, on the same
input, one right after the other, say more. Each ratio is Coffer's figure divided by the other tool's, so
for throughput above 1 means Coffer is faster, and for CPU time, memory and repository size below 1 means
Coffer uses less.

Throughput is reported twice: gross (input over the command's wall time) and net of start-up (over the wall
time less the tool's start-up, measured in the same run as a command that only opens the repository: process
start, key derivation, listing). The ratios compare net throughput, as issue 14 states the targets of DESIGN.md
§5; the gross ratio is beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.ingest.floor import CPU_ONLY, DISK_ONLY, WITH_WRITES, FloorResult
from benchmarks.ingest.measure import MIB, Measurement, TreeSize

FULL = "full"
RESTORE = "restore"  # of the full backup; its throughput is MiB restored per second
INCREMENTAL = "incremental"
REREAD = "incremental, re-read"
PHASES = (FULL, RESTORE, INCREMENTAL, REREAD)
# Coffer reads every file on every run: its incremental run is what restic and borg do when made to re-read.
REFERENCE = "coffer"


@dataclass(frozen=True)
class Run:
    """One measured backup or restore: which tool, in which phase and position, on how much input, at what
    cost."""

    phase: str
    tool: str
    round: int  # the full backup and its restore run once per round (1, 2, …), the incremental ones once
    position: int  # 1 = first in its phase (the order rotates from phase to phase and round to round)
    input_files: int
    input_bytes: int
    measurement: Measurement
    startup_seconds: float  # the tool's start-up, measured just before (the quickest of a few)
    repository: TreeSize  # after the run
    added_bytes: int  # repository growth (apparent bytes) caused by this run (0 for a restore)

    @property
    def throughput(self) -> float:
        """MiB of input (restored data, for a restore) per second of wall time."""
        return self.input_bytes / MIB / self.measurement.wall_seconds

    @property
    def net_throughput(self) -> float:
        """MiB of input per second of wall time after start-up."""
        return self.input_bytes / MIB / (self.measurement.wall_seconds - self.startup_seconds)


@dataclass(frozen=True)
class Ratio:
    phase: str
    other: str
    throughput: float  # net of start-up
    gross_throughput: float
    cpu: float
    peak_rss: float
    repository: float
    added: float | None  # None when the other tool added nothing


def _divide(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def best_runs(runs: list[Run]) -> dict[tuple[str, str], Run]:
    """Each tool's best run of each phase (the highest net throughput among its rounds)."""
    best: dict[tuple[str, str], Run] = {}
    for run in runs:
        key = (run.phase, run.tool)
        if key not in best or run.net_throughput > best[key].net_throughput:
            best[key] = run
    return best


def ratios(runs: list[Run]) -> list[Ratio]:
    """Coffer against every other tool, phase by phase (each re-reading every file in the re-read phase), each
    tool by its best round."""
    best = best_runs(runs)
    found = []
    for phase in PHASES:
        mine = best.get((phase, REFERENCE))
        if mine is None:
            continue
        for (run_phase, tool), run in best.items():
            if run_phase != phase or tool == REFERENCE:
                continue
            found.append(
                Ratio(
                    phase=phase,
                    other=run.tool,
                    throughput=mine.net_throughput / run.net_throughput,
                    gross_throughput=mine.throughput / run.throughput,
                    cpu=mine.measurement.cpu_seconds / run.measurement.cpu_seconds,
                    peak_rss=mine.measurement.peak_rss / run.measurement.peak_rss,
                    repository=mine.repository.apparent_bytes / run.repository.apparent_bytes,
                    added=_divide(mine.added_bytes, run.added_bytes),
                )
            )
    return found


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _mib(value: int) -> str:
    return f"{value / MIB:,.1f}"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def markdown(runs: list[Run]) -> str:
    """The two tables: every run's figures, then Coffer's ratios."""
    absolute = _table(
        [
            "phase",
            "tool",
            "round",
            "order",
            "input MiB",
            "wall s",
            "MiB/s",
            "start-up s",
            "net MiB/s",
            "CPU s",
            "peak RSS MiB",
            "repo MiB",
            "added MiB",
        ],
        [
            [
                run.phase,
                run.tool,
                str(run.round),
                str(run.position),
                _mib(run.input_bytes),
                f"{run.measurement.wall_seconds:.1f}",
                f"{run.throughput:.1f}",
                f"{run.startup_seconds:.2f}",
                f"{run.net_throughput:.1f}",
                f"{run.measurement.cpu_seconds:.1f}",
                _mib(run.measurement.peak_rss),
                _mib(run.repository.apparent_bytes),
                _mib(run.added_bytes),
            ]
            for run in runs
        ],
    )
    relative = _table(
        [
            "phase",
            "Coffer ÷",
            "throughput, net",
            "throughput, gross",
            "CPU time",
            "peak RSS",
            "repo size",
            "added bytes",
        ],
        [
            [
                ratio.phase,
                ratio.other,
                _times(ratio.throughput),
                _times(ratio.gross_throughput),
                _times(ratio.cpu),
                _times(ratio.peak_rss),
                _times(ratio.repository),
                _times(ratio.added),
            ]
            for ratio in ratios(runs)
        ],
    )
    return f"{absolute}\n\nRatios, Coffer ÷ other tool (same run, same input, each tool's best round):\n\n{relative}\n"


def best_floors(floors: list[FloorResult]) -> dict[str, FloorResult]:
    """The quickest run of each floor mode."""
    best: dict[str, FloorResult] = {}
    for floor in floors:
        if floor.mode not in best or floor.throughput > best[floor.mode].throughput:
            best[floor.mode] = floor
    return best


def floor_markdown(floors: list[FloorResult], runs: list[Run], cores: int) -> str:
    """The floor's runs, then the best with its packs written against each tool's best full backup, and what
    its CPU time allows on `cores` cores kept busy from end to end."""
    if not floors:
        return ""
    table = _table(
        ["floor", "workers", "MiB", "wall s", "MiB/s", "CPU s"],
        [
            [
                floor.mode,
                str(floor.workers),
                _mib(floor.input_bytes),
                f"{floor.wall_seconds:.2f}",
                f"{floor.throughput:.1f}",
                f"{floor.cpu_seconds:.2f}",
            ]
            for floor in floors
        ],
    )
    best = best_floors(floors)
    lines = []
    written = best.get(WITH_WRITES)
    for (phase, tool), run in sorted(best_runs(runs).items()):
        if phase != FULL or written is None:
            continue
        if tool == REFERENCE:
            lines.append(
                f"- Coffer's full backup reaches {run.net_throughput / written.throughput:.0%} of the floor "
                f"({run.net_throughput:.1f} MiB/s net)"
            )
        else:
            lines.append(
                f"- the floor is {written.throughput / run.net_throughput:.2f}× {tool}'s full backup "
                f"({run.net_throughput:.1f} MiB/s net)"
            )
    if written is not None:
        bound = written.input_bytes / MIB / (written.cpu_seconds / cores)
        peers = [run for (phase, tool), run in best_runs(runs).items() if phase == FULL and tool != REFERENCE]
        faster = max(peers, key=lambda run: run.net_throughput, default=None)
        versus = f" = {bound / faster.net_throughput:.2f}× {faster.tool}'s" if faster is not None else ""
        lines.append(
            f"- its {written.cpu_seconds:.2f} CPU-seconds on {cores} cores busy from end to end and nothing else "
            f"done: {bound:.1f} MiB/s at most{versus}"
        )
    for mode in (CPU_ONLY, DISK_ONLY):
        if mode in best:
            lines.append(f"- {mode}: {best[mode].throughput:.1f} MiB/s at best")
    summary = "\n".join(lines)
    return (
        f"\nThe per-byte floor (benchmarks/ingest/floor.py: Coffer's components on the same folder with no import "
        f"around them):\n\n{table}\n\nThe best floor with its packs written:\n\n{summary}\n"
    )
