"""The host side of a device backup, without the files: what the device believes the host holds.

During a mobilebackup2 backup the device treats the host as a file server rooted at the
backup folder: it downloads Status/Manifest to compare, uploads new files, moves, removes
and finally lists directories to verify. Coffer answers all of that from this in-memory
tree. Directories and the small metadata files (plists, Manifest.db) are real entries; a
device file `xx/<fileID>` is a `BlobRef` saying where its content is — already in the
repository (chunk IDs of one category) or staged until its category or key is known.
Nothing here holds file contents.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import time
from dataclasses import dataclass, field

from agent.device.staging import StagedFile


@dataclass
class BlobRef:
    file_id: str
    stored_size: int  # the size as the device sent it (ciphertext size for an encrypted backup)
    category: str | None = None  # set when the content is in the repository
    chunks: list[bytes] = field(default_factory=list)
    plain_size: int = 0
    staged: StagedFile | None = None  # set while the content waits on local staging
    excluded: bool = False  # `backup --categories` left its category out: the device has it, the repository not


@dataclass
class MirrorEntry:
    is_dir: bool
    size: int = 0
    mtime: float = field(default_factory=time.time)
    data: bytes | None = None  # metadata files only
    blob: BlobRef | None = None


class MirrorError(OSError):
    """A device request that names something the mirror does not hold (mapped to an errno)."""


def _normal(path: str) -> str:
    normal = posixpath.normpath(path).lstrip("/")
    return "" if normal == "." else normal


class BackupMirror:
    """The tree as a flat map of normalized paths, with each directory's children beside it: a device
    moves and removes files one by one, thousands per backup (hundreds of thousands on a full iPhone), so
    every operation costs the size of what it touches, not of the whole tree."""

    def __init__(self) -> None:
        self.entries: dict[str, MirrorEntry] = {"": MirrorEntry(is_dir=True)}
        self._children: dict[str, set[str]] = {"": set()}  # directory -> the full names of its entries

    # --- queries ------------------------------------------------------------------
    def get(self, path: str) -> MirrorEntry | None:
        return self.entries.get(_normal(path))

    def read(self, path: str) -> bytes:
        entry = self.get(path)
        if entry is None or entry.is_dir or entry.data is None:
            raise MirrorError(2, "No such file or directory", path)
        return entry.data

    def listdir(self, path: str) -> dict[str, MirrorEntry]:
        base = _normal(path)
        entry = self.entries.get(base)
        if entry is None or not entry.is_dir:
            raise MirrorError(2, "No such file or directory", path)
        prefix = base + "/" if base else ""
        return {name[len(prefix) :]: self.entries[name] for name in self._children[base]}

    def blobs(self, udid: str) -> dict[str, BlobRef]:
        """The committed blobs `<udid>/xx/<fileID>`, by fileID."""
        found = {}
        for name, entry in self.entries.items():
            parts = name.split("/")
            if entry.blob is not None and len(parts) == 3 and parts[0] == udid and len(parts[1]) == 2:
                found[parts[2]] = entry.blob
        return found

    # --- changes ------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        normal = _normal(path)
        parts = normal.split("/") if normal else []
        for depth in range(1, len(parts) + 1):
            name = "/".join(parts[:depth])
            existing = self.entries.get(name)
            if existing is None:
                self._add(name, MirrorEntry(is_dir=True))
            elif not existing.is_dir:
                raise MirrorError(20, "Not a directory", name)

    def put(self, path: str, entry: MirrorEntry) -> None:
        normal = _normal(path)
        parent = posixpath.dirname(normal)
        if parent not in self.entries or not self.entries[parent].is_dir:
            raise MirrorError(2, "No such file or directory", parent)
        if normal in self.entries:
            self.remove(normal)  # a file written over, or a directory replaced: nothing of the old one stays
        self._add(normal, entry)

    def put_data(self, path: str, data: bytes) -> None:
        self.mkdir(posixpath.dirname(_normal(path)))
        self.put(path, MirrorEntry(is_dir=False, size=len(data), data=data))

    def move(self, source: str, destination: str) -> None:
        src, dst = _normal(source), _normal(destination)
        if src not in self.entries:
            return  # as pymobiledevice3 does: a missing source is skipped
        if src == dst:
            return
        if dst.startswith(src + "/") or src.startswith(dst + "/") or not dst:
            # Into itself (rename(2) refuses it too), or over a folder that holds it: replacing that folder
            # would delete the source before it moved.
            raise MirrorError(22, "Invalid argument", destination)
        self.remove(dst)
        self.mkdir(posixpath.dirname(dst))
        moved = [(name, self.entries[name]) for name in self._subtree(src)]
        for name in reversed([name for name, _ in moved]):
            self._pop(name)
        for name, entry in moved:  # parents before their children
            self._add(dst + name[len(src) :], entry)

    def copy(self, source: str, destination: str) -> None:
        src, dst = _normal(source), _normal(destination)
        if src not in self.entries or src == dst:
            return
        if dst.startswith(src + "/"):
            raise MirrorError(22, "Invalid argument", destination)
        copied = [(name, self.entries[name]) for name in self._subtree(src)]
        self.mkdir(posixpath.dirname(dst))
        for name, entry in copied:
            target = dst + name[len(src) :]
            if target in self.entries:
                if self.entries[target].is_dir and entry.is_dir:
                    continue  # merged into the existing directory
                self.remove(target)
            self._add(target, entry)

    def remove(self, path: str) -> list[MirrorEntry]:
        target = _normal(path)
        if not target:
            raise MirrorError(1, "Operation not permitted", path)
        if target not in self.entries:
            return []
        return [self._pop(name) for name in reversed(self._subtree(target))]  # children before parents

    # --- the tree -------------------------------------------------------------------
    def _subtree(self, name: str) -> list[str]:
        """`name` and everything below it, each directory before its entries."""
        found, pending = [], [name]
        while pending:
            current = pending.pop()
            found.append(current)
            pending.extend(self._children.get(current, ()))
        return found

    def _add(self, name: str, entry: MirrorEntry) -> None:
        self.entries[name] = entry
        self._children[posixpath.dirname(name)].add(name)
        if entry.is_dir:
            self._children.setdefault(name, set())

    def _pop(self, name: str) -> MirrorEntry:
        entry = self.entries.pop(name)
        self._children[posixpath.dirname(name)].discard(name)
        self._children.pop(name, None)
        return entry


def modification_date(entry: MirrorEntry) -> dt.datetime:
    """A naive UTC datetime, as plistlib and the DeviceLink listing expect."""
    return dt.datetime.fromtimestamp(entry.mtime, dt.UTC).replace(tzinfo=None)
