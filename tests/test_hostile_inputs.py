"""Hostile backup folders through the real CLI (issue 15, point 5): each input below once ended in "internal
error"; now `coffer import`, `extract` and `export` give one line `coffer: …` naming the file at fault, or record
the row as skipped while the rest of the backup is imported and restored."""

from __future__ import annotations

import plistlib
import struct
from pathlib import Path

import pytest
from conftest import CofferCli
from ios_helpers import PASSWORD, SAMPLE_ENTRIES, BuiltBackup, Entry, build_backup, execute_on_manifest

from agent.archive.view import open_view
from agent.ios.mbfile import decode_mbfile, encode_mbfile
from agent.ios.records import file_id_for
from agent.sim.server import SimServer

SMS = "3d0d7e5fb2ce288813306e4d4636395e047a3d28"  # sha1("HomeDomain-Library/SMS/sms.db")


def refused(coffer: CofferCli, backup: Path, culprit: str) -> str:
    """`coffer import` fails with exit 1 and exactly one line naming `culprit`; returns that line."""
    coffer.init()
    run = coffer("import", backup, expect=1)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coffer: "), run.describe()
    assert culprit in lines[0] and "internal error" not in lines[0], run.describe()
    return lines[0]


def skipped_lines(run_stderr: str) -> list[str]:
    return [line for line in run_stderr.splitlines() if line.startswith("skipped ")]


def test_an_info_plist_date_that_is_not_a_date(coffer: CofferCli, tmp_path: Path) -> None:
    built = build_backup(tmp_path / "backup")
    info = built.path / "Info.plist"
    info.write_bytes(info.read_bytes().replace(b"<dict>", b"<dict><key>Last Backup Date</key><date>not-a-date</date>", 1))
    line = refused(coffer, built.path, str(info))
    assert "<date>" in line


def test_a_status_plist_in_an_unknown_encoding(coffer: CofferCli, tmp_path: Path) -> None:
    built = build_backup(tmp_path / "backup")
    status = built.path / "Status.plist"
    body = plistlib.dumps({"SnapshotState": "finished", "IsFullBackup": True})
    status.write_bytes(body.replace(b'encoding="UTF-8"', b'encoding="UTF-1"'))
    assert b"UTF-1" in status.read_bytes()
    refused(coffer, built.path, str(status))


def test_a_manifest_db_schema_with_a_byte_that_is_not_utf8(coffer: CofferCli, tmp_path: Path) -> None:
    built = build_backup(tmp_path / "backup")
    database = built.path / "Manifest.db"
    data = bytearray(database.read_bytes())
    data[data.index(b"CREATE INDEX FilesFlagsIdx") + 2] = 0xFF  # sqlite quotes it in its error message
    database.write_bytes(bytes(data))
    line = refused(coffer, built.path, str(database))
    assert "UTF-8" in line


def test_a_row_with_text_that_is_not_utf8_is_skipped_alone(coffer: CofferCli, tmp_path: Path) -> None:
    built = build_backup(tmp_path / "backup")
    execute_on_manifest(built, "UPDATE Files SET relativePath = CAST(X'4C6962FF' AS TEXT) WHERE fileID = ?", (SMS,))
    coffer.init()
    run = coffer("--json", "import", built.path)
    assert [s["file_id"] for s in run.json()["skipped"]] == [SMS], run.describe()
    assert skipped_lines(run.stderr) == ["skipped HomeDomain/b'Lib\\xff': the row has wrongly typed columns"]


@pytest.mark.parametrize("path", [".", ""], ids=["dot", "empty"])
def test_a_file_row_that_names_its_domain_is_skipped_and_the_rest_extracts(
    coffer: CofferCli, tmp_path: Path, path: str
) -> None:
    built = build_backup(tmp_path / "backup")
    file_id = file_id_for("HomeDomain", path)
    blob = encode_mbfile(relative_path=path, mode=0o100644, size=3)
    execute_on_manifest(built, "INSERT OR REPLACE INTO Files VALUES (?, 'HomeDomain', ?, 1, ?)", (file_id, path, blob))
    (built.path / file_id[:2]).mkdir(exist_ok=True)
    (built.path / file_id[:2] / file_id).write_bytes(b"abc")
    coffer.init()
    run = coffer("import", built.path)
    assert skipped_lines(run.stderr) == [
        f"skipped HomeDomain/{path}: a file or symlink row whose relativePath names no file (empty or '.')"
    ]
    out = tmp_path / "extract"
    coffer("extract", "latest", out)
    assert (out / "HomeDomain" / "Library" / "SMS" / "sms.db").read_bytes() == built.contents[SMS]
    coffer("export", "latest", tmp_path / "export")


