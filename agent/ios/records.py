"""One row of Manifest.db's Files table, with the MBFile blob kept byte-exact and its fields decoded."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import zstandard

from agent.ios.mbfile import MODE_DIRECTORY, MODE_FILE, MODE_SYMLINK, decode_mbfile, encode_mbfile

FLAG_FILE = 1
FLAG_DIRECTORY = 2
FLAG_SYMLINK = 4
KNOWN_FLAGS = (FLAG_FILE, FLAG_DIRECTORY, FLAG_SYMLINK)

_DEFAULT_MODES = {FLAG_FILE: MODE_FILE, FLAG_DIRECTORY: MODE_DIRECTORY, FLAG_SYMLINK: MODE_SYMLINK}


def file_id_for(domain: str, relative_path: str) -> str:
    """The fileID of a row: sha1("domain-relativePath"), lowercase hex."""
    return hashlib.sha1(f"{domain}-{relative_path}".encode()).hexdigest()


@dataclass(slots=True)  # one per file of a backup: no per-instance dict
class FileRecord:
    """A Manifest.db row. `blob` is the raw `file` column; the other fields are decoded from it.
    `wrapped_key` is the 44-byte EncryptionKey (u32 LE class || AES key wrap) of an encrypted backup's file."""

    file_id: str
    domain: str
    relative_path: str
    flags: int
    blob: bytes
    size: int = 0
    mode: int = 0
    mtime: int = 0
    protection_class: int = 0
    wrapped_key: bytes | None = None
    target: str | None = None
    uid: int = 0
    gid: int = 0
    inode: int = 0
    birth: int = 0
    ctime: int = 0

    @classmethod
    def from_row(cls, file_id: str, domain: str, relative_path: str, flags: int, blob: bytes) -> FileRecord:
        """Build from a Manifest.db row; a malformed blob raises BackupFormatError."""
        fields = decode_mbfile(blob)
        return cls(
            file_id=file_id,
            domain=domain,
            relative_path=relative_path,
            flags=flags,
            blob=blob,
            size=fields["size"],
            mode=fields["mode"],
            mtime=fields["mtime"],
            protection_class=fields["protection_class"],
            wrapped_key=fields["wrapped_key"],
            target=fields["target"],
            uid=fields["uid"],
            gid=fields["gid"],
            inode=fields["inode"],
            birth=fields["birth"],
            ctime=fields["ctime"],
        )

    @classmethod
    def create(cls, domain: str, relative_path: str, flags: int, **mbfile_fields: Any) -> FileRecord:
        """A new record (device side): computes the fileID and encodes the blob. `mbfile_fields` are the keyword
        arguments of `encode_mbfile` except `relative_path`; `mode` defaults by kind (0o100644 / 0o40755 /
        0o120755)."""
        mbfile_fields.setdefault("mode", _DEFAULT_MODES.get(flags, MODE_FILE))
        blob = encode_mbfile(relative_path=relative_path, **mbfile_fields)
        return cls.from_row(file_id_for(domain, relative_path), domain, relative_path, flags, blob)

    @property
    def is_file(self) -> bool:
        return self.flags == FLAG_FILE

    @property
    def is_directory(self) -> bool:
        return self.flags == FLAG_DIRECTORY

    @property
    def is_symlink(self) -> bool:
        return self.flags == FLAG_SYMLINK

    @property
    def blob_name(self) -> str:
        """Where the content lives inside the backup folder: `xx/<fileID>` (iOS 10 and later)."""
        return f"{self.file_id[:2]}/{self.file_id}"


# fileID (raw), flags, domain number, length of the relativePath's UTF-8, whether the decoded fields follow it
_PACKED_HEAD = struct.Struct("<20sBIIB")
# The record's decoded integers, then its wrapped key and its symlink target, each length-prefixed (all ones:
# none). A record whose integers do not fit (a plist integer may be up to 128 bits) is decoded again instead.
_FIELDS = struct.Struct("<9q")
_KEY_LENGTH = struct.Struct("<H")
_TARGET_LENGTH = struct.Struct("<I")
_NONE_KEY = 0xFFFF
_NONE_TARGET = 0xFFFFFFFF
_ROW_LENGTH = struct.Struct("<I")
_BATCH_ROWS = 256
_BATCH_LEVEL = 1


