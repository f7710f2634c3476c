"""Device-side backup encryption: what the simulator writes decrypts with pyiosbackup and
iphone_backup_decrypt, carries the encrypted-only data (health, keychain), and follows ChangePassword."""

from __future__ import annotations

import hashlib
import plistlib
from pathlib import Path

from iphone_backup_decrypt import EncryptedBackup
from pyiosbackup import Backup

from agent.sim.content import FileKind
from agent.sim.host_tools import HostTools
from agent.sim.server import SimServer
from agent.sim.verify import backup_digest

PASSWORD = "correct horse"
KEYCHAIN = ("KeychainDomain", "keychain-backup.plist")
HEALTH = ("HealthDomain", "Health/healthdb.sqlite")



def _ok(result) -> None:
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    )


def test_encrypted_backup_decrypts_with_both_readers_and_only_it_holds_health_and_keychain(
    sim: SimServer, tmp_path: Path
) -> None:
    encrypted = sim.add_device(profile="tiny", seed=31, password=PASSWORD)
    plain = sim.add_device(profile="tiny", seed=31)
    host = HostTools(sim.address, tmp_path / "home")
    backups = tmp_path / "backups"
    _ok(host.pymobiledevice3("backup2", "backup", "--full", str(backups), "--udid", encrypted.udid))
    _ok(host.pymobiledevice3("backup2", "backup", "--full", str(backups), "--udid", plain.udid))
    folder = backups / encrypted.udid
    device_digest = encrypted.filesystem.snapshot_digest()
    assert plistlib.loads((folder / "Manifest.plist").read_bytes())["IsEncrypted"] is True
    assert encrypted.backups[-1].encrypted

    decrypted = EncryptedBackup(backup_directory=str(folder), passphrase=PASSWORD)
    decrypted.test_decryption()
    for domain, path in (KEYCHAIN, HEALTH):
        data = decrypted.extract_file_as_bytes(path, domain_like=domain)
        assert hashlib.sha256(data).hexdigest() == device_digest[f"{domain}/{path}"]

    backup = Backup.from_path(folder, PASSWORD)
    for f in encrypted.filesystem.files():
        if f.kind is FileKind.FILE:
            data = backup.get_entry_by_domain_and_path(f.domain, f.relative_path).read_bytes()
            assert hashlib.sha256(data).hexdigest() == device_digest[f.key], f.key
    assert backup_digest(folder, PASSWORD) == device_digest

    plain_rows = backup_digest(backups / plain.udid)
    encrypted_only = {f.key for f in plain.filesystem.files() if f.encrypted_only}
    assert {"/".join(KEYCHAIN), "/".join(HEALTH)} <= encrypted_only
    assert not encrypted_only & set(plain_rows)
    assert plain_rows == plain.filesystem.snapshot_digest(include_encrypted_only=False)


def test_change_password_turns_encryption_on_and_restores_need_the_password(
    sim: SimServer, tmp_path: Path
) -> None:
    device = sim.add_device(profile="tiny", seed=32)
    target = sim.add_device(profile="tiny", seed=33)
    host = HostTools(sim.address, tmp_path / "home")
    backups = tmp_path / "backups"
    _ok(host.pymobiledevice3("backup2", "backup", "--full", str(backups), "--udid", device.udid))

    _ok(host.pymobiledevice3("backup2", "encryption", "on", PASSWORD, "--udid", device.udid))
    state = host.pymobiledevice3("backup2", "encryption", "--udid", device.udid)  # reads WillEncrypt
    _ok(state)
    assert state.stdout.strip() == "on"

    _ok(host.pymobiledevice3("backup2", "backup", str(backups), "--udid", device.udid))
    report = device.backups[-1]
    assert (report.mode, report.encrypted) == ("full", True)  # a change of encryption forces a full backup
    assert backup_digest(backups / device.udid, PASSWORD) == device.filesystem.snapshot_digest()

    restore = (
        "backup2",
        "restore",
        "--system",
        "--remove",
        "--source",
        device.udid,
        str(backups),
        "--udid",
        target.udid,
    )
    refused = host.pymobiledevice3(*restore, "--password", "wrong")
    assert refused.returncode != 0
    assert "207" in refused.stderr
    assert target.restores[-1].error_code == 207
    _ok(host.pymobiledevice3(*restore, "--password", PASSWORD))
    assert target.filesystem.snapshot_digest() == device.filesystem.snapshot_digest()

    _ok(host.pymobiledevice3("backup2", "encryption", "off", PASSWORD, "--udid", device.udid))
    assert not device.will_encrypt
