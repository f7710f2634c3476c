"""Throughput of a full backup of a simulated iPhone through unmodified pymobiledevice3 over loopback.

    .venv/bin/python -m benchmarks.bench_sim_transfer [--profile large] [--scratch DIR] [--discard]

Creates one device of the profile in a fresh simulator, pairs a host with it, then times
`pymobiledevice3 backup2 backup --full` and prints MB/s: end to end (the command's wall time,
start-up, pairing checks and Info.plist included) and for the upload phase alone (file contents
on the wire, as the device measures it), with the CPU seconds of the simulator and of
pymobiledevice3. The backup goes to DIR (default: a folder in /dev/shm when there is one, so the
disk does not set the pace). `--discard` has pymobiledevice3 drop every payload (`--only-regex`
matching nothing), as an agent that streams files elsewhere would.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from agent.errors import CofferError, UsageError
from agent.sim.content import PROFILE_NAMES
from agent.sim.host_tools import HostTools
from agent.sim.server import SimServer

MATCH_NOTHING = "(?!)"
MB = 1_000_000


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run(profile: str, scratch: Path, discard: bool, seed: int) -> str:
    """Run the benchmark; the report, one line per figure."""
    workdir = Path(tempfile.mkdtemp(prefix="coffer-bench-sim-", dir=scratch))
    try:
        with SimServer(workdir / "sim") as sim:
            created = time.monotonic()
            device = sim.add_device(profile=profile, seed=seed)
            created = time.monotonic() - created
            host = HostTools(sim.address, workdir / "home")
            paired = host.pymobiledevice3("lockdown", "info")
            if paired.returncode != 0:
                raise CofferError(f"pymobiledevice3 could not pair: {paired.stderr[-2000:]}")
            command = ["backup2", "backup", "--full", str(workdir / "backup")]
            if discard:
                command += ["--only-regex", MATCH_NOTHING]
            sim_cpu, client_cpu = _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            result = host.pymobiledevice3(*command, timeout=3600)
            wall = time.monotonic() - started
            sim_cpu = _cpu_seconds(resource.RUSAGE_SELF) - sim_cpu
            client_cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - client_cpu
            if result.returncode != 0:
                raise CofferError(f"the backup failed: {result.stderr[-2000:]}")
            report = device.backups[-1]
            files = len(report.uploaded)
        megabytes = report.uploaded_bytes / MB
        target = "discarded by pymobiledevice3" if discard else f"written under {scratch}"
        return "\n".join([
            f"profile {profile}: {files} files, {megabytes:,.1f} MB of contents ({target}); device made in {created:.1f} s",
            f"end to end:   {wall:6.2f} s  {megabytes / wall:7.1f} MB/s  (pymobiledevice3 backup2 backup --full)",
            f"upload phase: {report.upload_seconds:6.2f} s  {megabytes / report.upload_seconds:7.1f} MB/s",
            f"CPU seconds:  simulator {sim_cpu:.2f}, pymobiledevice3 {client_cpu:.2f}",
        ])  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    shm = Path("/dev/shm")
    parser = argparse.ArgumentParser(prog="bench_sim_transfer", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--profile", choices=PROFILE_NAMES, default="large", help="device size (default large)"
    )
    parser.add_argument("--scratch", type=Path, default=shm if shm.is_dir() else Path(tempfile.gettempdir()))
    parser.add_argument("--discard", action="store_true", help="pymobiledevice3 keeps no payload")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        if not args.scratch.is_dir():
            raise UsageError(f"{args.scratch} is not a directory")
        print(run(args.profile, args.scratch, args.discard, args.seed))
    except CofferError as error:
        print(f"bench_sim_transfer: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