class PackedRecords(Sequence[FileRecord]):
    """Checked records held packed and compressed, decoded again when asked for.

    A backup folder's rows stay in memory from `open` to the end of an import. As FileRecord objects they
    cost about 1.2 KiB each (the object, its decoded integers, three strings, the blob: some twenty small
    objects), and the interpreter keeps the memory of such objects once they are freed, so an import's
    resident size grew with the number of files. Here a row is its fields in one bytes object (a domain is
    stored once), and every 256 rows are compressed together: MBFile records differ little, so a row costs
    about 50 bytes instead of 560 (16,441 rows of the 8 GB benchmark folder: 0.8 MiB; as objects, 20 MiB).
    Compressing them all takes 8 ms. A row also holds the fields decoded from its MBFile record, so that
    reading it back needs no MBFile parse: an import reads each row back twice (the folder's rows, then its
    queue of files to read), and parsing them again was a quarter of its time per file.
    Only rows that `FileRecord.from_row` has read belong here: fileIDs are 40 lowercase hex digits."""

    def __init__(self) -> None:
        self._batches: list[bytes] = []  # zstd frames of _BATCH_ROWS length-prefixed rows each
        self._open: list[bytes] = []  # the rows of the batch being filled
        self._domains: list[str] = []
        self._domain_numbers: dict[str, int] = {}

    def append(self, record: FileRecord) -> None:
        number = self._domain_numbers.setdefault(record.domain, len(self._domains))
        if number == len(self._domains):
            self._domains.append(record.domain)
        path = record.relative_path.encode("utf-8", "surrogatepass")
        fields = _packed_fields(record)
        head = _PACKED_HEAD.pack(bytes.fromhex(record.file_id), record.flags, number, len(path), fields is not None)
        self._open.append(head + path + (fields or b"") + record.blob)
        if len(self._open) == _BATCH_ROWS:
            batch = b"".join(_ROW_LENGTH.pack(len(row)) + row for row in self._open)
            # A copy of the frame: python-zstandard's result keeps a buffer of the input's size behind it.
            self._batches.append(memoryview(zstandard.compress(batch, _BATCH_LEVEL)).tobytes())
            self._open = []

    def __len__(self) -> int:
        return len(self._batches) * _BATCH_ROWS + len(self._open)

    @overload
    def __getitem__(self, index: int) -> FileRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[FileRecord]: ...
    def __getitem__(self, index: int | slice) -> FileRecord | list[FileRecord]:
        if isinstance(index, slice):
            return list(self)[index]
        if not -len(self) <= index < len(self):
            raise IndexError("record index out of range")
        index %= len(self)
        batch, at = divmod(index, _BATCH_ROWS)
        rows = self._open if batch == len(self._batches) else _rows_of(self._batches[batch])
        return self._unpack(rows[at])

    def __iter__(self) -> Iterator[FileRecord]:
        for batch in self._batches:
            yield from map(self._unpack, _rows_of(batch))
        yield from map(self._unpack, list(self._open))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedRecords | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def drain(self) -> Iterator[FileRecord]:
        """The records in order, each batch let go as it is reached (a caller that keeps none holds only the
        rows still to come)."""
        batches, self._batches = self._batches, []
        last, self._open = self._open, []
        batches.reverse()
        while batches:
            yield from map(self._unpack, _rows_of(batches.pop()))
        yield from map(self._unpack, last)

    def _unpack(self, row: bytes) -> FileRecord:
        file_id, flags, number, path_length, has_fields = _PACKED_HEAD.unpack_from(row)
        at = _PACKED_HEAD.size
        path = row[at : at + path_length].decode("utf-8", "surrogatepass")
        at += path_length
        if not has_fields:
            return FileRecord.from_row(file_id.hex(), self._domains[number], path, flags, row[at:])
        size, mode, mtime, protection_class, uid, gid, inode, birth, ctime = _FIELDS.unpack_from(row, at)
        at += _FIELDS.size
        (key_length,) = _KEY_LENGTH.unpack_from(row, at)
        at += _KEY_LENGTH.size
        wrapped_key = None if key_length == _NONE_KEY else row[at : at + key_length]
        at += 0 if wrapped_key is None else key_length
        (target_length,) = _TARGET_LENGTH.unpack_from(row, at)
        at += _TARGET_LENGTH.size
        target = None
        if target_length != _NONE_TARGET:
            target = row[at : at + target_length].decode("utf-8", "surrogatepass")
            at += target_length
        return FileRecord(
            file_id.hex(), self._domains[number], path, flags, row[at:], size=size, mode=mode, mtime=mtime,
            protection_class=protection_class, wrapped_key=wrapped_key, target=target, uid=uid, gid=gid,
            inode=inode, birth=birth, ctime=ctime,
        )


def _packed_fields(record: FileRecord) -> bytes | None:
    """The record's decoded fields as `_unpack` reads them, or None when they do not fit (then it parses the
    MBFile record again)."""
    key, target = record.wrapped_key, record.target
    encoded_target = None if target is None else target.encode("utf-8", "surrogatepass")
    if (key is not None and len(key) >= _NONE_KEY) or (encoded_target is not None and len(encoded_target) >= _NONE_TARGET):
        return None
    try:
        integers = _FIELDS.pack(
            record.size, record.mode, record.mtime, record.protection_class, record.uid, record.gid, record.inode,
            record.birth, record.ctime,
        )
    except struct.error:
        return None
    return b"".join([
        integers,
        _KEY_LENGTH.pack(_NONE_KEY if key is None else len(key)),
        key or b"",
        _TARGET_LENGTH.pack(_NONE_TARGET if encoded_target is None else len(encoded_target)),
        encoded_target or b"",
    ])


def _rows_of(frame: bytes) -> list[bytes]:
    batch = zstandard.decompress(frame)
    rows = []
    at = 0
    while at < len(batch):
        (length,) = _ROW_LENGTH.unpack_from(batch, at)
        rows.append(batch[at + _ROW_LENGTH.size : at + _ROW_LENGTH.size + length])
        at += _ROW_LENGTH.size + length
    return rows
