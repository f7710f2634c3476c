"""Hostile and damaged backup folders: bad rows are reported as skipped (never a crash, never silent),
damaged metadata raises BackupFormatError naming the file, and extraction paths never escape."""

from __future__ import annotations

import os
import plistlib
import re
from pathlib import Path, PurePosixPath

import pytest
from ios_helpers import PASSWORD, SAMPLE_ENTRIES, BuiltBackup, build_backup, execute_on_manifest

from agent.errors import BackupFormatError, WrongSecretError
from agent.ios.folder import BackupFolder, BackupWriter
from agent.ios.mbfile import encode_mbfile
from agent.ios.records import file_id_for
from agent.ios.safety import SkippedEntry, safe_relative_path

SMS = "3d0d7e5fb2ce288813306e4d4636395e047a3d28"  # sha1("HomeDomain-Library/SMS/sms.db")


@pytest.fixture
def plain(tmp_path: Path) -> BuiltBackup:
    return build_backup(tmp_path / "backup")


@pytest.fixture
def encrypted(tmp_path: Path) -> BuiltBackup:
    return build_backup(tmp_path / "backup", password=PASSWORD)


def plant_row(
    built: BuiltBackup, file_id: str, domain: str, path: str, flags: int = 1, blob: bytes | None = None
) -> None:
    if blob is None:
        blob = encode_mbfile(relative_path=path, mode=0o100644, size=0)
    execute_on_manifest(
        built, "INSERT INTO Files VALUES (?, ?, ?, ?, ?)", (file_id, domain, path, flags, blob)
    )


def only_skip(folder: BackupFolder) -> SkippedEntry:
    assert len(folder.skipped) == 1, folder.skipped
    return folder.skipped[0]


def test_the_clean_sample_has_no_skips(plain: BuiltBackup) -> None:
    folder = BackupFolder.open(plain.path)
    assert folder.skipped == [] and folder.warnings == []
    assert len(folder.records) == len(SAMPLE_ENTRIES)


@pytest.mark.parametrize(
    "file_id", ["../../../../etc/passwd", "3D0D7E5FB2CE288813306E4D4636395E047A3D28", "abc"]
)
def test_file_id_that_is_not_40_lowercase_hex_is_skipped(plain: BuiltBackup, file_id: str) -> None:
    plant_row(plain, file_id, "HomeDomain", "Library/evil")
    skip = only_skip(BackupFolder.open(plain.path))
    assert (skip.file_id, skip.reason) == (file_id, "fileID is not 40 lowercase hex digits")


def test_file_id_mismatch_is_a_warning_and_the_row_is_kept(plain: BuiltBackup) -> None:
    wrong_id = "0" * 40
    (plain.path / "00").mkdir(exist_ok=True)
    (plain.path / "00" / wrong_id).write_bytes(b"")
    plant_row(plain, wrong_id, "HomeDomain", "Library/renamed")
    folder = BackupFolder.open(plain.path)
    assert folder.skipped == []
    assert any(r.file_id == wrong_id for r in folder.records)
    assert len(folder.warnings) == 1 and wrong_id in folder.warnings[0] and "sha1" in folder.warnings[0]


@pytest.mark.parametrize(
    ("domain", "path", "reason"),
    [
        ("HomeDomain", "Library/../../../etc/passwd", "relativePath has a '..' component"),
        ("HomeDomain", "..", "relativePath has a '..' component"),
        ("HomeDomain", "/etc/passwd", "relativePath is absolute"),
        ("HomeDomain", "Library/a\x00b", "relativePath contains a NUL byte"),
        ("Home/Domain", "Library/x", "domain is empty or contains '/', NUL or a dot name"),
        ("..", "x", "domain is empty or contains '/', NUL or a dot name"),
        ("", "x", "domain is empty or contains '/', NUL or a dot name"),
    ],
    ids=["dotdot", "bare-dotdot", "absolute", "nul", "slash-domain", "dotdot-domain", "empty-domain"],
)
def test_unsafe_names_are_skipped(plain: BuiltBackup, domain: str, path: str, reason: str) -> None:
    file_id = file_id_for(domain, path)
    plant_row(plain, file_id, domain, path)
    assert only_skip(BackupFolder.open(plain.path)) == SkippedEntry(file_id, domain, path, reason)


def test_missing_blob_is_skipped(plain: BuiltBackup) -> None:
    (plain.path / SMS[:2] / SMS).unlink()
    skip = only_skip(BackupFolder.open(plain.path))
    assert (skip.file_id, skip.relative_path, skip.reason) == (
        SMS,
        "Library/SMS/sms.db",
        "blob missing from the backup folder",
    )


