"""Manifest.db, the SQLite index of a backup (ios-protocol.md section 6.2): reading rows and writing a database
with exactly the device's schema. Databases are handled as bytes in memory (sqlite3 serialize/deserialize), so a
decrypted Manifest.db never touches the disk."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.errors import BackupFormatError
from agent.ios.records import FileRecord

SCHEMA = (
    "CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB)",
    "CREATE INDEX FilesDomainIdx ON Files(domain)",
    "CREATE INDEX FilesRelativePathIdx ON Files(relativePath)",
    "CREATE INDEX FilesFlagsIdx ON Files(flags)",
    "CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB)",
)
_SQLITE_MAGIC = b"SQLite format 3\x00"
# Header bytes 18-19 are the read/write format versions: 2 means WAL mode, which an in-memory image cannot use.
_WAL_FORMAT = b"\x02\x02"
_ROLLBACK_FORMAT = b"\x01\x01"


@dataclass(frozen=True)
class ManifestRow:
    """A Files row exactly as stored, before any validation (values may have any SQLite type)."""

    file_id: object
    domain: object
    relative_path: object
    flags: object
    blob: object

    def is_well_typed(self) -> bool:
        return (
            isinstance(self.file_id, str)
            and isinstance(self.domain, str)
            and isinstance(self.relative_path, str)
            and isinstance(self.flags, int)
            and isinstance(self.blob, bytes)
        )


def read_manifest_rows(data: bytes, name: str = "Manifest.db") -> list[ManifestRow]:
    """Every Files row in storage order. Not a SQLite database, or no Files table of the expected shape:
    BackupFormatError naming `name`."""
    return list(iter_manifest_rows(data, name))


def iter_manifest_rows(data: bytes, name: str = "Manifest.db") -> Iterator[ManifestRow]:
    """The Files rows in storage order, read one at a time (a large Manifest.db is not held as rows); errors
    as `read_manifest_rows`, raised when met."""
    if not data.startswith(_SQLITE_MAGIC) or len(data) < 100:
        raise BackupFormatError(f"{name} is not a SQLite database (wrong password, damage or not a backup?)")
    if data[18:20] == _WAL_FORMAT:
        data = data[:18] + _ROLLBACK_FORMAT + data[20:]
    connection = sqlite3.connect(":memory:")
    connection.text_factory = _text_or_bytes
    try:
        connection.deserialize(data)
        cursor = connection.execute(
            "SELECT fileID, domain, relativePath, flags, file FROM Files ORDER BY rowid"
        )
        # Most rows share a domain with others: one string per domain instead of one per row (memory per file).
        domains: dict[object, object] = {}
        for file_id, domain, path, flags, blob in cursor:
            yield ManifestRow(file_id, domains.setdefault(domain, domain), path, flags, blob)
    except sqlite3.Error as error:
        raise BackupFormatError(f"{name} is not a valid Manifest.db ({error})") from error
    except UnicodeDecodeError as error:
        # sqlite quotes the offending schema text in its message, which Python then fails to decode
        raise BackupFormatError(f"{name} is not a valid Manifest.db (its schema is not UTF-8 text)") from error
    except MemoryError as error:
        # sqlite answers some damaged schemas with SQLITE_NOMEM, which Python raises as MemoryError
        raise BackupFormatError(f"{name} is not a valid Manifest.db (sqlite cannot load its schema)") from error
    finally:
        connection.close()


def _text_or_bytes(value: bytes) -> str | bytes:
    """A TEXT value that is not UTF-8 stays bytes, so its row reads as wrongly typed and is skipped alone."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def records_from_bytes(data: bytes, name: str = "Manifest.db") -> list[FileRecord]:
    """Every row as a FileRecord. Strict: a row with wrongly typed columns or a malformed MBFile blob raises
    BackupFormatError (BackupFolder instead reports such rows as skipped)."""
    records = []
    for row in read_manifest_rows(data, name):
        if not row.is_well_typed():
            raise BackupFormatError(
                f"{name} has a Files row with wrongly typed columns (fileID {row.file_id!r})"
            )
        try:
            records.append(
                FileRecord.from_row(row.file_id, row.domain, row.relative_path, row.flags, row.blob)
            )
        except BackupFormatError as error:
            raise BackupFormatError(f"{name}, row {row.file_id}: {error}") from error
    return records


def read_manifest_db(path: Path) -> list[FileRecord]:
    """Read a plaintext Manifest.db file."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BackupFormatError(f"cannot read {path}: {error.strerror}") from error
    return records_from_bytes(data, str(path))


def manifest_db_bytes(records: Iterable[FileRecord]) -> bytes:
    """A Manifest.db image with the device schema (indexes and the empty Properties table), rows in the given
    order, blobs stored byte-exact."""
    connection = sqlite3.connect(":memory:")
    try:
        for statement in SCHEMA:
            connection.execute(statement)
        connection.executemany(
            "INSERT INTO Files (fileID, domain, relativePath, flags, file) VALUES (?, ?, ?, ?, ?)",
            ((r.file_id, r.domain, r.relative_path, r.flags, r.blob) for r in records),
        )
        connection.commit()
        return connection.serialize()
    finally:
        connection.close()


def write_manifest_db(path: Path, records: Iterable[FileRecord]) -> None:
    """Write a plaintext Manifest.db atomically (temporary file, then rename)."""
    write_atomically(path, manifest_db_bytes(records))


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old file or the whole new one, never a part."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
