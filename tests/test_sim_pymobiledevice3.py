"""Unmodified pymobiledevice3 (its CLI, over real sockets) against the simulator: listing devices,
pairing a fresh host, a full and an incremental backup, restores onto a second device."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import unencrypted_view

from agent.sim.content import FileKind
from agent.sim.device import SimulatedDevice
from agent.sim.device_paths import is_system_domain
from agent.sim.host_tools import HostTools
from agent.sim.server import SimServer
from agent.sim.verify import backup_digest


def _backed_up_files(device: SimulatedDevice) -> set[str]:
    """The files an unencrypted backup of `device` must carry."""
    return {f.key for f in device.filesystem.files() if f.kind is FileKind.FILE and not f.encrypted_only}


def _ok(result) -> None:
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    )


def test_pairing_full_incremental_backup_and_restore_onto_another_device(
    sim: SimServer, tmp_path: Path
) -> None:
    source = sim.add_device(profile="small", seed=11)
    target = sim.add_device(profile="tiny", seed=11)
    host = HostTools(sim.address, tmp_path / "home")
    backups = tmp_path / "backups"

    listed = host.pymobiledevice3("usbmux", "list")
    _ok(listed)
    assert {entry["UniqueDeviceID"] for entry in json.loads(listed.stdout)} == {source.udid, target.udid}

    info = host.pymobiledevice3("lockdown", "info", "--udid", source.udid)  # no pair record yet: pairs
    _ok(info)
    values = json.loads(info.stdout)
    assert values["SerialNumber"] == source.hardware.serial_number
    assert values["ProductVersion"] == source.product_version
    assert len(source.paired_hosts) == 1

    _ok(host.pymobiledevice3("backup2", "backup", "--full", str(backups), "--udid", source.udid))
    full = source.backups[-1]
    files_before = _backed_up_files(source)
    assert (full.mode, full.error_code) == ("full", 0)
    assert set(full.uploaded) == files_before
    assert backup_digest(backups / source.udid) == unencrypted_view(source)

    evolution = sim.evolve(source.udid, 1)
    _ok(host.pymobiledevice3("backup2", "backup", str(backups), "--udid", source.udid))
    incremental = source.backups[-1]
    changed = {key for key in evolution.added + evolution.modified if key in _backed_up_files(source)}
    assert (incremental.mode, incremental.error_code) == ("incremental", 0)
    assert changed and set(incremental.uploaded) == changed
    assert len(incremental.uploaded) < len(files_before) / 10
    assert incremental.unchanged == len(_backed_up_files(source)) - len(changed)
    assert set(incremental.removed) == set(evolution.removed) & files_before
    assert backup_digest(backups / source.udid) == unencrypted_view(source)

    restore = host.pymobiledevice3(
        "backup2",
        "restore",
        "--system",
        "--remove",
        "--source",
        source.udid,
        str(backups),
        "--udid",
        target.udid,
    )
    _ok(restore)
    assert target.restores[-1].error_code == 0
    assert target.filesystem.snapshot_digest() == unencrypted_view(source)

    # A later backup of the restored device carries the restored data.
    _ok(host.pymobiledevice3("backup2", "backup", "--full", str(backups), "--udid", target.udid))
    assert backup_digest(backups / target.udid) == unencrypted_view(source)


def test_restore_without_system_files_keeps_the_targets_system_domains_and_copies_its_backup(
    sim: SimServer, tmp_path: Path
) -> None:
    source = sim.add_device(profile="tiny", seed=12)
    target = sim.add_device(profile="tiny", seed=13)
    host = HostTools(sim.address, tmp_path / "home")
    backups = tmp_path / "backups"
    target_before = unencrypted_view(target)
    for device in (source, target):
        _ok(host.pymobiledevice3("backup2", "backup", "--full", str(backups), "--udid", device.udid))

    restore = ("backup2", "restore", "--remove", "--copy", "--source", source.udid, str(backups))
    _ok(host.pymobiledevice3(*restore, "--udid", target.udid))

    # --copy: before restoring, the device had the host set its own backup aside.
    (copy,) = backups.glob(f"{target.udid}-*")
    assert backup_digest(copy) == target_before

    def split(digest: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        system = {k: v for k, v in digest.items() if is_system_domain(k.split("/", 1)[0])}
        return system, {k: v for k, v in digest.items() if k not in system}

    target_system, target_user = split(unencrypted_view(target))
    source_system, source_user = split(unencrypted_view(source))
    assert target.restores[-1].skipped_system > 0
    assert target_user == source_user
    assert target_system == split(target_before)[0] != source_system