@pytest.mark.parametrize("change", [-1, +1], ids=["shorter", "longer"])
def test_blob_of_the_wrong_size_is_skipped(plain: BuiltBackup, change: int) -> None:
    blob = plain.path / SMS[:2] / SMS
    data = blob.read_bytes()
    blob.write_bytes(data[:-1] if change < 0 else data + b"!")
    skip = only_skip(BackupFolder.open(plain.path))
    word = "shorter" if change < 0 else "longer"
    assert skip.file_id == SMS and skip.reason.startswith(f"blob is {word} than its recorded size")


@pytest.mark.parametrize("change", [-16, +16], ids=["shorter", "longer"])
def test_encrypted_blob_of_the_wrong_size_is_skipped(encrypted: BuiltBackup, change: int) -> None:
    blob = encrypted.path / SMS[:2] / SMS
    data = blob.read_bytes()
    blob.write_bytes(data[:change] if change < 0 else data + bytes(change))
    skip = only_skip(BackupFolder.open(encrypted.path, PASSWORD))
    assert skip.file_id == SMS and "than its recorded size" in skip.reason


def test_blob_that_is_a_symlink_is_skipped(plain: BuiltBackup, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"x" * plain.records[3].size)
    blob = plain.path / SMS[:2] / SMS
    blob.unlink()
    os.symlink(secret, blob)
    assert only_skip(BackupFolder.open(plain.path)).reason == "blob is not a regular file"


def test_blob_directory_that_is_a_symlink_is_skipped(plain: BuiltBackup, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (plain.path / SMS[:2]).rename(elsewhere)
    os.symlink(elsewhere, plain.path / SMS[:2])
    folder = BackupFolder.open(plain.path)
    assert only_skip(folder).reason == "blob directory is missing or is not a real directory"
    assert any("not a regular file or blob directory" in warning for warning in folder.warnings)


def test_blob_swapped_for_a_symlink_after_open_is_not_followed(plain: BuiltBackup, tmp_path: Path) -> None:
    folder = BackupFolder.open(plain.path)
    record = next(r for r in folder.records if r.file_id == SMS)
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * record.size)
    (plain.path / record.blob_name).unlink()
    os.symlink(secret, plain.path / record.blob_name)
    with pytest.raises(BackupFormatError, match="cannot read"):
        b"".join(folder.open_plaintext(record))


def test_malformed_file_record_is_skipped(plain: BuiltBackup) -> None:
    execute_on_manifest(plain, "UPDATE Files SET file = ? WHERE fileID = ?", (b"bplist00garbage", SMS))
    skip = only_skip(BackupFolder.open(plain.path))
    assert skip.file_id == SMS and skip.reason.startswith("unreadable file record")


def test_wrongly_typed_columns_are_skipped(plain: BuiltBackup) -> None:
    execute_on_manifest(plain, "UPDATE Files SET flags = 'file' WHERE fileID = ?", (SMS,))
    assert only_skip(BackupFolder.open(plain.path)).reason == "the row has wrongly typed columns"


def test_unknown_flags_are_skipped(plain: BuiltBackup) -> None:
    execute_on_manifest(plain, "UPDATE Files SET flags = 8 WHERE fileID = ?", (SMS,))
    assert only_skip(BackupFolder.open(plain.path)).reason == "unknown flags value 8"


def test_encrypted_row_without_a_key_is_skipped(encrypted: BuiltBackup) -> None:
    blob = encode_mbfile(relative_path="Library/SMS/sms.db", mode=0o100644, size=encrypted.records[3].size)
    execute_on_manifest(encrypted, "UPDATE Files SET file = ? WHERE fileID = ?", (blob, SMS))
    skip = only_skip(BackupFolder.open(encrypted.path, PASSWORD))
    assert skip.reason == "encrypted backup row without an EncryptionKey"


def test_encrypted_row_with_a_foreign_key_is_skipped(encrypted: BuiltBackup) -> None:
    foreign_key = b"\x03\x00\x00\x00" + bytes(40)
    blob = encode_mbfile(relative_path="Library/SMS/sms.db", mode=0o100644, size=1, wrapped_key=foreign_key)
    execute_on_manifest(encrypted, "UPDATE Files SET file = ? WHERE fileID = ?", (blob, SMS))
    assert "does not unwrap" in only_skip(BackupFolder.open(encrypted.path, PASSWORD)).reason


