"""Running a command and measuring it: wall time, CPU time and peak memory of the child, and sizes on disk.

CPU time and peak RSS come from `wait4` on the child, which reports the child and every descendant it waited
for, so a tool that forks helpers is counted whole; no `/usr/bin/time` is needed.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.errors import UsageError

MIB = 1 << 20


@dataclass(frozen=True)
class Measurement:
    """One finished command. `peak_rss` is in bytes; times are in seconds."""

    exit_code: int
    wall_seconds: float
    user_seconds: float
    system_seconds: float
    peak_rss: int
    load_before: float  # one-minute load average when the command started: how busy the machine was

    @property
    def cpu_seconds(self) -> float:
        return self.user_seconds + self.system_seconds


def run_measured(
    argv: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> Measurement:
    """Run `argv` with stdout and stderr into `log`, wait for it and measure it."""
    load_before = os.getloadavg()[0]
    with open(log, "ab") as output:
        output.write(f"$ {' '.join(argv)}\n".encode())
        output.flush()
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=dict(env), cwd=cwd
        )
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # Ctrl-C: do not leave the tool running behind us
            process.kill()
            process.wait()
            raise
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen, so it does not wait
    return Measurement(
        exit_code=process.returncode,
        wall_seconds=wall,
        user_seconds=usage.ru_utime,
        system_seconds=usage.ru_stime,
        peak_rss=usage.ru_maxrss * 1024,  # Linux reports kilobytes
        load_before=load_before,
    )


@dataclass(frozen=True)
class TreeSize:
    """Bytes of the files under a folder: as listed (apparent) and as allocated on disk."""

    files: int
    apparent_bytes: int
    disk_bytes: int


def tree_size(root: Path) -> TreeSize:
    files = apparent = disk = 0
    for folder, _, names in os.walk(root):
        for name in names:
            status = os.lstat(os.path.join(folder, name))
            files += 1
            apparent += status.st_size
            disk += status.st_blocks * 512
    return TreeSize(files, apparent, disk)


def read_through(root: Path) -> int:
    """Read every file under `root` once, so that every tool then finds it in the page cache; returns bytes."""
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as handle:
                while chunk := handle.read(MIB):
                    total += len(chunk)
    return total


DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def same_start(warm: Sequence[Path]) -> tuple[bool, int]:
    """Put the machine in the same state before every measured run, whichever tool ran before it.

    Dirty pages are written out first: restic and borg restore through the page cache and return before their
    data is on disk, and whoever ran next paid for the write-back. Then the page cache is emptied, where the
    kernel lets us (root): once the cache has filled the machine's memory, every fresh page a process touches
    costs a reclaim, which made the second round of a run up to 1.5× slower than its first for Coffer and for
    the floor, restic 1.3×. Last, `warm` (the input, the tool's home) is read back, so every run finds what
    it reads in the page cache, as the first did. Returns whether the cache was emptied, and the bytes read."""
    os.sync()
    try:
        DROP_CACHES.write_text("3\n")
        dropped = True
    except OSError:  # not root, or a container that hides /proc/sys: the runs still start with nothing dirty
        dropped = False
    return dropped, sum(read_through(path) for path in warm)


def run_header(started_at: str, started: float, size: str, seed: int) -> dict[str, object]:
    """The fields every results file begins with: when, how long, what data, which machine."""
    return {
        "started": started_at,
        "seconds": round(time.perf_counter() - started, 1),
        "size": size,
        "seed": seed,
        "machine": machine(),
    }


def machine() -> dict[str, object]:
    """What the results file records about the machine the figures come from."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_end": os.getloadavg(),
    }


def check_scratch_space(scratch: Path, needed: int, what: str, remedy: str) -> None:
    """Refuse a scratch folder that is not empty, or whose disk has less than `needed` bytes free; `what`
    names what needs the space and `remedy` what the user can change."""
    if scratch.exists() and any(scratch.iterdir()):
        raise UsageError(f"{scratch} is not empty: remove it or give another --scratch")
    existing = next(parent for parent in (scratch, *scratch.parents) if parent.exists())
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise UsageError(
            f"{existing} has {free / (1 << 30):.1f} GiB free; {what} needs about {needed / (1 << 30):.1f} GiB: "
            f"{remedy}"
        )
