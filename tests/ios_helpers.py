"""Builders for synthetic iOS backup folders, made with the real agent.ios writer (shared by the iOS tests)."""

from __future__ import annotations

import filecmp
import plistlib
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agent.ios.encryption import (
    ClassKeys,
    Keybag,
    decrypt_manifest_db,
    encrypt_manifest_db,
    new_file_key,
    new_manifest_key,
    wrap_file_key,
)
from agent.ios.folder import BackupWriter
from agent.ios.identity import DeviceIdentity
from agent.ios.manifest_db import manifest_db_bytes
from agent.ios.plists import build_manifest_plist, build_status_plist
from agent.ios.records import FLAG_DIRECTORY, FLAG_FILE, FLAG_SYMLINK, FileRecord

PASSWORD = "correct horse"
FAST_DPIC = 1000
FAST_ITERATIONS = 100
DEVICE = DeviceIdentity(
    udid="00008030-001A2B3C4D5E6F70",
    name="Test iPhone",
    product_type="iPhone12,1",
    product_version="14.3",
    serial="F2LXX0XXHG7F",
    build="18C66",
)
FIXED_DATE = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    """One row to put into a synthetic backup: a file (content), a directory or a symlink (target)."""

    domain: str
    relative_path: str
    content: bytes | None = None
    flags: int = FLAG_FILE
    target: str | None = None
    protection_class: int = 3


def directory(domain: str, relative_path: str) -> Entry:
    return Entry(domain, relative_path, flags=FLAG_DIRECTORY)


def symlink(domain: str, relative_path: str, target: str) -> Entry:
    return Entry(domain, relative_path, flags=FLAG_SYMLINK, target=target)


@dataclass
class BuiltBackup:
    """What `build_backup` wrote, for assertions."""

    path: Path
    records: list[FileRecord]
    contents: dict[str, bytes] = field(default_factory=dict)  # fileID -> plaintext
    class_keys: ClassKeys | None = None


SAMPLE_ENTRIES = (
    directory("HomeDomain", ""),
    directory("HomeDomain", "Library"),
    directory("HomeDomain", "Library/SMS"),
    Entry("HomeDomain", "Library/SMS/sms.db", b"SQLite format 3\x00" + bytes(range(256)) * 40),
    Entry("HomeDomain", "Library/Preferences/empty.plist", b""),
    Entry("HomeDomain", "Library/Notes/sixteen.txt", b"0123456789abcdef" * 4),  # a multiple of 16 bytes
    Entry("CameraRollDomain", "Media/DCIM/100APPLE/IMG_0001.HEIC", bytes(range(251)) * 9000),  # > 2 MiB
    symlink("HomeDomain", "Library/Links/latest", "../SMS/sms.db"),
    Entry("KeychainDomain", "keychain-backup.plist", b"<plist/>", protection_class=11),
)


def info_plist_bytes(device: DeviceIdentity = DEVICE) -> bytes:
    """An Info.plist as a host writes it (XML)."""
    return plistlib.dumps(
        {
            "Build Version": device.build,
            "Device Name": device.name,
            "Display Name": device.name,
            "Product Type": device.product_type,
            "Product Version": device.product_version,
            "Serial Number": device.serial,
            "Target Identifier": device.udid,
            "Target Type": "Device",
            "Unique Identifier": device.udid.upper(),
        }
    )


def build_backup(
    path: Path,
    entries: tuple[Entry, ...] = SAMPLE_ENTRIES,
    *,
    password: str | None = None,
    date: datetime = FIXED_DATE,
    device: DeviceIdentity = DEVICE,
) -> BuiltBackup:
    """Write a complete backup folder, encrypted when `password` is given, as a device plus host would, dated
    `date` (the snapshot time of its import)."""
    class_keys = None
    manifest_key = None
    if password is None:
        keybag_data, _ = Keybag.create("unused", dpic=FAST_DPIC, iterations=FAST_ITERATIONS)
    else:
        keybag_data, class_keys = Keybag.create(password, dpic=FAST_DPIC, iterations=FAST_ITERATIONS)
        manifest_key = new_manifest_key(class_keys)
    built = BuiltBackup(path=path, records=[], class_keys=class_keys)
    for inode, entry in enumerate(entries, start=1000):
        fields = {"mtime": 1_700_000_000 + inode, "inode": inode, "target": entry.target}
        if entry.flags == FLAG_FILE:
            fields |= {"size": len(entry.content or b""), "protection_class": entry.protection_class}
            if class_keys is not None:
                fields["wrapped_key"] = wrap_file_key(class_keys, entry.protection_class, new_file_key())
        record = FileRecord.create(entry.domain, entry.relative_path, entry.flags, **fields)
        built.records.append(record)
        if record.is_file:
            built.contents[record.file_id] = entry.content or b""
    database = manifest_db_bytes(built.records)
    if class_keys is not None:
        database = encrypt_manifest_db(class_keys, manifest_key, database)
    writer = BackupWriter(
        path,
        info_plist=info_plist_bytes(device),
        status_plist=build_status_plist(date=date, backup_uuid="5E1A4F2C-0000-4000-8000-000000000001"),
        manifest_plist=build_manifest_plist(
            device=device, backup_keybag=keybag_data.data, manifest_key=manifest_key, date=date
        ),
        manifest_db_bytes=database,
        class_keys=class_keys,
    )
    for record in built.records:
        if record.is_file:
            content = built.contents[record.file_id]
            writer.write_file(
                record, [content[i : i + 100_000] for i in range(0, len(content), 100_000)] or [b""]
            )
    writer.finish()
    return built


def execute_on_manifest(built: BuiltBackup, statement: str, parameters: tuple = ()) -> None:
    """Run one SQL statement against a built backup's Manifest.db (decrypting and re-encrypting it if needed),
    to plant hostile rows."""
    manifest_path = built.path / "Manifest.db"
    manifest = plistlib.loads((built.path / "Manifest.plist").read_bytes())
    data = manifest_path.read_bytes()
    if built.class_keys is not None:
        data = decrypt_manifest_db(built.class_keys, manifest["ManifestKey"], data)
    connection = sqlite3.connect(":memory:")
    connection.deserialize(data)
    connection.execute(statement, parameters)
    connection.commit()
    data = connection.serialize()
    connection.close()
    if built.class_keys is not None:
        data = encrypt_manifest_db(built.class_keys, manifest["ManifestKey"], data)
    manifest_path.write_bytes(data)


def tree_files(root: Path) -> list[Path]:
    """Every regular file under `root`, relative, sorted."""
    return sorted(path.relative_to(root) for path in root.rglob("*") if path.is_file())


def assert_same_tree(left: Path, right: Path) -> None:
    """The two folders hold the same files with the same bytes."""
    assert tree_files(left) == tree_files(right)
    for relative in tree_files(left):
        assert filecmp.cmp(left / relative, right / relative, shallow=False), relative
