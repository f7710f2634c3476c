"""USB backup and restore through the real pymobiledevice3 code paths, against the simulated iPhone.

The simulator runs in this process (its own asyncio loop and thread, real TCP sockets); `coffer`
runs as a subprocess with USBMUXD_SOCKET_ADDRESS pointing at it, exactly as with a real usbmuxd.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CofferCli, unencrypted_view, usb_cli

from agent.archive.view import open_view
from agent.ios.categories import classify
from agent.sim.server import SimServer

_seeds = itertools.count(500)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimServer]:
    with SimServer(tmp_path_factory.mktemp("sim")) as server:
        yield server


@pytest.fixture
def usb(tmp_path: Path, sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> CofferCli:
    """`coffer` on a fresh initialised repository, talking to the simulator."""
    monkeypatch.setenv("COFFER_KDF_TARGET_SECONDS", "0")
    return usb_cli(tmp_path, sim)


def _device(sim: SimServer, profile: str = "tiny", **kwargs: object) -> str:
    return sim.add_device(profile=profile, seed=next(_seeds), **kwargs).udid  # type: ignore[arg-type]


def _rows(cli: CofferCli, snapshot: str) -> dict[tuple[str, str], list[bytes]]:
    view = open_view(cli.open(), snapshot, None)
    return {(r.domain, r.relative_path): row.chunks for _, row, r in view.records() if r.is_file}


def _content_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_devices_lists_trust_state_and_encryption(usb: CofferCli, sim: SimServer) -> None:
    trusted = _device(sim)
    untrusted = _device(sim, trusted=False)
    locked = _device(sim, locked=True)
    devices = {d["udid"]: d for d in usb("--json", "devices").json()}
    assert devices[trusted]["state"] == "trusted"
    assert devices[trusted]["backup_encryption"] is False
    assert devices[trusted]["ios_version"]
    assert devices[untrusted]["state"] == "waiting for trust"
    assert devices[locked]["state"] == "locked"
    for udid in (untrusted, locked):
        sim.unplug(udid)


def test_full_then_incremental_backup_streams_only_changes(usb: CofferCli, sim: SimServer, tmp_path: Path) -> None:
    udid = _device(sim, profile="small")
    first = usb("--json", "backup", "--udid", udid).json()
    assert first["ok"] and first["files_sent"] > 300
    assert first["complete"] is False  # device encryption is off: said, not hidden
    # The host keeps no file contents once the snapshot is committed.
    assert _content_files(tmp_path / "staging") == []

    report = sim.evolve(udid, 3)
    changed = {k for k in report.added + report.modified if not k.endswith("/")}
    second = usb("--json", "backup", "--udid", udid).json()
    device_report = sim.device(udid).backups[-1]
    assert device_report.mode == "incremental"
    uploaded = set(device_report.uploaded)
    assert uploaded <= changed | {k for k in report.added}, uploaded - changed
    assert second["files_sent"] == len(uploaded) < first["files_sent"] / 5
    # Only new chunks were stored: the new snapshot adds little beyond the changed bytes.
    new_bytes = sum(c["new_bytes"] for c in second["categories"].values())
    changed_bytes = sum(sim.device(udid).filesystem.get(*k.split("/", 1)).size for k in uploaded)
    print(f"incremental: {len(uploaded)} files sent, {changed_bytes} bytes changed, {new_bytes} bytes stored")
    assert new_bytes <= changed_bytes * 1.1 + 64 * 1024

    rows = _rows(usb, second["snapshot"])
    digest = sim.device(udid).filesystem.snapshot_digest(include_encrypted_only=False)
    files = {k for k, v in digest.items() if v not in ("dir",) and not v.startswith("symlink:")}
    assert {f"{d}/{p}" for d, p in rows} == files
    usb("check", "--read-data")


def test_encrypted_device_backup_includes_health_and_keychain(usb: CofferCli, sim: SimServer) -> None:
    udid = _device(sim)
    result = usb("--json", "backup", "--udid", udid, "--enable-device-encryption").json()
    assert result["complete"] is True
    assert sim.device(udid).will_encrypt
    categories = {k for k, v in result["categories"].items() if v["files"]}
    assert {"health", "keychain", "call_history"} <= categories
    listing = usb("--json", "ls", result["snapshot"], "--category", "keychain").json()
    assert any(item["path"] == "keychain-backup.plist" for item in listing)
    # The next backup reuses the sealed password without being told.
    again = usb("--json", "backup", "--udid", udid).json()
    assert again["complete"] is True and again["files_sent"] < result["files_sent"]


def test_restore_onto_a_replacement_device(usb: CofferCli, sim: SimServer) -> None:
    """A full restore makes B what A was, as Finder does: keychain and settings included, B's own items
    gone, then B restarts; B's next backup (no password given: B took A's, sealed for B) equals A's snapshot."""
    original = _device(sim, profile="small", name="Alice's iPhone")
    replacement = _device(sim)
    device = sim.device(replacement)
    own = set(device.filesystem.snapshot_digest()) - set(sim.device(original).filesystem.snapshot_digest())
    assert own
    snapshot = usb("--json", "backup", "--udid", original, "--enable-device-encryption").json()["snapshot"]
    result = usb("--json", "restore", snapshot, "--to-udid", replacement, "--yes").json()
    restore = device.restores[-1]
    assert restore.source_udid == original and restore.encrypted and restore.skipped_system == 0
    assert device.reboots == 1 and sim.is_plugged(replacement)
    assert any("restarted" in note for note in result["notes"])
    assert device.name == "Alice's iPhone" and device.backup_password == sim.device(original).backup_password
    assert not own & set(device.filesystem.snapshot_digest())
    copy = usb("--json", "backup", "--udid", replacement).json()
    assert copy["complete"] is True
    source_rows, copy_rows = _rows(usb, snapshot), _rows(usb, copy["snapshot"])
    assert copy_rows == source_rows
    assert any(classify(*key).value == "keychain" for key in copy_rows)


