"""The device backup password never locks a user in (issue 13, point 4), through the real CLI and the simulator.

Coffer's random device backup password is sealed in the repository, to the full key and to the station that
set it: a fresh host with the passphrase, or a station that lost its state folder, backs the phone up again;
another station cannot read it; no host keeps it in clear; `coffer encryption password` shows it to a
full-key holder, and an encrypted export Coffer made imports without one.
"""

from __future__ import annotations

from pathlib import Path

import test_device_usb
from conftest import CofferCli, host_directories
from test_device_usb import _device

from agent.keys.slots import KeyFile
from agent.repository.device_secrets import device_passwords
from agent.sim.server import SimServer

sim, usb = test_device_usb.sim, test_device_usb.usb  # the module's simulator and `coffer` on a fresh repository


def _fresh_host(root: Path) -> dict[str, str | None]:
    """Another computer: its own state, cache, staging and pair records, nothing carried over."""
    return {**host_directories(root), "COFFER_PAIR_RECORDS_DIR": str(root / "pair-records")}


def _station(usb: CofferCli, path: Path) -> dict[str, str | None]:
    usb("key", "add", "--put-only", "--output", path)
    return {"COFFER_KEY_FILE": str(path), "COFFER_PASSWORD": None}


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_a_fresh_host_with_the_passphrase_backs_up_a_device_encrypted_phone(
    usb: CofferCli, sim: SimServer, tmp_path: Path
) -> None:
    udid = _device(sim)
    first = usb("--json", "backup", "--udid", udid, "--enable-device-encryption").json()
    assert first["complete"] is True
    shown = usb("--json", "encryption", "password", "--udid", udid).json()
    assert shown == {"udid": udid, "password": sim.device(udid).backup_password}

    other = _fresh_host(tmp_path / "second-host")
    again = usb("--json", "backup", "--udid", udid, env=other).json()
    assert again["complete"] is True and again["files_sent"] >= first["files_sent"]  # a full one: new host
    keychain = usb("--json", "ls", again["snapshot"], "--category", "keychain").json()
    assert any(item["path"] == "keychain-backup.plist" for item in keychain)

    # Neither host keeps the password in clear: not in state, cache or staging.
    for root in (Path(usb.env["COFFER_STATE_DIR"]), tmp_path / "second-host"):
        assert list(root.rglob("*")), root
        assert _files_holding(root, shown["password"]) == []


def test_a_station_that_lost_its_state_folder_backs_up_again_with_its_key_file(
    usb: CofferCli, sim: SimServer, tmp_path: Path
) -> None:
    udid = _device(sim)
    station = {**_station(usb, tmp_path / "station.key"), **_fresh_host(tmp_path / "station")}
    first = usb("--json", "backup", "--udid", udid, "--enable-device-encryption", env=station).json()
    assert first["complete"] is True
    password = sim.device(udid).backup_password
    assert password and _files_holding(tmp_path / "station", password) == []

    lost = {**station, **host_directories(tmp_path / "station-reinstalled")}
    again = usb("--json", "backup", "--udid", udid, env=lost).json()
    assert again["complete"] is True

    # The password is the full key's to show; a station gets exit 3 and learns nothing.
    run = usb("encryption", "password", "--udid", udid, env=station, expect=3)
    assert password not in run.stdout + run.stderr
    assert usb("--json", "encryption", "password", "--udid", udid).json()["password"] == password

    # Another station's key file opens none of the records this station sealed for itself.
    other = _station(usb, tmp_path / "other.key")
    assert device_passwords(usb.open(KeyFile(tmp_path / "station.key")), udid)
    assert device_passwords(usb.open(KeyFile(tmp_path / "other.key")), udid) == []
    run = usb("backup", "--udid", udid, env={**other, **_fresh_host(tmp_path / "other")}, expect=3)
    assert "password" in run.stderr and password not in run.stderr


def test_encryption_on_off_and_change_keep_backups_going(usb: CofferCli, sim: SimServer, tmp_path: Path) -> None:
    udid = _device(sim)
    device = sim.device(udid)
    on = usb("--json", "encryption", "on", "--udid", udid).json()
    assert on == {"udid": udid, "encryption": True, "changed": True} and device.will_encrypt
    old = usb("--json", "encryption", "password", "--udid", udid).json()["password"]
    assert old == device.backup_password

    changed = usb("--json", "encryption", "password", "--udid", udid, "--change").json()
    assert changed["password"] == device.backup_password != old
    backup = usb("--json", "backup", "--udid", udid, env=_fresh_host(tmp_path / "elsewhere")).json()
    assert backup["complete"] is True

    usb("encryption", "off", "--udid", udid)
    assert not device.will_encrypt
    assert usb("--json", "encryption", "off", "--udid", udid).json()["changed"] is False
    assert usb("--json", "backup", "--udid", udid).json()["complete"] is False
    usb("encryption", "password", "--udid", udid, expect=1)  # turned off: no password to show


