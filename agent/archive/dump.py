"""`coffer dump SNAPSHOT DOMAIN/PATH`: one file's bytes, streamed, as `extract` would write it.

`DOMAIN/PATH` is the path `extract` writes under its target (`safe_relative_path`), so what
`find` or an extracted tree shows can be pasted back; the raw `domain/relativePath` of a row
works too. Files of a device-encrypted backup are stored decrypted, so the bytes are the
plaintext, as `extract` writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from agent.archive.view import view_of
from agent.errors import CofferError, UsageError
from agent.ios.categories import classify
from agent.ios.records import FileRecord
from agent.ios.safety import safe_relative_path
from agent.pipeline.reader import BlobReader
from agent.repository.repository import Repository, SnapshotEntry
from agent.repository.snapshot import FileRow


class FileNotInSnapshotError(CofferError):
    """The snapshot has no file at that path (exit 1, as restic's dump)."""


@dataclass
class DumpTarget:
    entry: SnapshotEntry
    category: str
    row: FileRow
    record: FileRecord


def _candidates(path: str) -> tuple[str, str]:
    domain, _, relative = path.strip("/").partition("/")
    return domain, relative


def locate(repository: Repository, entry: SnapshotEntry, path: str) -> DumpTarget:
    """The file row at `path` in `entry`; a clear error for a directory, a symlink or nothing there."""
    domain, relative = _candidates(path)
    if not domain:
        raise UsageError("give the file as DOMAIN/PATH, e.g. HomeDomain/Library/SMS/sms.db")
    wanted = path.strip("/")
    view = view_of(repository, entry, None)
    for category, row, record in view.records():
        if record.domain != domain:
            continue
        safe = safe_relative_path(record.domain, record.relative_path)
        if (safe is not None and str(safe) == wanted) or record.relative_path == relative:
            if record.is_directory:
                raise UsageError(f"{wanted} is a directory in snapshot {entry.short_id} (see `coffer ls`)")
            if record.is_symlink:
                raise UsageError(f"{wanted} is a symlink to {record.target!r} in snapshot {entry.short_id}")
            return DumpTarget(entry, category, row, record)
    repository.keys.require_read(classify(domain, relative).value)  # a category this key cannot read: say so
    raise FileNotInSnapshotError(f"snapshot {entry.short_id} has no file {wanted} (see `coffer find` or `coffer ls`)")


def read_file(repository: Repository, target: DumpTarget) -> Iterator[bytes]:
    """The file's plaintext, piece by piece, every blob authenticated on the way."""
    index = repository.load_index()
    with BlobReader(repository, index) as reader:
        yield from reader.read_stream(target.category, target.row.chunks)