def test_full_restore_with_keep_existing_and_no_reboot(usb: CofferCli, sim: SimServer) -> None:
    original = _device(sim)
    target = _device(sim)
    device = sim.device(target)
    before = device.filesystem.snapshot_digest()
    own = {k: v for k, v in before.items() if k not in sim.device(original).filesystem.snapshot_digest()}
    snapshot = usb("--json", "backup", "--udid", original).json()["snapshot"]
    usb("restore", snapshot, "--to-udid", target, "--keep-existing", "--no-reboot", "--system", "--yes")
    after = device.filesystem.snapshot_digest()
    assert own and all(after.get(k) == v for k, v in own.items())
    assert device.reboots == 0
    for key, value in unencrypted_view(sim.device(original)).items():
        assert after.get(key) == value, key


def test_selective_restore_keeps_the_targets_other_data(usb: CofferCli, sim: SimServer) -> None:
    source = _device(sim, profile="small")
    target = _device(sim, profile="tiny")
    snapshot = usb("--json", "backup", "--udid", source).json()["snapshot"]
    before = sim.device(target).filesystem.snapshot_digest()
    result = usb("--json", "restore", snapshot, "--to-udid", target, "--categories", "messages,photos", "--yes").json()
    assert result["safety_snapshot"]
    after = sim.device(target).filesystem.snapshot_digest()
    source_digest = sim.device(source).filesystem.snapshot_digest()
    for key, value in source_digest.items():
        category = classify(*key.split("/", 1)).value
        if category in ("messages", "photos") and value != "dir":
            assert after.get(key) == value, key
    kept = [k for k, v in before.items() if classify(*k.split("/", 1)).value not in ("messages", "photos")]
    assert kept and all(after.get(k) == before[k] for k in kept)


