"""Manifest.db reading and writing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.errors import BackupFormatError
from agent.ios.manifest_db import (
    SCHEMA,
    manifest_db_bytes,
    read_manifest_db,
    read_manifest_rows,
    records_from_bytes,
    write_manifest_db,
)
from agent.ios.records import FLAG_DIRECTORY, FLAG_FILE, FLAG_SYMLINK, FileRecord

RECORDS = [
    FileRecord.create("HomeDomain", "", FLAG_DIRECTORY),
    FileRecord.create("HomeDomain", "Library/SMS/sms.db", FLAG_FILE, size=4096, mtime=1, protection_class=3),
    FileRecord.create("HomeDomain", "Library/link", FLAG_SYMLINK, target="SMS"),
    FileRecord.create("AppDomain-net.whatsapp.WhatsApp", "Documents/ü – ✓.txt", FLAG_FILE, size=0),
]


def test_written_database_reads_back_identically(tmp_path: Path) -> None:
    path = tmp_path / "Manifest.db"
    write_manifest_db(path, RECORDS)
    records = read_manifest_db(path)
    assert records == RECORDS
    assert [r.blob for r in records] == [r.blob for r in RECORDS]
    assert not (tmp_path / "Manifest.db.partial").exists()


def test_schema_is_exactly_the_devices(tmp_path: Path) -> None:
    path = tmp_path / "Manifest.db"
    write_manifest_db(path, RECORDS)
    connection = sqlite3.connect(path)
    stored = [
        row[0]
        for row in connection.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")
    ]
    assert connection.execute("SELECT COUNT(*) FROM Properties").fetchone() == (0,)
    connection.close()
    # sqlite_master also lists the automatic primary-key indexes (sql NULL, filtered out above)
    assert stored == list(SCHEMA)


def test_bytes_round_trip_keeps_row_order() -> None:
    reversed_records = list(reversed(RECORDS))
    assert records_from_bytes(manifest_db_bytes(reversed_records)) == reversed_records


def test_wal_mode_database_is_read(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    path.write_bytes(manifest_db_bytes(RECORDS))
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    connection.close()
    data = path.read_bytes()
    assert data[18:20] == b"\x02\x02"
    assert records_from_bytes(data) == RECORDS


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a database at all" * 10,
        b"SQLite format 3\x00" + bytes(84),
        manifest_db_bytes(RECORDS)[:2048],
    ],
    ids=["empty", "garbage", "header-only", "truncated"],
)
def test_not_a_database_raises_format_error(data: bytes) -> None:
    with pytest.raises(BackupFormatError, match=r"Manifest\.db"):
        read_manifest_rows(data)


def test_sqlite_without_files_table_raises_format_error(tmp_path: Path) -> None:
    path = tmp_path / "Manifest.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE Other (x)")
    connection.commit()
    connection.close()
    with pytest.raises(BackupFormatError, match=r"not a valid Manifest\.db"):
        read_manifest_db(path)


def test_strict_reader_rejects_bad_rows() -> None:
    connection = sqlite3.connect(":memory:")
    for statement in SCHEMA:
        connection.execute(statement)
    connection.execute("INSERT INTO Files VALUES ('ab', 'HomeDomain', 'x', 1, 'not a blob')")
    connection.commit()
    with pytest.raises(BackupFormatError, match="wrongly typed"):
        records_from_bytes(connection.serialize())
    connection.execute("UPDATE Files SET file = x'00'")
    connection.commit()
    with pytest.raises(BackupFormatError, match="row ab"):
        records_from_bytes(connection.serialize())


def test_missing_file_raises_format_error(tmp_path: Path) -> None:
    with pytest.raises(BackupFormatError, match="cannot read"):
        read_manifest_db(tmp_path / "absent.db")
