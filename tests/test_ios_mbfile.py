"""MBFile archives (the Manifest.db `file` column) and FileRecord."""

from __future__ import annotations

import plistlib
from plistlib import UID

import pytest
from bpylist2 import archiver
from pyiosbackup.manifest_dbs.sqlite3 import MBFile as PyiosbackupMBFile

from agent.errors import BackupFormatError
from agent.ios.mbfile import MODE_DIRECTORY, MODE_SYMLINK, decode_mbfile, encode_mbfile
from agent.ios.records import FLAG_DIRECTORY, FLAG_FILE, FLAG_SYMLINK, FileRecord, file_id_for

WRAPPED = b"\x03\x00\x00\x00" + bytes(range(40))
FULL_FIELDS = {
    "relative_path": "Media/PhotoData/momentanalysis",
    "mode": 0o100644,
    "size": 1234,
    "mtime": 1610659523,
    "ctime": 1610659524,
    "birth": 1610659500,
    "uid": 501,
    "gid": 501,
    "inode": 55569,
    "protection_class": 3,
    "flags": 0,
    "wrapped_key": WRAPPED,
    "target": None,
    "extended_attributes": plistlib.dumps({"com.apple.metadata": b"x"}, fmt=plistlib.FMT_BINARY),
    "digest": bytes(20),
}


def test_round_trip_every_field() -> None:
    assert decode_mbfile(encode_mbfile(**FULL_FIELDS)) == FULL_FIELDS
    assert encode_mbfile(**decode_mbfile(encode_mbfile(**FULL_FIELDS))) == encode_mbfile(**FULL_FIELDS)


def test_layout_matches_the_real_sample() -> None:
    fields = {k: v for k, v in FULL_FIELDS.items() if k not in ("extended_attributes", "digest")}
    fields["ctime"] = fields["birth"] = fields["mtime"]
    archive = plistlib.loads(encode_mbfile(**fields))
    assert list(archive) == ["$version", "$archiver", "$top", "$objects"]
    assert archive["$version"] == 100000 and archive["$archiver"] == "NSKeyedArchiver"
    assert archive["$top"] == {"root": UID(1)}
    objects = archive["$objects"]
    assert objects[0] == "$null"
    expected_record = {
        "$class": UID(5),
        "RelativePath": UID(2),
        "LastModified": 1610659523,
        "LastStatusChange": 1610659523,
        "Birth": 1610659523,
        "Size": 1234,
        "Mode": 33188,
        "UserID": 501,
        "GroupID": 501,
        "InodeNumber": 55569,
        "Flags": 0,
        "ProtectionClass": 3,
        "EncryptionKey": UID(3),
    }
    assert objects[1] == expected_record
    assert list(objects[1]) == list(expected_record)  # the key order of the real sample
    assert objects[2] == "Media/PhotoData/momentanalysis"
    assert objects[3] == {"NS.data": WRAPPED, "$class": UID(4)}
    assert objects[4] == {"$classname": "NSMutableData", "$classes": ["NSMutableData", "NSData", "NSObject"]}
    assert objects[5] == {"$classname": "MBFile", "$classes": ["MBFile", "NSObject"]}


def test_symlink_carries_target_and_unencrypted_rows_have_no_key() -> None:
    archive = plistlib.loads(encode_mbfile(relative_path="a/link", mode=MODE_SYMLINK, target="../b"))
    record = archive["$objects"][1]
    assert "EncryptionKey" not in record
    assert archive["$objects"][record["Target"].data] == "../b"
    assert archive["$objects"][record["$class"].data]["$classname"] == "MBFile"


def test_pyiosbackup_decoder_reads_our_archive() -> None:
    decoded = archiver.unarchive(encode_mbfile(**FULL_FIELDS))
    assert isinstance(decoded, PyiosbackupMBFile)
    assert (decoded.relative_path, decoded.size, decoded.mode, decoded.encryption_key) == (
        FULL_FIELDS["relative_path"],
        1234,
        0o100644,
        WRAPPED,
    )


def test_decode_tolerates_missing_optional_keys() -> None:
    minimal = {
        "$version": 100000,
        "$archiver": "NSKeyedArchiver",
        "$top": {"root": UID(1)},
        "$objects": [
            "$null",
            {"$class": UID(3), "RelativePath": UID(2), "Mode": MODE_DIRECTORY},
            "Library",
            {},
        ],
    }
    fields = decode_mbfile(plistlib.dumps(minimal, fmt=plistlib.FMT_BINARY))
    assert fields["relative_path"] == "Library"
    assert fields["mode"] == MODE_DIRECTORY
    assert (fields["size"], fields["mtime"], fields["wrapped_key"], fields["target"]) == (0, 0, None, None)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"bplist00",
        encode_mbfile(**FULL_FIELDS)[:-20],
        plistlib.dumps(["not", "a", "dict"], fmt=plistlib.FMT_BINARY),
        plistlib.dumps({"$objects": ["$null"], "$top": {"root": UID(7)}}, fmt=plistlib.FMT_BINARY),
        plistlib.dumps(
            {"$objects": ["$null", {"RelativePath": UID(1), "Size": "big"}], "$top": {"root": UID(1)}},
            fmt=plistlib.FMT_BINARY,
        ),
        plistlib.dumps(
            {
                "$objects": ["$null", {"RelativePath": UID(2), "EncryptionKey": UID(2)}, "p"],
                "$top": {"root": UID(1)},
            },
            fmt=plistlib.FMT_BINARY,
        ),
    ],
    ids=["empty", "header-only", "truncated", "not-a-dict", "dangling-root", "string-size", "key-not-data"],
)
def test_malformed_blob_raises_format_error(blob: bytes) -> None:
    with pytest.raises(BackupFormatError):
        decode_mbfile(blob)


def test_file_record_create_and_from_row() -> None:
    record = FileRecord.create(
        "HomeDomain", "Library/SMS/sms.db", FLAG_FILE, size=5, mtime=7, wrapped_key=WRAPPED
    )
    assert (
        record.file_id
        == "3d0d7e5fb2ce288813306e4d4636395e047a3d28"
        == file_id_for("HomeDomain", "Library/SMS/sms.db")
    )
    assert record.blob_name == "3d/3d0d7e5fb2ce288813306e4d4636395e047a3d28"
    assert (record.size, record.mode, record.mtime, record.ctime, record.birth) == (5, 0o100644, 7, 7, 7)
    assert record.wrapped_key == WRAPPED and record.is_file
    assert (
        FileRecord.from_row(record.file_id, record.domain, record.relative_path, record.flags, record.blob)
        == record
    )
    directory = FileRecord.create("HomeDomain", "Library", FLAG_DIRECTORY)
    link = FileRecord.create("HomeDomain", "l", FLAG_SYMLINK, target="x")
    assert (directory.mode, directory.is_directory) == (MODE_DIRECTORY, True)
    assert (link.mode, link.target, link.is_symlink) == (MODE_SYMLINK, "x", True)


def test_encode_rejects_a_wrong_size_key() -> None:
    with pytest.raises(ValueError):
        encode_mbfile(relative_path="x", mode=0o100644, wrapped_key=b"short")