def test_files_whose_names_collide_once_cleaned_are_skipped_at_extract(coffer: CofferCli, tmp_path: Path) -> None:
    """Names a device may send that pass the row checks but cannot all be files: `a` next to `a/b`, and `a//b`
    next to `a/b`. Extract writes one of each and reports the others; it used to stop on IsADirectoryError."""
    entries = (
        *SAMPLE_ENTRIES,
        Entry("HomeDomain", "Library/Clash", b"a file"),
        Entry("HomeDomain", "Library/Clash/inside", b"a file below it"),
        Entry("HomeDomain", "Library//Clash/inside", b"the same name"),
    )
    built = build_backup(tmp_path / "backup", entries)
    coffer.init()
    coffer("import", built.path)
    out = tmp_path / "extract"
    run = coffer("--json", "extract", "latest", out)
    reasons = {(s["path"], s["reason"]) for s in run.json()["skipped"]}
    assert ("Library/Clash", "its name is also the folder of other files") in reasons, run.describe()
    assert any(path.endswith("Clash/inside") and "same name" in reason for path, reason in reasons)
    assert (out / "HomeDomain" / "Library" / "Clash" / "inside").is_file()
    assert (out / "HomeDomain" / "Library" / "SMS" / "sms.db").read_bytes() == built.contents[SMS]


def _wide_integer_blob(built: BuiltBackup) -> bytes:
    """The sms.db row's MBFile with an InodeNumber of 2^70: a binary plist can hold 128-bit integers."""
    record = next(r for r in built.records if r.file_id == SMS)
    archive = plistlib.loads(record.blob)
    archive["$objects"][1]["InodeNumber"] = 2**64 - 1  # written as a 16-byte integer ...
    blob = plistlib.dumps(archive, fmt=plistlib.FMT_BINARY)
    wide = blob.replace(b"\x14" + (2**64 - 1).to_bytes(16, "big"), b"\x14" + (2**70).to_bytes(16, "big"))
    assert wide != blob and plistlib.loads(wide)["$objects"][1]["InodeNumber"] == 2**70  # ... then widened
    return wide


def test_mbfile_integers_wider_than_64_bits_are_skipped_before_they_reach_a_restore(
    coffer: CofferCli, tmp_path: Path
) -> None:
    built = build_backup(tmp_path / "backup", password=PASSWORD)
    execute_on_manifest(built, "UPDATE Files SET file = ? WHERE fileID = ?", (_wide_integer_blob(built), SMS))
    (tmp_path / "password").write_text(PASSWORD)
    coffer.init()
    run = coffer("import", built.path, "--backup-password-file", tmp_path / "password")
    assert skipped_lines(run.stderr) == [
        "skipped HomeDomain/Library/SMS/sms.db: unreadable file record: "
        f"an MBFile InodeNumber ({2**70}) does not fit in 64 bits"
    ]
    coffer("export", "latest", tmp_path / "export", "--decrypt")
    # What a re-keyed restore does to every row of the snapshot: decode and encode again.
    for _, _, record in open_view(coffer.open(), "latest", None).records():
        encode_mbfile(**decode_mbfile(record.blob))


def _object_offset(data: bytes, encoded: bytes) -> int:
    """Where the object encoded as `encoded` starts in a binary plist, found through its offset table (the same
    bytes may also occur by chance inside the random data or a blob)."""
    offset_size, _, count, _, table = struct.unpack(">6xBBQQQ", data[-32:])
    for index in range(count):
        start = table + index * offset_size
        offset = int.from_bytes(data[start:start + offset_size], "big")
        if data[offset:offset + len(encoded)] == encoded:
            return offset
    raise AssertionError(f"no object {encoded!r} in the plist")


def _manifest_plist_with(built: BuiltBackup, hostile: str) -> None:
    """Manifest.plist holding what plistlib reads but cannot write back (found by tests/fuzz/fuzz_plist.py)."""
    path = built.path / "Manifest.plist"
    manifest = plistlib.loads(path.read_bytes())
    if hostile == "integer-key":  # a binary plist dictionary may have any object as a key
        manifest["Lockdown"]["Q"] = 1
        data = bytearray(plistlib.dumps(manifest, fmt=plistlib.FMT_BINARY))
        data[_object_offset(data, b"\x51Q")] = 0x10  # the 1-character string "Q" becomes the integer 81
        path.write_bytes(data)
        assert 81 in plistlib.loads(path.read_bytes())["Lockdown"]
    else:  # an XML integer beyond 64 bits
        manifest["Applications"] = {"big": 1}
        path.write_bytes(plistlib.dumps(manifest).replace(b"<integer>1</integer>", b"<integer>" + b"9" * 30 + b"</integer>"))