def test_an_encrypted_export_coffer_made_imports_without_a_password(
    usb: CofferCli, sim: SimServer, tmp_path: Path
) -> None:
    udid = _device(sim)
    snapshot = usb("--json", "backup", "--udid", udid, "--enable-device-encryption").json()["snapshot"]
    usb("export", snapshot, tmp_path / "export")
    imported = usb("--json", "import", tmp_path / "export").json()
    assert imported["device"]["udid"] == udid
    listing = usb("--json", "ls", imported["id"], "--category", "keychain").json()
    assert any(item["path"] == "keychain-backup.plist" for item in listing)
    # Another repository knows no password for it: the user is told to give one.
    elsewhere = CofferCli(tmp_path / "repo2", {**usb.env, "COFFER_REPOSITORY": str(tmp_path / "repo2")})
    elsewhere.init()
    run = elsewhere("import", tmp_path / "export", expect=3)
    assert "--backup-password-file" in run.stderr


def test_after_a_key_rotation_the_sealed_password_still_serves(usb: CofferCli, sim: SimServer, tmp_path: Path) -> None:
    """`key rotate` re-seals the device passwords for the new keys: a fresh host with the passphrase backs up
    again; a station made after the rotation is told it lacks the password (exit 3), not that storage is damaged."""
    udid = _device(sim)
    usb("backup", "--udid", udid, "--enable-device-encryption")
    usb("key", "rotate")
    again = usb("--json", "backup", "--udid", udid, env=_fresh_host(tmp_path / "after-rotation")).json()
    assert again["complete"] is True
    assert usb("--json", "encryption", "password", "--udid", udid).json()["password"] == sim.device(udid).backup_password
    station = {**_station(usb, tmp_path / "new-station.key"), **_fresh_host(tmp_path / "new-station")}
    usb("backup", "--udid", udid, env=station, expect=3)
    usb("check")


def test_a_clear_password_an_earlier_version_left_is_sealed_and_removed(usb: CofferCli, sim: SimServer) -> None:
    udid = _device(sim, password="legacy backup password")
    legacy = Path(usb.env["COFFER_STATE_DIR"]) / usb.open().config.repository_id / f"{udid}.password"
    legacy.parent.mkdir(parents=True, exist_ok=True)  # opening the repository made it
    legacy.write_text("legacy backup password", encoding="utf-8")
    assert usb("--json", "backup", "--udid", udid).json()["complete"] is True
    assert not legacy.exists()
    assert _files_holding(Path(usb.env["COFFER_STATE_DIR"]), "legacy backup password") == []
    shown = usb("--json", "encryption", "password", "--udid", udid).json()
    assert shown["password"] == "legacy backup password"


def test_a_password_given_once_to_import_serves_later_usb_backups(
    usb: CofferCli, sim: SimServer, tmp_path: Path
) -> None:
    """A Finder backup imported with its password: the phone's USB backups then need no password (the full
    key finds it in that snapshot), and from then on it is sealed as a record of its own."""
    udid = _device(sim, password="finder password")
    (tmp_path / "pw").write_text("finder password\n")
    snapshot = usb("--json", "backup", "--udid", udid, "--backup-password-file", tmp_path / "pw").json()["snapshot"]
    usb("export", snapshot, tmp_path / "finder-backup")
    fresh = CofferCli(tmp_path / "repo2", {**usb.env, **_fresh_host(tmp_path / "host2"),
                                            "COFFER_REPOSITORY": str(tmp_path / "repo2")})
    fresh.init()
    fresh("import", tmp_path / "finder-backup", "--backup-password-file", tmp_path / "pw")
    assert device_passwords(fresh.open(), udid) == []
    assert fresh("--json", "backup", "--udid", udid).json()["complete"] is True
    assert [p.password for p in device_passwords(fresh.open(), udid)] == ["finder password"]
    assert fresh("--json", "encryption", "password", "--udid", udid).json()["password"] == "finder password"
