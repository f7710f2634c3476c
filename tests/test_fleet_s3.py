"""Two `coffer watch` daemons on one machine, each with its own simulated devices and host state, backing
up into one S3 repository (SeaweedFS on loopback) at the same time, with put-only station keys."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from conftest import CofferCli
from fleet_harness import FleetRun, fleet_cli, peak_concurrency
from s3server import SeaweedServer

from agent.sim.server import SimServer

DEVICES_PER_HOST = 3


def _hosts(tmp_path: Path, stack: ExitStack) -> Iterator[SimServer]:
    for host in ("host1", "host2"):
        yield stack.enter_context(SimServer(tmp_path / f"{host}-sim"))


def test_two_daemons_back_up_into_one_s3_repository(tmp_path: Path, s3: SeaweedServer) -> None:
    url = f"s3://{s3.bucket_name()}/fleet"
    with ExitStack() as stack:
        sims = list(_hosts(tmp_path, stack))
        clis: list[CofferCli] = []
        for number, sim in enumerate(sims, start=1):
            cli = fleet_cli(tmp_path, sim, f"host{number}", repository=url)
            cli.env.update(s3.env())
            clis.append(cli)
        clis[0]("init")
        station = tmp_path / "station.key"
        clis[0]("key", "add", "--put-only", "--output", station)

        devices = {
            number: [
                sim.add_device(profile="tiny", seed=40 + 10 * number + i) for i in range(DEVICES_PER_HOST)
            ]
            for number, sim in enumerate(sims, start=1)
        }
        config = f'[repository]\nurl = "{url}"\nkey_file = "{station}"\n\n[policy]\nmax_concurrent = 2\n'
        runs = [
            FleetRun(cli, tmp_path / f"fleet{number}", config) for number, cli in enumerate(clis, start=1)
        ]
        try:
            for run in runs:  # both start at once; each finds its simulator's devices already plugged in
                run.start()
            succeeded = {
                device.udid: run.wait_event("backup_succeeded", device.udid, timeout=120)["snapshot"]
                for run, number in zip(runs, devices, strict=True)
                for device in devices[number]
            }
            for run in runs:
                assert peak_concurrency(run.events()) <= 2
                assert run.stop() == 0
        finally:
            for run in runs:
                run.kill()

        spans = [
            (
                min(e["ts"] for e in run.events("backup_started")),
                max(e["ts"] for e in run.events("backup_succeeded")),
            )
            for run in runs
        ]
        assert max(start for start, _ in spans) < min(end for _, end in spans)  # both hosts wrote at once
        # Each host saw only its own devices; the repository holds every snapshot, readable with the passphrase.
        for run, number in zip(runs, devices, strict=True):
            assert {e["udid"] for e in run.events("backup_succeeded")} == {d.udid for d in devices[number]}
        snapshots = {s["device"]["udid"]: s["id"] for s in clis[1]("--json", "snapshots").json()}
        assert snapshots == succeeded
        clis[1]("check", "--read-data")
