"""`coffer find PATTERN`: the files matching a glob, in every snapshot (or those chosen).

The glob is tried on the file name and on `DOMAIN/PATH`, the path `extract` writes, so `*.HEIC`
and `CameraRollDomain/Media/DCIM/*` both work; `*` also crosses `/`, as in `extract --path`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from agent.archive.view import view_of
from agent.ios.records import FileRecord
from agent.repository.repository import Repository, SnapshotEntry


@dataclass
class Match:
    category: str
    record: FileRecord


@dataclass
class SnapshotMatches:
    entry: SnapshotEntry
    matches: list[Match] = field(default_factory=list)


def matches(pattern: str, domain: str, relative_path: str, *, ignore_case: bool = False) -> bool:
    name = relative_path.rsplit("/", 1)[-1]
    full = f"{domain}/{relative_path}"
    if ignore_case:
        pattern, name, full = pattern.casefold(), name.casefold(), full.casefold()
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(full, pattern)


def find_files(
    repository: Repository,
    entries: list[SnapshotEntry],
    pattern: str,
    *,
    categories: list[str] | None,
    ignore_case: bool = False,
) -> list[SnapshotMatches]:
    """Per snapshot (in the order given), its rows that match; snapshots without a match are left out."""
    found = []
    for entry in entries:
        view = view_of(repository, entry, categories)
        hits = [
            Match(category, record)
            for category, _row, record in view.records()
            if matches(pattern, record.domain, record.relative_path, ignore_case=ignore_case)
        ]
        if hits:
            hits.sort(key=lambda m: (m.record.domain, m.record.relative_path))
            found.append(SnapshotMatches(entry, hits))
    return found
