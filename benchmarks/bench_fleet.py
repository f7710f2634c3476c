"""Fleet throughput: `coffer watch` backing up several simulated iPhones at once against one at a time.

    .venv/bin/python -m benchmarks.bench_fleet [--profile small|medium] [--devices 4] [--rates 0,35]

For each cable speed in `--rates` (MB/s per device, 0 for as fast as loopback allows; 35 is what a USB 2
iPhone delivers), the same devices are backed up twice by a real `coffer watch` daemon, each time into a
fresh repository with fresh host state (so both are full backups): with `max_concurrent = 1` (one at a
time) and `max_concurrent = N` (all at once). The devices are plugged in together once the daemon runs.
Measured from the daemon's event log: wall time from the first backup's start to the last one's end, bytes
received from the devices, and the daemon's CPU seconds. The simulator runs in this process, on the same
cores as the daemon: with unthrottled cables the two compete, so that row is the host's ceiling rather
than a device's.

    .venv/bin/python -m benchmarks.bench_fleet --capacity [--profile small] [--devices 6] [--rates 35]

asks how many devices one host keeps at full speed: for N = 1, 2, … `--devices`, N devices on cables of the
first rate are backed up all at once, and each device's own rate (its bytes over its backup's start to end)
is compared with what one device alone gets through the same daemon and cable (N = 1). The figure is the
largest N such that at every count up to it each device keeps at least 95 % of that; the nominal cable speed is printed beside it,
since the simulator's per-file work can keep even one device below it.

Results go to benchmarks/results/fleet-<time>.json and .md (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.errors import CofferError, UsageError
from agent.sim.server import SimServer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MB = 1_000_000
PASSPHRASE = "benchmark passphrase"
TIMEOUT_SECONDS = 3600.0
FULL_SPEED = 0.95  # a device "runs at full speed" when it keeps this share of its rate alone


@dataclass
class Run:
    rate_mb_s: float  # per device cable; 0 = unthrottled
    max_concurrent: int
    devices: int
    megabytes: float
    wall_seconds: float
    daemon_cpu_seconds: float
    peak_running: int
    device_rates: list[float]  # MB/s of each device's own backup, start to end

    @property
    def throughput(self) -> float:
        return self.megabytes / self.wall_seconds


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class FleetBench:
    def __init__(self, workdir: Path, sim: SimServer, udids: list[str]) -> None:
        self.workdir = workdir
        self.sim = sim
        self.udids = udids

    def environment(self, folder: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COFFER_", "USBMUXD_"))}
        env.update(
            PYTHONPATH=str(ROOT),
            USBMUXD_SOCKET_ADDRESS=self.sim.address,
            HOME=str(self.workdir / "home"),
            COFFER_PAIR_RECORDS_DIR=str(self.workdir / "pair-records"),  # paired once, before any timing
            COFFER_PASSWORD=PASSPHRASE,
            COFFER_KDF_TARGET_SECONDS="0",
            COFFER_REPOSITORY=str(folder / "repo"),
            COFFER_STATE_DIR=str(folder / "host-state"),
            COFFER_STAGING_DIR=str(folder / "staging"),
            COFFER_CACHE_DIR=str(folder / "cache"),
        )
        return env

    def coffer(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "agent", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise CofferError(f"coffer {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done

    def pair(self) -> None:
        """Pair with every device untimed (`coffer devices` does), so neither run pays for it."""
        for udid in self.udids:
            self.sim.plug(udid)
        self.coffer(self.environment(self.workdir / "pairing"), "devices")
        for udid in self.udids:
            self.sim.unplug(udid)

    def measure(self, rate: float, max_concurrent: int, udids: list[str] | None = None) -> Run:
        """Back up `udids` (default all) plugged in together, at most `max_concurrent` at a time."""
        udids = self.udids if udids is None else udids
        folder = self.workdir / f"rate{rate:g}-concurrent{max_concurrent}-devices{len(udids)}"
        env = self.environment(folder)
        self.coffer(env, "init")
        for udid in udids:
            self.sim.set_transfer_rate(udid, int(rate * MB) if rate else None)
        config = folder / "coffer.toml"
        config.write_text(
            f'[policy]\nmax_concurrent = {max_concurrent}\n\n[daemon]\nstate_dir = "{folder / "state"}"\n'
        )
        log = folder / "state" / "events.jsonl"
        cpu_before = _cpu_of_children()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "agent", "watch", "--config", str(config)],
            env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(folder / "daemon.stderr").open("w"),
        )  # fmt: skip
        try:
            self._wait(daemon, log, lambda events: any(e["event"] == "daemon_started" for e in events))
            for udid in udids:
                self.sim.plug(udid)
            events = self._wait(daemon, log, lambda events: self._all_done(events, udids))
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=120)
            for udid in udids:
                self.sim.unplug(udid)
        failed = [e for e in events if e["event"] in ("backup_failed", "backup_waiting")]
        if failed:
            raise CofferError(f"a backup did not succeed: {failed[0]}")
        starts = [e["ts"] for e in events if e["event"] == "backup_started"]
        ends = [e for e in events if e["event"] == "backup_succeeded"]
        started = {e["udid"]: e["ts"] for e in events if e["event"] == "backup_started"}
        return Run(
            rate_mb_s=rate,
            max_concurrent=max_concurrent,
            devices=len(udids),
            megabytes=sum(e["bytes"] for e in ends) / MB,
            wall_seconds=max(e["ts"] for e in ends) - min(starts),
            daemon_cpu_seconds=_cpu_of_children() - cpu_before,
            peak_running=max(e.get("running", 0) for e in events),
            device_rates=[e["bytes"] / MB / (e["ts"] - started[e["udid"]]) for e in ends],
        )

    @staticmethod
    def _all_done(events: list[dict[str, Any]], udids: list[str]) -> bool:
        done = {
            e["udid"] for e in events if e["event"] in ("backup_succeeded", "backup_failed", "backup_waiting")
        }
        return done >= set(udids)

    @staticmethod
    def _wait(daemon: subprocess.Popen[bytes], log: Path, ready: Any) -> list[dict[str, Any]]:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            events = _events(log)
            if ready(events):
                return events
            if daemon.poll() is not None:
                raise CofferError(
                    f"the daemon exited with {daemon.returncode} (see {log.parent.parent}/daemon.stderr)"
                )
            if time.monotonic() > deadline:
                raise CofferError("the backups did not finish in time")
            time.sleep(0.05)


def markdown(profile: str, runs: list[Run]) -> str:
    lines = [
        f"Fleet throughput, profile `{profile}`, {runs[0].devices} devices, {os.cpu_count()} cores",
        "",
        "| cable (MB/s per device) | max_concurrent | data (MB) | wall (s) | throughput (MB/s) | speed-up | daemon CPU (s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    sequential = {r.rate_mb_s: r for r in runs if r.max_concurrent == 1}
    for run in runs:
        speedup = run.throughput / sequential[run.rate_mb_s].throughput
        cable = f"{run.rate_mb_s:g}" if run.rate_mb_s else "unthrottled"
        lines.append(
            f"| {cable} | {run.max_concurrent} | {run.megabytes:.0f} | {run.wall_seconds:.2f} | "
            f"{run.throughput:.1f} | {speedup:.2f}× | {run.daemon_cpu_seconds:.1f} |"
        )
    return "\n".join(lines)


def devices_at_full_speed(runs: list[Run]) -> int:
    """The largest N such that every run of 1 … N devices at once kept each device at FULL_SPEED of the
    one-device rate: a count that passes once by luck after a failing one does not count."""
    by_count = {r.devices: r for r in runs}
    solo_rate = by_count[1].device_rates[0]
    count = 0
    while count + 1 in by_count and min(by_count[count + 1].device_rates) >= FULL_SPEED * solo_rate:
        count += 1
    return count


def capacity_markdown(profile: str, runs: list[Run]) -> str:
    rate = runs[0].rate_mb_s
    solo = runs[0].device_rates[0]
    lines = [
        f"Fleet capacity, profile `{profile}`, cables of {rate:g} MB/s, {os.cpu_count()} cores",
        "",
        "| devices at once | slowest device (MB/s) | mean per device (MB/s) | share of one alone | all together (MB/s) | daemon CPU (s) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        mean = sum(run.device_rates) / len(run.device_rates)
        lines.append(
            f"| {run.devices} | {min(run.device_rates):.1f} | {mean:.1f} | {min(run.device_rates) / solo:.0%} | "
            f"{run.throughput:.1f} | {run.daemon_cpu_seconds:.1f} |"
        )
    lines += [
        "",
        f"Devices at full speed at once: **{devices_at_full_speed(runs)}** (every device ≥ {FULL_SPEED:.0%} of the "
        f"{solo:.1f} MB/s one device gets alone; the cable's nominal speed is {rate:g} MB/s)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("tiny", "small", "medium"), default="small")
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--rates", default="0,35", help="cable speeds in MB/s per device, 0 = unthrottled")
    parser.add_argument(
        "--capacity", action="store_true", help="find how many devices at once keep full speed (first rate only)"
    )
    parser.add_argument(
        "--scratch", type=Path, default=None, help="where the repositories go (default: a temp folder)"
    )
    args = parser.parse_args(argv)
    try:
        rates = [float(r) for r in args.rates.split(",")]
    except ValueError:
        raise UsageError(f"--rates {args.rates!r}: give numbers separated by commas") from None
    workdir = Path(tempfile.mkdtemp(prefix="coffer-bench-fleet-", dir=args.scratch))
    try:
        with SimServer(workdir / "sim") as sim:
            udids = [
                sim.add_device(profile=args.profile, seed=900 + i, plugged=False).udid
                for i in range(args.devices)
            ]
            bench = FleetBench(workdir, sim, udids)
            bench.pair()
            if args.capacity:
                runs = [bench.measure(rates[0], n, udids[:n]) for n in range(1, args.devices + 1)]
            else:
                runs = [bench.measure(rate, concurrent) for rate in rates for concurrent in (1, args.devices)]
    except CofferError as exc:
        print(f"bench_fleet: {exc} (work folder kept: {workdir})", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    report = capacity_markdown(args.profile, runs) if args.capacity else markdown(args.profile, runs)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    document = {"profile": args.profile, "machine": platform.platform(), "cores": os.cpu_count(),
                "runs": [asdict(r) | {"throughput_mb_s": r.throughput} for r in runs]}  # fmt: skip
    if args.capacity:
        document["devices_at_full_speed"] = devices_at_full_speed(runs)
    (RESULTS / f"fleet-{stamp}.json").write_text(json.dumps(document, indent=2))
    (RESULTS / f"fleet-{stamp}.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