@pytest.mark.parametrize("hostile", ["integer-key", "wide-integer"])
def test_a_manifest_plist_that_could_not_be_written_back_is_refused_at_import(
    coffer: CofferCli, tmp_path: Path, hostile: str
) -> None:
    """It used to import, and `export --decrypt` of the snapshot then ended in an internal error."""
    built = build_backup(tmp_path / "backup")
    _manifest_plist_with(built, hostile)
    line = refused(coffer, built.path, str(built.path / "Manifest.plist"))
    assert "cannot be written back" in line


def test_a_manifest_db_that_sqlite_answers_with_out_of_memory(coffer: CofferCli, tmp_path: Path) -> None:
    """Found by tests/fuzz/fuzz_manifest_db.py: a damaged schema for which sqlite reports SQLITE_NOMEM, which Python
    raises as MemoryError (it used to end in "internal error: MemoryError")."""
    built = build_backup(tmp_path / "backup")
    database = built.path / "Manifest.db"
    database.write_bytes((Path(__file__).parent / "fuzz" / "crashes" / "manifest_db-sqlite-nomem").read_bytes())
    line = refused(coffer, built.path, str(database))
    assert "sqlite cannot load its schema" in line


def test_a_selective_restore_of_such_an_import_re_keys_every_row(coffer: CofferCli, tmp_path: Path, sim: SimServer) -> None:
    """The re-keyed restore path itself (a selective restore merges rows and re-encodes each MBFile): with the wide
    integer row skipped at import, restoring the import's messages and photos onto a phone works; it used to end
    in "internal error: OverflowError"."""
    built = build_backup(tmp_path / "backup", password=PASSWORD)
    execute_on_manifest(built, "UPDATE Files SET file = ? WHERE fileID = ?", (_wide_integer_blob(built), SMS))
    (tmp_path / "password").write_text(PASSWORD)
    coffer.env.update({"USBMUXD_SOCKET_ADDRESS": sim.address, "HOME": str(tmp_path / "home"),
                       "COFFER_PAIR_RECORDS_DIR": str(tmp_path / "pair-records")})
    coffer.init()
    snapshot = coffer("--json", "import", built.path, "--backup-password-file", tmp_path / "password").json()["id"]
    target = sim.add_device(profile="tiny", seed=15)
    coffer("restore", snapshot, "--to-udid", target.udid, "--categories", "messages,photos", "--yes")
    restored = sim.device(target.udid).filesystem.snapshot_digest()
    assert "CameraRollDomain/Media/DCIM/100APPLE/IMG_0001.HEIC" in restored


def _reference_bomb(levels: int) -> list[object]:
    """A list whose binary plist is a few hundred bytes: each level refers to the one below eight times, so it is
    8**levels nodes once written out (plistlib's writer stores each shared list once)."""
    value: list[object] = ["x"]
    for _ in range(levels):
        value = [value] * 8
    return value


@pytest.mark.parametrize("culprit", ["Info.plist", "Manifest.plist"])
@pytest.mark.parametrize("shape", ["bomb", "cycle"])
def test_a_plist_whose_references_expand_without_bound_is_refused_at_once(
    coffer: CofferCli, tmp_path: Path, culprit: str, shape: str
) -> None:
    """Found by tests/fuzz/fuzz_plist.py: a 535-byte Info.plist whose "Device Name" expands to 8**40 nodes made
    import run until memory ran out (reading the device name walked the tree). A cycle is refused the same way."""
    built = build_backup(tmp_path / "backup")
    path = built.path / culprit
    plist = plistlib.loads(path.read_bytes())
    if shape == "bomb":
        hostile: list[object] = _reference_bomb(40)
    else:
        hostile = []
        hostile.append(hostile)
    if culprit == "Info.plist":
        plist["Device Name"] = hostile
    else:
        plist["Lockdown"]["DeviceName"] = hostile
    data = plistlib.dumps(plist, fmt=plistlib.FMT_BINARY)
    assert len(data) < 64 * 1024
    path.write_bytes(data)
    line = refused(coffer, built.path, str(path))
    assert ("expand beyond" if shape == "bomb" else "contains itself") in line
