"""Debian's libimobiledevice-utils 1.3.0 (idevice_id, ideviceinfo, idevicebackup2) against the simulator.

CI installs them with `apt-get install -y libimobiledevice-utils`."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import unencrypted_view

from agent.sim.content import FileKind
from agent.sim.host_tools import HostTools
from agent.sim.server import SimServer
from agent.sim.verify import backup_digest

pytestmark = pytest.mark.skipif(
    not HostTools.libimobiledevice_available(),
    reason="needs Debian's libimobiledevice-utils: apt-get install -y libimobiledevice-utils",
)




def _ok(result, expected: str = "") -> None:
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    assert expected in result.stdout, result.stdout[-3000:]


def test_idevicebackup2_full_and_incremental_backup_then_restore(sim: SimServer, tmp_path: Path) -> None:
    source = sim.add_device(profile="tiny", seed=21)
    target = sim.add_device(profile="tiny", seed=22)
    host = HostTools(sim.address, tmp_path / "home")
    backups = tmp_path / "backups"
    backups.mkdir()

    listed = host.run("idevice_id", "-l")
    _ok(listed)
    assert set(listed.stdout.split()) == {source.udid, target.udid}
    _ok(host.run("ideviceinfo", "-u", source.udid, "-k", "ProductVersion"), source.product_version)

    _ok(host.run("idevicebackup2", "-u", source.udid, "backup", "--full", str(backups)), "Backup Successful.")
    assert (source.backups[-1].mode, source.backups[-1].error_code) == ("full", 0)
    assert backup_digest(backups / source.udid) == unencrypted_view(source)

    evolution = sim.evolve(source.udid, 2)
    _ok(host.run("idevicebackup2", "-u", source.udid, "backup", str(backups)), "Backup Successful.")
    incremental = source.backups[-1]
    files = {f.key for f in source.filesystem.files() if f.kind is FileKind.FILE and not f.encrypted_only}
    assert incremental.mode == "incremental"
    assert set(incremental.uploaded) == {key for key in evolution.added + evolution.modified if key in files}
    assert backup_digest(backups / source.udid) == unencrypted_view(source)

    restore = host.run(
        "idevicebackup2",
        "-u",
        target.udid,
        "-s",
        source.udid,
        "restore",
        "--system",
        "--remove",
        str(backups),
    )
    _ok(restore, "Restore Successful.")
    assert target.restores[-1].error_code == 0
    assert target.filesystem.snapshot_digest() == unencrypted_view(source)