def test_unplug_mid_backup_then_resume(usb: CofferCli, sim: SimServer) -> None:
    udid = _device(sim, profile="small")
    device = sim.device(udid)
    process = usb.start("backup", "--udid", udid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (device.backups and device.backups[-1].uploaded_bytes):
        time.sleep(0.02)
    sim.unplug(udid)
    started = time.monotonic()
    assert process.wait(timeout=30) == 5
    print(f"backup stopped {time.monotonic() - started:.2f} s after the unplug")
    sim.plug(udid)
    failed = usb("backup", "--udid", udid, expect=None)
    assert failed.returncode == 0, failed.describe()
    usb("check", "--read-data")


def test_unplugged_locked_and_untrusted_give_their_own_messages(usb: CofferCli, sim: SimServer) -> None:
    locked = _device(sim, locked=True)
    untrusted = _device(sim, trusted=False)
    run = usb("backup", "--udid", locked, expect=5)
    assert "locked" in run.stderr and "passcode" in run.stderr
    run = usb("backup", "--udid", untrusted, expect=5)
    assert "Trust" in run.stderr
    run = usb("backup", "--udid", "00008030-0000000000000000", expect=5)
    assert "not connected" in run.stderr or "went away" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    for udid in (locked, untrusted):
        sim.unplug(udid)


def test_backup_of_chosen_categories_then_all(usb: CofferCli, sim: SimServer) -> None:
    udid = _device(sim, profile="small")
    chosen = usb("--json", "backup", "--udid", udid, "--categories", "photos,messages").json()
    assert {k for k, v in chosen["categories"].items() if v["files"]} == {"photos", "messages"}
    rows = _rows(usb, chosen["snapshot"])
    assert {classify(d, p).value for d, p in rows} == {"photos", "messages"}
    # Everything else was left out of the repository, so an all-category run must bring it in.
    everything = usb("--json", "backup", "--udid", udid).json()
    assert any("full backup was needed" in note for note in everything["notes"])
    digest = sim.device(udid).filesystem.snapshot_digest(include_encrypted_only=False)
    files = {k for k, v in digest.items() if v != "dir" and not v.startswith("symlink:")}
    assert {f"{d}/{p}" for d, p in _rows(usb, everything["snapshot"])} == files


def test_kill_9_mid_backup_then_the_next_run_resumes(usb: CofferCli, sim: SimServer) -> None:
    udid = _device(sim, profile="small")
    usb.set_pack_sizes(256 << 10, 512 << 10)
    sim.set_transfer_rate(udid, 6_000_000)
    process = usb.start("backup", "--udid", udid)
    data = usb.repo / "data"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(data.rglob("*"))) < 12:
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=30)
    sim.set_transfer_rate(udid, None)
    usb("check")  # consistent after the kill: no snapshot, packs at most unindexed
    result = usb("--json", "backup", "--udid", udid).json()
    total = sum(c["bytes"] for c in result["categories"].values())
    stored = sum(c["new_bytes"] for c in result["categories"].values())
    print(f"after kill -9: the rerun stored {stored} bytes for {total} bytes of content (the rest was reused)")
    assert result["ok"]
    usb("check", "--read-data")


def test_selective_restore_between_encrypted_devices(usb: CofferCli, sim: SimServer) -> None:
    """Both phones encrypt their backups, with different passwords: the merged backup is re-keyed to the
    target's keybag, so the target's own keychain stays and the chosen categories come from the source."""
    source = _device(sim, profile="tiny")
    target = _device(sim, profile="tiny")
    snapshot = usb("--json", "backup", "--udid", source, "--enable-device-encryption").json()["snapshot"]
    usb("backup", "--udid", target, "--enable-device-encryption")
    before = sim.device(target).filesystem.snapshot_digest()
    usb("restore", snapshot, "--to-udid", target, "--categories", "messages,photos", "--yes")
    assert sim.device(target).restores[-1].encrypted
    after = sim.device(target).filesystem.snapshot_digest()
    for key, value in sim.device(source).filesystem.snapshot_digest().items():
        if classify(*key.split("/", 1)).value in ("messages", "photos") and value != "dir":
            assert after.get(key) == value, key
    keychain = [k for k in before if classify(*k.split("/", 1)).value == "keychain" and before[k] != "dir"]
    assert keychain and all(after.get(k) == before[k] for k in keychain)


def test_a_password_set_by_a_failed_first_backup_is_not_lost(usb: CofferCli, sim: SimServer) -> None:
    """Encryption is turned on, then the cable goes: the next run still knows the password it set."""
    udid = _device(sim, profile="small")
    device = sim.device(udid)
    sim.set_transfer_rate(udid, 4_000_000)
    process = usb.start("backup", "--udid", udid, "--enable-device-encryption")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (device.backups and device.backups[-1].uploaded_bytes):
        time.sleep(0.02)
    sim.unplug(udid)
    assert process.wait(timeout=30) == 5
    assert device.will_encrypt
    sim.set_transfer_rate(udid, None)
    sim.plug(udid)
    result = usb("--json", "backup", "--udid", udid).json()
    assert result["complete"] is True
    usb("check", "--read-data")
