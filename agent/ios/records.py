"""One row of Manifest.db's Files table, with the MBFile blob kept byte-exact and its fields decoded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

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