@pytest.mark.parametrize("name", ["Manifest.plist", "Info.plist", "Status.plist"])
@pytest.mark.parametrize("damage", ["truncated", "garbage", "not-a-dict"])
def test_damaged_plist_names_the_file(plain: BuiltBackup, name: str, damage: str) -> None:
    path = plain.path / name
    data = {
        "truncated": path.read_bytes()[: len(path.read_bytes()) // 2],
        "garbage": b"\x00\xffnot a plist",
        "not-a-dict": plistlib.dumps(["a", "list"]),
    }[damage]
    path.write_bytes(data)
    with pytest.raises(BackupFormatError, match=re.escape(name)):
        BackupFolder.open(plain.path)


@pytest.mark.parametrize("name", ["Manifest.plist", "Info.plist", "Status.plist", "Manifest.db"])
def test_missing_metadata_file_names_it(plain: BuiltBackup, name: str) -> None:
    (plain.path / name).unlink()
    with pytest.raises(BackupFormatError, match=re.escape(f"{name} is missing")):
        BackupFolder.open(plain.path)


def test_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(BackupFormatError, match="not a backup folder"):
        BackupFolder.open(tmp_path / "file")


def test_unparseable_keybag_raises_format_error(encrypted: BuiltBackup) -> None:
    path = encrypted.path / "Manifest.plist"
    manifest = plistlib.loads(path.read_bytes())
    manifest["BackupKeyBag"] = manifest["BackupKeyBag"][:-7]
    path.write_bytes(plistlib.dumps(manifest, fmt=plistlib.FMT_BINARY))
    with pytest.raises(BackupFormatError, match="keybag"):
        BackupFolder.open(encrypted.path, PASSWORD)


def test_encrypted_manifest_without_keybag_or_key(encrypted: BuiltBackup) -> None:
    path = encrypted.path / "Manifest.plist"
    manifest = plistlib.loads(path.read_bytes())
    del manifest["ManifestKey"]
    path.write_bytes(plistlib.dumps(manifest, fmt=plistlib.FMT_BINARY))
    with pytest.raises(BackupFormatError, match="no ManifestKey"):
        BackupFolder.open(encrypted.path, PASSWORD)
    del manifest["BackupKeyBag"]
    path.write_bytes(plistlib.dumps(manifest, fmt=plistlib.FMT_BINARY))
    with pytest.raises(BackupFormatError, match="no BackupKeyBag"):
        BackupFolder.open(encrypted.path, PASSWORD)


def test_is_encrypted_must_be_a_boolean(plain: BuiltBackup) -> None:
    path = plain.path / "Manifest.plist"
    manifest = plistlib.loads(path.read_bytes())
    manifest["IsEncrypted"] = "yes"
    path.write_bytes(plistlib.dumps(manifest, fmt=plistlib.FMT_BINARY))
    with pytest.raises(BackupFormatError, match="IsEncrypted"):
        BackupFolder.open(plain.path)


def test_damaged_manifest_db(plain: BuiltBackup) -> None:
    (plain.path / "Manifest.db").write_bytes(b"SQLite format 3\x00" + os.urandom(500))
    with pytest.raises(BackupFormatError, match=r"Manifest\.db"):
        BackupFolder.open(plain.path)


def test_damaged_encrypted_manifest_db(encrypted: BuiltBackup) -> None:
    path = encrypted.path / "Manifest.db"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(BackupFormatError, match=r"Manifest\.db cannot be decrypted"):
        BackupFolder.open(encrypted.path, PASSWORD)


def test_wrong_password_wins_over_damage(encrypted: BuiltBackup) -> None:
    (encrypted.path / "Manifest.db").write_bytes(b"damaged")
    with pytest.raises(WrongSecretError):
        BackupFolder.open(encrypted.path, "wrong")


def test_blob_changed_after_open_is_detected_while_streaming(plain: BuiltBackup) -> None:
    folder = BackupFolder.open(plain.path)
    record = next(r for r in folder.records if r.file_id == SMS)
    (plain.path / record.blob_name).write_bytes(b"short")
    with pytest.raises(BackupFormatError, match="recorded size"):
        b"".join(folder.open_plaintext(record))


@pytest.mark.parametrize("password", [None, PASSWORD])
def test_manifest_db_changed_after_open_is_refused_not_paired_with_the_old_rows(
    password: str | None, tmp_path: Path
) -> None:
    built = build_backup(tmp_path / "backup", password=password)
    folder = BackupFolder.open(built.path, password)
    before = folder.read_manifest_db()
    assert before == (built.path / "Manifest.db").read_bytes()
    plant_row(built, "0" * 40, "HomeDomain", "Library/planted")  # a row the records were not read from
    with pytest.raises(BackupFormatError, match=re.escape(str(built.path / "Manifest.db")) + " changed"):
        folder.read_manifest_db()
    (built.path / "Manifest.db").unlink()
    (built.path / "Manifest.db").symlink_to(built.path / "Info.plist")
    with pytest.raises(BackupFormatError, match="not a regular file"):
        folder.read_manifest_db()


def test_top_level_symlinks_and_stray_directories_are_ignored_with_a_warning(
    plain: BuiltBackup, tmp_path: Path
) -> None:
    (tmp_path / "outside").write_bytes(b"secret")
    os.symlink(tmp_path / "outside", plain.path / "link.plist")
    (plain.path / "Snapshot").mkdir()
    (plain.path / "notes.txt").write_bytes(b"kept")
    folder = BackupFolder.open(plain.path)
    assert folder.other_files == ["notes.txt"]
    assert len(folder.warnings) == 2


def test_writer_refuses_unsafe_names(tmp_path: Path, plain: BuiltBackup) -> None:
    folder = BackupFolder.open(plain.path)
    writer = BackupWriter(
        tmp_path / "out",
        info_plist=folder.info_plist,
        status_plist=folder.status_plist,
        manifest_plist=folder.manifest_plist,
        manifest_db_bytes=folder.read_manifest_db(),
    )
    record = next(r for r in folder.records if r.file_id == SMS)
    record.file_id = "../" + SMS[3:]
    with pytest.raises(BackupFormatError, match="40 lowercase hex"):
        writer.write_file(record, [b""])
    for name in ["../escape", "Manifest.db", "a/b", ".."]:
        with pytest.raises(BackupFormatError, match="refusing"):
            writer.write_other_file(name, b"")
    assert list((tmp_path / "out").rglob("*")) == []


def test_writer_rejects_content_of_the_wrong_size(tmp_path: Path, encrypted: BuiltBackup) -> None:
    folder = BackupFolder.open(encrypted.path, PASSWORD)
    writer = BackupWriter(
        tmp_path / "out",
        info_plist=folder.info_plist,
        status_plist=folder.status_plist,
        manifest_plist=folder.manifest_plist,
        manifest_db_bytes=folder.read_manifest_db(),
        class_keys=folder.class_keys,
    )
    record = next(r for r in folder.records if r.file_id == SMS)
    with pytest.raises(BackupFormatError, match="the manifest records"):
        writer.write_file(record, [b"too short"])
    assert not (tmp_path / "out" / record.blob_name).exists()
    assert not list((tmp_path / "out").rglob("*.partial"))


@pytest.mark.parametrize(
    ("domain", "path", "expected"),
    [
        ("HomeDomain", "Library/SMS/sms.db", "HomeDomain/Library/SMS/sms.db"),
        ("HomeDomain", "", "HomeDomain"),
        ("HomeDomain", "a//./b/", "HomeDomain/a/b"),
        ("AppDomain-x", "Documents/bell\x07.txt", "AppDomain-x/Documents/bell_.txt"),
        ("HomeDomain", "Library/../../etc/passwd", None),
        ("HomeDomain", "/etc/passwd", None),
        ("HomeDomain", "a\x00b", None),
        ("Home/Domain", "x", None),
        ("..", "x", None),
        ("", "x", None),
        ("HomeDomain", "x" * 256, None),
    ],
)
def test_safe_relative_path(domain: str, path: str, expected: str | None) -> None:
    result = safe_relative_path(domain, path)
    assert result == (None if expected is None else PurePosixPath(expected))


def test_safe_relative_path_never_escapes(tmp_path: Path) -> None:
    target = (tmp_path / "extract").resolve()
    hostile = [
        "..",
        ".",
        "../..",
        "a/../../b",
        "/abs",
        "./..",
        "...",
        "a/./../..",
        "\\..\\..",
        "..\x7f",
        "~root",
    ]
    for domain in ["HomeDomain", "..", ".", "a/b", "~"]:
        for path in hostile:
            safe = safe_relative_path(domain, path)
            if safe is not None:
                resolved = (target / safe).resolve()
                assert resolved.is_relative_to(target) and resolved != target, (domain, path)
