"""The import files cache: skip reading files that have not changed since the last import.

Like restic's and borg's files cache: for each fileID of a device's backup folder it keeps
the MBFile record (a hash of it), the blob's size, mtime and inode, and the category and
chunk IDs stored for it. A file whose record and blob are unchanged, and whose chunks are all
still in the index, is added to the new snapshot without being read. Kept per repository
and device under the state folder; chunk IDs are keyed hashes and name nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

from agent.ios.records import FileRecord
from agent.keys import primitives
from agent.paths import state_root
from agent.repository.index import Index


@dataclass(frozen=True)
class CachedFile:
    fingerprint: str
    category: str
    size: int
    chunks: list[bytes]


def fingerprint(record: FileRecord, blob: Path) -> str | None:
    """What must not change for a file to be reused: its Manifest.db record and its blob's stat."""
    try:
        st = blob.stat()
    except OSError:
        return None
    identity = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}".encode()
    return primitives.sha256(record.blob + b"\0" + identity).hex()[:32]


class FilesCache:
    def __init__(self, repository_id: str, device_tag: str, root: Path | None = None) -> None:
        self.path = (root or state_root()) / repository_id / f"files-{device_tag}.cache"
        self._entries: dict[str, CachedFile] = {}
        self.fresh: dict[str, CachedFile] = {}
        try:
            doc = json.loads(zstandard.decompress(self.path.read_bytes()))
            self._entries = {
                fid: CachedFile(fp, category, size, [bytes.fromhex(c) for c in chunks])
                for fid, (fp, category, size, chunks) in doc.items()
            }
        except (OSError, ValueError, zstandard.ZstdError):
            self._entries = {}  # no cache, or an unreadable one: files are simply read again

    def lookup(self, file_id: str, stamp: str | None, index: Index) -> CachedFile | None:
        cached = self._entries.get(file_id)
        if cached is None or stamp is None or cached.fingerprint != stamp:
            return None
        if not all(index.lookup(cached.category, chunk) for chunk in cached.chunks):
            return None  # pruned since: read the file again
        return cached

    def remember(self, file_id: str, entry: CachedFile) -> None:
        self.fresh[file_id] = entry

    def save(self) -> None:
        doc = {fid: [e.fingerprint, e.category, e.size, [c.hex() for c in e.chunks]] for fid, e in self.fresh.items()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, temporary = tempfile.mkstemp(prefix=".files-", dir=self.path.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(zstandard.compress(json.dumps(doc).encode(), 3))
            os.replace(temporary, self.path)
        except OSError:
            pass  # losing the cache costs time on the next import, never data
