"""The import files cache: skip reading files that have not changed since the last import.

Like restic's and borg's files cache: for each fileID of a device's backup folder it keeps
the MBFile record (a hash of it), the blob's size, mtime and inode, and the category and
chunk IDs stored for it. A file whose record and blob are unchanged, and whose chunks are all
still in the index, is added to the new snapshot without being read. Kept per repository
and device under the state folder; chunk IDs are keyed hashes and name nothing.

The cache is a SQLite database read one row per lookup, and a run's entries go to an unlinked
temporary file as they come: memory does not grow with the number of files. (It used to be one
JSON document held whole, with every entry of this run beside it: about 0.5 KiB per file, 7 MiB
for a 14,000-file import and a hundred times that for a large device.) The new database is
written next to the old one and put in its place once the snapshot is committed, so an
interrupted import leaves the previous cache as it was; an unreadable or damaged cache only
means the files are read again.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from agent.ios.categories import Category
from agent.ios.records import FileRecord
from agent.keys import primitives
from agent.paths import state_root
from agent.repository.index import Index

_CHUNK_ID_SIZE = 32
_SCHEMA = (
    "CREATE TABLE files (file_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, category TEXT NOT NULL,"
    " size INTEGER NOT NULL, chunks BLOB NOT NULL) WITHOUT ROWID"
)
_CATEGORIES = frozenset(category.value for category in Category)


@dataclass(frozen=True, slots=True)
class CachedFile:
    fingerprint: str
    category: str
    size: int
    chunks: list[bytes]


def fingerprint(record: FileRecord, blob: str | Path) -> str | None:
    """What must not change for a file to be reused: its Manifest.db record and its blob's stat."""
    try:
        st = os.stat(blob)
    except OSError:
        return None
    identity = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}".encode()
    return primitives.sha256(record.blob + b"\0" + identity).hex()[:32]


class FilesCache:
    """One device's files cache: `lookup` reads the previous run's entries, `remember` (from any thread)
    records this run's, and `save` makes them the cache. Use it as a context manager: leaving it closes
    the files, and without `save` the previous cache stays as it was."""

    def __init__(self, repository_id: str, device_tag: str, root: Path | None = None) -> None:
        self.folder = (root or state_root()) / repository_id
        self.path = self.folder / f"files-{device_tag}.sqlite"
        self._former_json = self.folder / f"files-{device_tag}.cache"  # before the cache was a database
        self._previous = _open_previous(self.path)
        self._fresh: IO[bytes] | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> FilesCache:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._previous is not None:
            self._previous.close()
            self._previous = None
        if self._fresh is not None:
            self._fresh.close()
            self._fresh = None

    def lookup(self, record: FileRecord, stamp: str | None, index: Index) -> CachedFile | None:
        """The stored chunks of `record` if its fingerprint is `stamp` as when they were stored, they add up to
        its size and the index still holds them all; None means: read the file."""
        if self._previous is None or stamp is None:
            return None
        try:
            row = self._previous.execute(
                "SELECT fingerprint, category, size, chunks FROM files WHERE file_id = ?", (record.file_id,)
            ).fetchone()
        except sqlite3.Error:
            self._previous.close()  # a damaged cache: every file is read, as without one
            self._previous = None
            return None
        cached = _entry(row)
        if cached is None or cached.fingerprint != stamp or cached.size != record.size:
            return None
        if not all(index.lookup(cached.category, chunk) for chunk in cached.chunks):
            return None  # pruned since: read the file again
        return cached

    def remember(self, file_id: str, entry: CachedFile) -> None:
        line = json.dumps([file_id, entry.fingerprint, entry.category, entry.size, b"".join(entry.chunks).hex()])
        with self._lock:
            if self._fresh is None:
                self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._fresh = tempfile.TemporaryFile(prefix=".files-", dir=self.folder)  # noqa: SIM115 (see close)
            self._fresh.write(line.encode() + b"\n")

    def save(self) -> None:
        """Make this run's entries the cache (the files of this run only: a file gone from the folder drops
        out). Losing the cache costs time on the next import, never data, so a failure to write it is
        ignored."""
        temporary = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor, temporary = tempfile.mkstemp(prefix=".files-", suffix=".sqlite", dir=self.folder)
            os.close(descriptor)
            with contextlib.closing(sqlite3.connect(temporary)) as database:
                database.execute(_SCHEMA)
                database.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", self._fresh_rows())
                database.commit()
            os.replace(temporary, self.path)
            temporary = None
            self._former_json.unlink(missing_ok=True)
        except (OSError, sqlite3.Error):
            pass
        finally:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)

    def _fresh_rows(self) -> Iterator[tuple[str, str, str, int, bytes]]:
        with self._lock:
            if self._fresh is None:
                return
            self._fresh.seek(0)
            for line in self._fresh:
                file_id, stamp, category, size, chunks = json.loads(line)
                yield file_id, stamp, category, size, bytes.fromhex(chunks)


def _open_previous(path: Path) -> sqlite3.Connection | None:
    if not path.is_file():
        return None
    try:
        return sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error:
        return None


def _entry(row: tuple[object, ...] | None) -> CachedFile | None:
    """The cached entry of a row, or None when the row is absent or not what this module writes."""
    if row is None:
        return None
    stamp, category, size, chunks = row
    if not (
        isinstance(stamp, str)
        and category in _CATEGORIES
        and isinstance(size, int)
        and size >= 0
        and isinstance(chunks, bytes)
        and len(chunks) % _CHUNK_ID_SIZE == 0
    ):
        return None
    ids = [chunks[at : at + _CHUNK_ID_SIZE] for at in range(0, len(chunks), _CHUNK_ID_SIZE)]
    return CachedFile(stamp, str(category), size, ids)
