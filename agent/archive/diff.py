"""`coffer diff A B`: which files two snapshots add, remove or change, per category, with bytes.

Rows are matched by (domain, relative path), as a device names its files. A file whose chunk
list differs (or a symlink whose target differs) is changed; metadata-only changes (mtime,
mode) are not, as restic's `diff` counts content. Directories are left out: they hold no bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.archive.view import view_of
from agent.ios.records import FileRecord
from agent.repository.repository import Repository, SnapshotEntry

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
MARKS = {ADDED: "+", REMOVED: "-", CHANGED: "M"}


@dataclass
class Tally:
    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size


@dataclass
class Change:
    kind: str  # ADDED, REMOVED or CHANGED
    category: str
    domain: str
    path: str
    size: int  # the new size (the old one for a removed file)
    old_size: int


@dataclass
class SnapshotDiff:
    a: SnapshotEntry
    b: SnapshotEntry
    changes: list[Change] = field(default_factory=list)

    def per_category(self) -> dict[str, dict[str, Tally]]:
        out: dict[str, dict[str, Tally]] = {}
        for change in self.changes:
            out.setdefault(change.category, {k: Tally() for k in MARKS})[change.kind].add(change.size)
        return dict(sorted(out.items()))

    def totals(self) -> dict[str, Tally]:
        totals = {k: Tally() for k in MARKS}
        for change in self.changes:
            totals[change.kind].add(change.size)
        return totals


_Key = tuple[str, str]


def _entries(repository: Repository, entry: SnapshotEntry, categories: list[str] | None) -> dict[_Key, tuple[str, FileRecord, list[bytes]]]:
    view = view_of(repository, entry, categories)
    return {
        (record.domain, record.relative_path): (category, record, row.chunks)
        for category, row, record in view.records()
        if not record.is_directory
    }


def _content(record: FileRecord, chunks: list[bytes]) -> tuple[object, ...]:
    return (record.flags, record.size, tuple(chunks)) if record.is_file else (record.flags, record.target)


def diff_snapshots(repository: Repository, a: SnapshotEntry, b: SnapshotEntry, categories: list[str] | None) -> SnapshotDiff:
    """Compare `a` (older) with `b` (newer) over the categories the key can read (or those asked for)."""
    before, after = _entries(repository, a, categories), _entries(repository, b, categories)
    result = SnapshotDiff(a, b)
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None and new is not None:
            result.changes.append(Change(ADDED, new[0], *key, new[1].size, 0))
        elif new is None and old is not None:
            result.changes.append(Change(REMOVED, old[0], *key, old[1].size, old[1].size))
        elif old is not None and new is not None and _content(old[1], old[2]) != _content(new[1], new[2]):
            result.changes.append(Change(CHANGED, new[0], *key, new[1].size, old[1].size))
    return result
