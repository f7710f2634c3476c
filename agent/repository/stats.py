"""`coffer stats`: how much the snapshots hold, how much storage that takes, and what dedup saves.

* restore size: the bytes a restore of every chosen snapshot would write (restic's
  `restore-size`), counting a file once per snapshot that holds it;
* unique size: the distinct chunks those files are made of, before compression (`raw-data`);
* stored size: those chunks as stored, compressed and encrypted (from the index).
The dedup ratio is restore / unique, the compression ratio unique / stored. Categories are
disjoint spaces, so the per-category figures add up to the total; devices can share chunks
(the same photo on two phones), so their stored sizes can add up to more than the total.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from agent.repository.index import Index
from agent.repository.repository import Repository, SnapshotEntry
from agent.repository.snapshot import FileRow


@dataclass
class Usage:
    snapshots: int = 0
    files: int = 0
    restore_bytes: int = 0
    unique_bytes: int = 0
    stored_bytes: int = 0
    missing_chunks: int = 0  # referenced but in no pack the index knows (`check` says more)

    @property
    def dedup_ratio(self) -> float:
        return self.restore_bytes / self.unique_bytes if self.unique_bytes else 1.0

    @property
    def compression_ratio(self) -> float:
        return self.unique_bytes / self.stored_bytes if self.stored_bytes else 1.0

    def to_json(self) -> dict[str, object]:
        return {
            "snapshots": self.snapshots,
            "files": self.files,
            "restore_bytes": self.restore_bytes,
            "unique_bytes": self.unique_bytes,
            "stored_bytes": self.stored_bytes,
            "dedup_ratio": round(self.dedup_ratio, 3),
            "compression_ratio": round(self.compression_ratio, 3),
            "missing_chunks": self.missing_chunks,
        }


@dataclass
class RepositoryStats:
    total: Usage
    categories: dict[str, Usage] = field(default_factory=dict)
    devices: dict[str, Usage] = field(default_factory=dict)  # by UDID
    device_names: dict[str, str] = field(default_factory=dict)


class _Accumulator:
    """Restore sizes and the set of distinct chunks of one slice (the whole, a category or a device)."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.snapshots: set[str] = set()
        self.chunks: set[tuple[str, bytes]] = set()

    def add(self, snapshot_id: str, space: str, rows: list[FileRow]) -> None:
        self.snapshots.add(snapshot_id)
        for row in rows:
            if row.flags == 1:
                self.usage.files += 1
                self.usage.restore_bytes += row.size
            self.chunks.update((space, chunk) for chunk in row.chunks)

    def finish(self, index: Index) -> Usage:
        self.usage.snapshots = len(self.snapshots)
        for space, chunk in self.chunks:
            location = index.lookup(space, chunk)
            if location is None:
                self.usage.missing_chunks += 1
            else:
                self.usage.unique_bytes += location.raw_length
                self.usage.stored_bytes += location.length
        return self.usage


def repository_stats(repository: Repository, entries: list[SnapshotEntry], categories: list[str] | None = None) -> RepositoryStats:
    """Figures for `entries`, over `categories` (default: every category the key can read)."""
    wanted = categories if categories is not None else [c for c in repository.config.categories if repository.keys.can_read(c)]
    index = repository.load_index()
    total = _Accumulator()
    by_category: dict[str, _Accumulator] = defaultdict(_Accumulator)
    by_device: dict[str, _Accumulator] = defaultdict(_Accumulator)
    names: dict[str, str] = {}
    for entry in entries:
        udid = entry.header.device.get("udid", "")
        names[udid] = entry.header.device.get("name", "")
        total.snapshots.add(entry.snapshot_id)
        by_device[udid].snapshots.add(entry.snapshot_id)
        for category in wanted:
            if category not in repository.config.public_keys:
                continue  # a category this repository has never had holds no files
            rows = [FileRow.from_json(item) for item in repository.read_part(entry.snapshot_id, category)]  # type: ignore[attr-defined]
            for accumulator in (total, by_category[category], by_device[udid]):
                accumulator.add(entry.snapshot_id, category, rows)
    return RepositoryStats(
        total=total.finish(index),
        categories={k: v.finish(index) for k, v in sorted(by_category.items()) if v.usage.files or v.chunks},
        devices={k: v.finish(index) for k, v in sorted(by_device.items())},
        device_names=names,
    )
