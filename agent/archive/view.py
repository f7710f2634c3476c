"""Reading a snapshot's rows: the categories a key can open, as iOS file records."""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import UsageError
from agent.ios.categories import Category
from agent.ios.records import FileRecord
from agent.keys.keyset import MANIFEST_SPACE
from agent.repository.repository import Repository, SnapshotEntry
from agent.repository.snapshot import FileRow, ManifestPart


@dataclass
class SnapshotView:
    entry: SnapshotEntry
    rows: dict[str, list[FileRow]]  # category -> rows, for the categories asked for

    def records(self) -> list[tuple[str, FileRow, FileRecord]]:
        out = []
        for category, rows in sorted(self.rows.items()):
            for row in rows:
                record = FileRecord.from_row(row.file_id, row.domain, row.relative_path, row.flags, row.mbfile)
                out.append((category, row, record))
        return out


def parse_categories(text: str | None) -> list[str] | None:
    """`photos,messages` → a checked list; None means every category."""
    if not text:
        return None
    known = {c.value for c in Category}
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise UsageError(f"unknown categories: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return chosen


def open_view(
    repository: Repository, reference: str | SnapshotEntry, categories: list[str] | None
) -> SnapshotView:
    """Load the rows of `categories` (default: every category the key can read) of a snapshot, given
    as an entry already chosen (agent/repository/selection.py) or as a SNAPSHOT argument."""
    entry = reference if isinstance(reference, SnapshotEntry) else repository.find_snapshot(reference)
    return view_of(repository, entry, categories)


def view_of(repository: Repository, entry: SnapshotEntry, categories: list[str] | None) -> SnapshotView:
    """`open_view` of a snapshot already found (commands that walk many snapshots list them once)."""
    if categories is None:
        wanted = [c for c in repository.config.categories if repository.keys.can_read(c)]
    else:
        for category in categories:
            repository.keys.require_read(category)
        wanted = categories
    rows = {}
    for category in wanted:
        if category not in repository.config.public_keys:
            continue  # a category this repository has never had holds no files
        content = repository.read_part(entry.snapshot_id, category)
        rows[category] = [FileRow.from_json(item) for item in content]  # type: ignore[union-attr]
    return SnapshotView(entry, rows)


def read_manifest_part(repository: Repository, snapshot_id: str) -> ManifestPart:
    return ManifestPart.from_json(repository.read_part(snapshot_id, MANIFEST_SPACE))  # type: ignore[arg-type]
