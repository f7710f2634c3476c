"""USB backup: `coffer backup` against the raw `pymobiledevice3 backup2 backup` of the same device.

Both run as subprocesses against the same simulated iPhone (served from this process over
loopback), full backups, alternating order over `--rounds`, so the machine's noise hits both.
Coffer's run includes chunking, hashing, compression, encryption and writing the packs; the
raw run writes a plain backup folder. Reported: wall times, their ratio (the target is at most
1.05 on a USB 3 cable, `--rate 350`), throughput, and Coffer's peak staging disk use. `--rate MBPS`
throttles the simulated cable.

    .venv/bin/python benchmarks/bench_usb_backup.py --profile medium --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.sim.host_tools import HostTools
from agent.sim.server import SimServer

ROOT = Path(__file__).resolve().parent.parent


def _coffer_env(work: Path, address: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COFFER_", "USBMUXD_"))}
    env.update(
        USBMUXD_SOCKET_ADDRESS=address,
        HOME=str(work / "home"),
        COFFER_PASSWORD="benchmark passphrase",
        COFFER_KDF_TARGET_SECONDS="0.5",
        COFFER_STATE_DIR=str(work / "state"),
        COFFER_STAGING_DIR=str(work / "staging"),
        PYTHONPATH=str(ROOT),
    )
    return env


def run_coffer(work: Path, address: str, udid: str) -> tuple[float, dict[str, object]]:
    repo = work / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(work / "state", ignore_errors=True)
    env = _coffer_env(work, address)
    coffer = [sys.executable, "-m", "agent", "--repo", str(repo)]
    subprocess.run([*coffer, "init"], env=env, check=True, capture_output=True)
    start = time.perf_counter()
    done = subprocess.run(
        [*coffer, "--json", "backup", "--udid", udid, "--full"], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"coffer backup failed: {done.stderr}")
    return elapsed, json.loads(done.stdout.splitlines()[-1])  # the summary, after the status lines


def run_raw(work: Path, host: HostTools, udid: str) -> float:
    target = work / "raw"
    shutil.rmtree(target, ignore_errors=True)
    start = time.perf_counter()
    done = host.pymobiledevice3("backup2", "backup", "--full", str(target), "--udid", udid, timeout=3600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"pymobiledevice3 backup failed: {done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="medium", choices=["small", "medium", "large"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument(
        "--rate", type=float, default=0,
        help="the simulated cable's speed in MB/s (0: as fast as the simulator serves; USB 2 is about 35, "
             "USB 3 Gen 1 about 350 in practice)",
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="coffer-bench-usb-"))
    with SimServer(work / "sim") as sim:
        device = sim.add_device(profile=args.profile, seed=11)
        if args.rate:
            sim.set_transfer_rate(device.udid, int(args.rate * 1e6))
        size = device.filesystem.total_size()
        host = HostTools(sim.address, work / "home")
        raw_times, coffer_times, peaks = [], [], []
        for round_number in range(args.rounds):
            order = ("raw", "coffer") if round_number % 2 == 0 else ("coffer", "raw")
            for which in order:
                if which == "raw":
                    raw_times.append(run_raw(work, host, device.udid))
                else:
                    elapsed, result = run_coffer(work, sim.address, device.udid)
                    coffer_times.append(elapsed)
                    peaks.append(int(result["peak_staging_bytes"]))  # type: ignore[call-overload]
    raw, coffer = statistics.median(raw_times), statistics.median(coffer_times)
    mb = size / 1e6
    cable = f"{args.rate:g} MB/s cable" if args.rate else "unthrottled"
    print(f"profile {args.profile}: {mb:.0f} MB on the device, {cable}, {args.rounds} rounds (median)")
    print("| run | wall time | throughput |")
    print("| --- | --- | --- |")
    print(f"| pymobiledevice3 backup2 backup (raw folder) | {raw:.1f} s | {mb / raw:.0f} MB/s |")
    print(f"| coffer backup (encrypted repository) | {coffer:.1f} s | {mb / coffer:.0f} MB/s |")
    print(
        f"\nratio coffer / raw: {coffer / raw:.2f} (target <= 1.05 at USB 3 speed, --rate 350); peak staging disk: {max(peaks) / 1e6:.1f} MB"
    )
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
