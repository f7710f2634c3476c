"""Fuzz the backup-folder layer that `coffer import` reads: each input drives a series of edits to a real,
small backup folder (plain or encrypted) — plists replaced, re-valued or damaged, Manifest.db rows planted or
altered, blobs resized, removed or swapped for symlinks — and the folder is then opened and read the way
`import`, `extract` and `export` read it. Every outcome must be a usable folder, recorded skips, or a
CofferError."""

from __future__ import annotations

import os
import plistlib
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import atheris
from harness import fuzz, instrumented

with instrumented():
    from agent.errors import CofferError
    from agent.ios.categories import classify
    from agent.ios.encryption import decrypt_manifest_db, encrypt_manifest_db
    from agent.ios.folder import BackupFolder, BackupWriter, decrypted_manifest_plist
    from agent.ios.mbfile import encode_mbfile
    from agent.ios.plists import PLIST_ERRORS, PLIST_WRITE_ERRORS
    from agent.ios.records import file_id_for
    from agent.ios.safety import file_id_problem, safe_relative_path

from ios_helpers import PASSWORD, Entry, build_backup, directory, symlink

ENTRIES = (
    directory("HomeDomain", ""),
    directory("HomeDomain", "Library"),
    Entry("HomeDomain", "Library/SMS/sms.db", b"SQLite format 3\x00" + bytes(range(200))),
    Entry("HomeDomain", "Library/Preferences/empty.plist", b""),
    Entry("CameraRollDomain", "Media/DCIM/100APPLE/IMG_0001.HEIC", bytes(range(251)) * 4),
    symlink("HomeDomain", "Library/Links/latest", "../SMS/sms.db"),
    Entry("KeychainDomain", "keychain-backup.plist", b"<plist/>", protection_class=11),
)
PLISTS = ("Info.plist", "Status.plist", "Manifest.plist")
METADATA = (*PLISTS, "Manifest.db")
PLIST_KEYS = ("IsEncrypted", "ManifestKey", "BackupKeyBag", "Lockdown", "Applications", "Date", "Version",
              "SnapshotState", "Unique Identifier", "Product Version", "Target Identifier")
COLUMNS = ("fileID", "domain", "relativePath", "flags", "file")
# An edit that cannot be made because an earlier edit already damaged what it edits (the plist it reads, the
# database it opens) is skipped: the harness's own failures are not findings.
PLANTING_ERRORS = (sqlite3.Error, CofferError, *PLIST_ERRORS, *PLIST_WRITE_ERRORS)
# Each case copies a folder and edits it: in memory where the machine has a tmpfs, since disk metadata costs
# milliseconds an operation.
# tests/test_fuzz.py names (and removes) the folder; libFuzzer leaves by exit(), which runs no Python clean-up.
WORK = Path(os.environ.get("COFFER_FUZZ_WORK") or tempfile.mkdtemp(
    prefix="coffer-fuzz-folder-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
BASES = {False: build_backup(WORK / "plain", ENTRIES), True: build_backup(WORK / "encrypted", ENTRIES, password=PASSWORD)}


def _value(fdp: atheris.FuzzedDataProvider) -> Any:
    """A plist or SQLite value of a fuzzed type."""
    kind = fdp.ConsumeIntInRange(0, 6)
    if kind == 0:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 17))
    if kind == 1:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40))
    if kind == 2:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 60))
    if kind == 3:
        return fdp.ConsumeBool()
    if kind == 4:
        return {fdp.ConsumeUnicodeNoSurrogates(8): fdp.ConsumeUnicodeNoSurrogates(8)}
    if kind == 5:
        return [fdp.ConsumeInt(2)]
    return None


def _edit_manifest_db(folder: Path, encrypted: bool, statement: str, parameters: tuple[Any, ...]) -> None:
    path = folder / "Manifest.db"
    keys = BASES[True].class_keys if encrypted else None
    manifest_key = plistlib.loads((folder / "Manifest.plist").read_bytes()).get("ManifestKey") if keys else None
    data = path.read_bytes()
    if keys is not None:
        data = decrypt_manifest_db(keys, manifest_key, data)
    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(data)
        connection.execute(statement, parameters)
        connection.commit()
        data = connection.serialize()
    finally:
        connection.close()
    path.write_bytes(data if keys is None else encrypt_manifest_db(keys, manifest_key, data))


