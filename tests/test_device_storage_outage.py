"""A storage outage in the middle of a USB backup: one clear line, nothing hangs, the repository stays
consistent, and the next backup completes (SeaweedFS behind the fault proxy, the simulated iPhone in front)."""

from __future__ import annotations

from pathlib import Path

from conftest import CofferCli
from s3server import FaultPlan, FaultProxy, SeaweedServer

from agent.sim.server import SimServer


def test_storage_outage_during_a_usb_backup(s3_coffer: CofferCli, s3: SeaweedServer, tmp_path: Path) -> None:
    s3_coffer.inline("init")
    with SimServer(tmp_path / "sim") as sim:
        udid = sim.add_device(profile="small", seed=901).udid
        s3_coffer.env.update(
            {
                "USBMUXD_SOCKET_ADDRESS": sim.address,
                "HOME": str(tmp_path / "home"),
                "COFFER_PAIR_RECORDS_DIR": str(tmp_path / "pair-records"),
            }
        )
        # Requests go through after the first few, then every one is dropped: the outage hits mid-backup.
        outage = FaultPlan(schedule=[None] * 12, probability=1.0, kinds=("drop_request",))
        with FaultProxy(s3.s3_address, outage) as proxy:
            run = s3_coffer(
                "backup", "--udid", udid,
                env={"AWS_ENDPOINT_URL": proxy.endpoint_url, "AWS_MAX_ATTEMPTS": "2"},
                expect=None, timeout=180,
            )
        assert run.returncode == 1, run.describe()
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("coffer: "), run.describe()
        assert s3_coffer("--json", "snapshots").json() == []
        assert s3_coffer("--json", "check", expect=None).json()["errors"] == []

        again = s3_coffer("--json", "backup", "--udid", udid).json()
        assert again["ok"]
        s3_coffer("check", "--read-data")
