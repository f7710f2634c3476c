"""Backup folders: synthetic unencrypted and encrypted backups written with BackupWriter, read back by
BackupFolder and by the two reference readers, re-encrypted byte for byte, decrypted and subset copies."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest
from ios_helpers import PASSWORD, BuiltBackup, assert_same_tree, build_backup
from iphone_backup_decrypt import EncryptedBackup
from pyiosbackup.backup import Backup

from agent.errors import WrongSecretError
from agent.ios.encryption import decrypt_manifest_db
from agent.ios.folder import BackupFolder, BackupWriter
from agent.ios.records import FileRecord


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> BuiltBackup:
    return build_backup(tmp_path_factory.mktemp("encrypted") / "00008030-001A2B3C4D5E6F70", password=PASSWORD)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> BuiltBackup:
    return build_backup(tmp_path_factory.mktemp("plain") / "00008030-001A2B3C4D5E6F70")


def read_all(folder: BackupFolder) -> dict[str, bytes]:
    return {r.file_id: b"".join(folder.open_plaintext(r)) for r in folder.records if r.is_file}


def pyiosbackup_contents(path: Path, password: str = "") -> dict[str, bytes]:
    backup = Backup.from_path(path, password)
    return {entry.file_id: entry.read_bytes() for entry in backup.iter_files()}


def test_encrypted_backup_decrypts_with_pyiosbackup(encrypted: BuiltBackup) -> None:
    assert pyiosbackup_contents(encrypted.path, PASSWORD) == encrypted.contents


def test_encrypted_backup_decrypts_with_iphone_backup_decrypt(encrypted: BuiltBackup) -> None:
    backup = EncryptedBackup(backup_directory=str(encrypted.path), passphrase=PASSWORD)
    for record in encrypted.records:
        if record.is_file:
            extracted = backup.extract_file_as_bytes(record.relative_path, domain_like=record.domain)
            assert extracted == encrypted.contents[record.file_id], record.relative_path


def test_encrypted_folder_opens_and_streams_plaintext(encrypted: BuiltBackup) -> None:
    folder = BackupFolder.open(encrypted.path, PASSWORD)
    assert folder.is_encrypted and folder.class_keys == encrypted.class_keys
    assert folder.records == encrypted.records
    assert folder.skipped == [] and folder.warnings == [] and folder.other_files == []
    assert read_all(folder) == encrypted.contents
    assert folder.device.udid == "00008030-001A2B3C4D5E6F70" and folder.device.product_version == "14.3"
    assert folder.manifest_plist == (encrypted.path / "Manifest.plist").read_bytes()
    assert folder.read_manifest_db() == (encrypted.path / "Manifest.db").read_bytes()


def test_large_file_streams_in_pieces_of_about_a_mebibyte(encrypted: BuiltBackup) -> None:
    folder = BackupFolder.open(encrypted.path, PASSWORD)
    photo = next(r for r in folder.records if r.domain == "CameraRollDomain")
    pieces = list(folder.open_plaintext(photo))
    assert len(pieces) >= 3 and max(len(p) for p in pieces) <= (1 << 20) + 16
    assert b"".join(pieces) == encrypted.contents[photo.file_id]


def test_unencrypted_folder_opens_and_pyiosbackup_agrees(plain: BuiltBackup) -> None:
    folder = BackupFolder.open(plain.path)
    assert not folder.is_encrypted and folder.class_keys is None
    assert folder.records == plain.records
    assert read_all(folder) == plain.contents == pyiosbackup_contents(plain.path)
    assert folder.read_manifest_db() == (plain.path / "Manifest.db").read_bytes()


def test_password_for_unencrypted_backup_is_ignored_with_a_warning(plain: BuiltBackup) -> None:
    folder = BackupFolder.open(plain.path, "anything")
    assert folder.records == plain.records
    assert folder.warnings == ["a backup password was given, but this backup is not encrypted"]


def test_missing_password_is_a_wrong_secret(encrypted: BuiltBackup) -> None:
    with pytest.raises(WrongSecretError, match="this backup is encrypted: give its password"):
        BackupFolder.open(encrypted.path)


def test_wrong_password_is_checked_before_anything_else(encrypted: BuiltBackup, tmp_path: Path) -> None:
    # Only Manifest.plist is present: the password check must come before any other file is needed.
    (tmp_path / "Manifest.plist").write_bytes((encrypted.path / "Manifest.plist").read_bytes())
    with pytest.raises(WrongSecretError, match="wrong backup password"):
        BackupFolder.open(tmp_path, "not the password")
    with pytest.raises(WrongSecretError, match="wrong backup password"):
        BackupFolder.open(encrypted.path, "not the password")


def copy_folder(folder: BackupFolder, writer: BackupWriter, records: list[FileRecord] | None = None) -> None:
    for record in folder.records if records is None else records:
        if record.is_file:
            writer.write_file(record, folder.open_plaintext(record))
    for name in folder.other_files:
        writer.write_other_file(name, (folder.path / name).read_bytes())
    writer.finish()


def test_reencrypting_with_the_original_keys_reproduces_every_byte(
    encrypted: BuiltBackup, tmp_path: Path
) -> None:
    (encrypted.path / "extra.plist").write_bytes(b"kept by export")
    try:
        folder = BackupFolder.open(encrypted.path, PASSWORD)
        assert folder.other_files == ["extra.plist"]
        copy = tmp_path / "copy"
        writer = BackupWriter(
            copy,
            info_plist=folder.info_plist,
            status_plist=folder.status_plist,
            manifest_plist=folder.manifest_plist,
            manifest_db_bytes=folder.read_manifest_db(),
            class_keys=folder.class_keys,
        )
        copy_folder(folder, writer)
        assert_same_tree(encrypted.path, copy)
    finally:
        (encrypted.path / "extra.plist").unlink()


def test_plain_copy_reproduces_every_byte(plain: BuiltBackup, tmp_path: Path) -> None:
    folder = BackupFolder.open(plain.path)
    writer = BackupWriter(
        tmp_path / "copy",
        info_plist=folder.info_plist,
        status_plist=folder.status_plist,
        manifest_plist=folder.manifest_plist,
        manifest_db_bytes=folder.read_manifest_db(),
    )
    copy_folder(folder, writer)
    assert_same_tree(plain.path, tmp_path / "copy")


def test_decrypted_copy_is_a_valid_unencrypted_backup(encrypted: BuiltBackup, tmp_path: Path) -> None:
    folder = BackupFolder.open(encrypted.path, PASSWORD)
    assert folder.class_keys is not None
    plaintext_db = decrypt_manifest_db(folder.class_keys, folder.manifest["ManifestKey"], folder.read_manifest_db())
    target = tmp_path / "decrypted"
    writer = BackupWriter.decrypted(
        target,
        info_plist=folder.info_plist,
        status_plist=folder.status_plist,
        manifest_plist=folder.manifest_plist,
        plaintext_manifest_db=plaintext_db,
    )
    copy_folder(folder, writer)
    manifest = plistlib.loads((target / "Manifest.plist").read_bytes())
    assert manifest["IsEncrypted"] is False and "ManifestKey" not in manifest
    assert manifest["BackupKeyBag"] == folder.manifest["BackupKeyBag"]
    assert (target / "Manifest.db").read_bytes() == plaintext_db
    assert pyiosbackup_contents(target) == encrypted.contents
    reopened = BackupFolder.open(target)
    assert not reopened.is_encrypted and reopened.records == folder.records
    assert read_all(reopened) == encrypted.contents


@pytest.mark.parametrize("decrypt", [False, True], ids=["encrypted", "decrypted"])
def test_subset_of_an_encrypted_backup(encrypted: BuiltBackup, tmp_path: Path, decrypt: bool) -> None:
    folder = BackupFolder.open(encrypted.path, PASSWORD)
    subset = [r for r in folder.records if r.domain == "HomeDomain"]
    target = tmp_path / "subset"
    writer = BackupWriter.subset(
        target,
        info_plist=folder.info_plist,
        status_plist=folder.status_plist,
        manifest_plist=folder.manifest_plist,
        records=subset,
        class_keys=folder.class_keys,
        decrypt=decrypt,
    )
    copy_folder(folder, writer, subset)
    expected = {r.file_id: encrypted.contents[r.file_id] for r in subset if r.is_file}
    assert pyiosbackup_contents(target, "" if decrypt else PASSWORD) == expected
    reopened = BackupFolder.open(target, None if decrypt else PASSWORD)
    assert reopened.records == subset and reopened.is_encrypted is not decrypt
    assert read_all(reopened) == expected
    if not decrypt:  # blobs are the device's ciphertext, untouched
        for record in subset:
            if record.is_file:
                blob = record.blob_name
                assert (target / blob).read_bytes() == (encrypted.path / blob).read_bytes()


def test_subset_of_an_unencrypted_backup(plain: BuiltBackup, tmp_path: Path) -> None:
    folder = BackupFolder.open(plain.path)
    subset = [r for r in folder.records if r.domain != "HomeDomain"]
    writer = BackupWriter.subset(
        tmp_path / "subset",
        info_plist=folder.info_plist,
        status_plist=folder.status_plist,
        manifest_plist=folder.manifest_plist,
        records=subset,
    )
    copy_folder(folder, writer, subset)
    assert pyiosbackup_contents(tmp_path / "subset") == {
        r.file_id: plain.contents[r.file_id] for r in subset if r.is_file
    }
