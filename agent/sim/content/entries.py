"""The entry types of a simulated device: what a file is, where its bytes come from, what changed.

Keys of digests and reports are `"<domain>/<relative_path>"` (`SimFile.key`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

READ_PIECE_SIZE = 1 << 20  # the largest piece `DeviceFilesystem.read()` yields


class FileKind(StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"


@dataclass(frozen=True)
class BlobContent:
    """Bytes materialised under the state folder, named by their SHA-256."""

    sha256: str


@dataclass(frozen=True)
class StreamContent:
    """Bytes generated on demand: `header`, then a marker, the key and its AES-CTR keystream."""

    key: bytes  # 32 bytes
    header: bytes  # a plausible file-format header (JPEG SOI, ftyp box, ...), may be empty


ContentSource = BlobContent | StreamContent


@dataclass(frozen=True)
class SimFile:
    """One entry of the device, as a backup's Manifest.db row describes it."""

    domain: str
    relative_path: str
    kind: FileKind
    size: int  # 0 for directories and symlinks
    mtime: int  # unix seconds; changes whenever content changes
    birth: int
    mode: int  # 0o100644 files, 0o40755 dirs, 0o120755 symlinks
    inode: int  # stable per path; a new path gets a new one
    protection_class: int  # 1..4 for files (3 most common), 0 for directories
    encrypted_only: bool  # left out of unencrypted backups, as a real device does
    target: str | None = None  # symlinks only
    source: ContentSource | None = field(default=None, repr=False)  # files only

    @property
    def key(self) -> str:
        """`"<domain>/<relative_path>"`, the key of digests and reports."""
        return f"{self.domain}/{self.relative_path}"


@dataclass(frozen=True)
class RestoredEntry:
    """One entry a restore puts onto the device.

    `data` yields the file's bytes (files only; it is consumed once). Without a
    `protection_class` the device picks the class its own rules give the path.
    """

    domain: str
    relative_path: str
    kind: FileKind
    mode: int
    mtime: int
    target: str | None = None
    data: Iterable[bytes] | None = None
    protection_class: int | None = None


@dataclass(frozen=True)
class EvolveReport:
    """What a day of use changed, as sorted `"<domain>/<relative_path>"` keys."""

    added: list[str]
    modified: list[str]
    removed: list[str]