def _plant_row(fdp: atheris.FuzzedDataProvider, folder: Path, encrypted: bool) -> None:
    domain = fdp.PickValueInList(["HomeDomain", "CameraRollDomain", fdp.ConsumeUnicodeNoSurrogates(12)])
    path = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 30))
    flags = fdp.PickValueInList([1, 2, 4, fdp.ConsumeInt(2)])
    file_id = file_id_for(domain, path) if fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(40)
    if fdp.ConsumeBool():
        blob: Any = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))
    else:
        size = fdp.ConsumeIntInRange(0, 300)
        wrapped = fdp.ConsumeBytes(44) if fdp.ConsumeBool() else None
        if wrapped is not None and len(wrapped) != 44:
            wrapped = None
        blob = encode_mbfile(relative_path=path, mode=fdp.ConsumeIntInRange(0, 0o177777), size=size,
                             mtime=fdp.ConsumeIntInRange(-(1 << 40), 1 << 40), wrapped_key=wrapped,
                             target=fdp.ConsumeUnicodeNoSurrogates(10) if fdp.ConsumeBool() else None)
        # Only a well-formed fileID gets a blob: a fuzzed one like "../../x" would have the harness write outside
        # its folder (refusing such rows is the parser's job, tested by the rows themselves).
        if file_id_problem(file_id) is None and fdp.ConsumeBool():
            blob_path = folder / file_id[:2] / file_id
            blob_path.parent.mkdir(exist_ok=True)
            blob_path.write_bytes(bytes(size + fdp.ConsumeIntInRange(-1, 1) * 16 * encrypted))
    _edit_manifest_db(folder, encrypted, "INSERT OR REPLACE INTO Files VALUES (?, ?, ?, ?, ?)",
                      (file_id, domain, path, flags, blob))


def _blob_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("??/*") if not p.is_symlink())


def _edit(fdp: atheris.FuzzedDataProvider, folder: Path, encrypted: bool) -> None:
    operation = fdp.ConsumeIntInRange(0, 8)
    name = fdp.PickValueInList(list(METADATA))
    path = folder / name
    if operation == 0 and name in PLISTS:  # replace a plist outright
        path.write_bytes(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 400)))
    elif operation == 1 and path.is_file():  # flip one byte
        data = bytearray(path.read_bytes())
        if data:
            data[fdp.ConsumeIntInRange(0, len(data) - 1)] = fdp.ConsumeInt(1) & 0xFF
            path.write_bytes(bytes(data))
    elif operation == 2 and path.is_file():  # truncate
        data = path.read_bytes()
        path.write_bytes(data[: fdp.ConsumeIntInRange(0, len(data))])
    elif operation == 3 and name in PLISTS:  # one value of a plist, of any type
        try:
            value = plistlib.loads(path.read_bytes())
            value[fdp.PickValueInList(list(PLIST_KEYS))] = _value(fdp)
            xml = fdp.ConsumeBool()
            path.write_bytes(plistlib.dumps(value, fmt=plistlib.FMT_XML if xml else plistlib.FMT_BINARY))
        except (*PLIST_ERRORS, *PLIST_WRITE_ERRORS):
            pass  # already damaged, or a value plistlib cannot write: nothing to plant
    elif operation == 4:
        try:
            _plant_row(fdp, folder, encrypted)
        except PLANTING_ERRORS:
            pass  # Manifest.db or Manifest.plist already damaged: nothing to plant into
    elif operation == 5:
        try:
            _edit_manifest_db(folder, encrypted,
                              f"UPDATE Files SET {fdp.PickValueInList(list(COLUMNS))} = ? WHERE rowid = ?",
                              (_value(fdp) if fdp.ConsumeBool() else None, fdp.ConsumeIntInRange(1, 8)))
        except PLANTING_ERRORS:
            pass
    elif blobs := _blob_files(folder):
        blob = fdp.PickValueInList(blobs)
        if operation == 6:  # resize a blob
            blob.write_bytes(blob.read_bytes()[: fdp.ConsumeIntInRange(0, 64)] + fdp.ConsumeBytes(16))
        elif operation == 7:  # a blob or its directory becomes a symlink
            target = blob.parent if fdp.ConsumeBool() else blob
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
            os.symlink(folder / "Info.plist", target)
        else:
            blob.unlink()


def _read(folder: BackupFolder, out: Path) -> None:
    """What import, extract and export do with an opened folder."""
    for record in folder.records:
        safe_relative_path(record.domain, record.relative_path)
        classify(record.domain, record.relative_path)
        if record.is_file:
            b"".join(folder.open_plaintext(record))
    # The subset export builds (and for an encrypted folder re-encrypts) a Manifest.db of the usable records;
    # `finish` would only write it out.
    BackupWriter.subset(out, info_plist=folder.info_plist, status_plist=folder.status_plist,
                        manifest_plist=folder.manifest_plist, records=folder.records,
                        class_keys=folder.class_keys, decrypt=not folder.is_encrypted)
    decrypted_manifest_plist(folder.manifest_plist)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    encrypted = fdp.ConsumeBool()
    case = WORK / "case"
    shutil.rmtree(case, ignore_errors=True)
    shutil.copytree(BASES[encrypted].path, case / "backup", symlinks=True)
    for _ in range(fdp.ConsumeIntInRange(1, 6)):  # a few edits per case: each is a full decode-edit-encode
        _edit(fdp, case / "backup", encrypted)
    try:
        folder = BackupFolder.open(case / "backup", PASSWORD if encrypted or fdp.ConsumeBool() else None)
        _read(folder, case / "out")
    except CofferError:
        pass


if __name__ == "__main__":
    fuzz(test_one_input)
