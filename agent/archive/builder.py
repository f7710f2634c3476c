"""Assemble a snapshot from file rows and stored content, then commit it.

Shared by `coffer import` (a backup folder) and `coffer backup` (a device over USB): both
feed rows as their files are stored, then commit once packs and index are written. Each row
is serialized into its category's compressed part as it arrives, so a backup of many files
holds about 0.2 KiB per file here instead of its row objects (DESIGN.md §5: memory flat with size).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from agent.ios.categories import classify
from agent.ios.identity import DeviceIdentity
from agent.ios.records import FLAG_FILE, FileRecord
from agent.ios.safety import SkippedEntry
from agent.keys.keyset import MANIFEST_SPACE
from agent.pipeline.writer import BlobWriter, StoredStream
from agent.repository.repository import Repository, host_name
from agent.repository.snapshot import (
    CategoryStats,
    FileRow,
    ManifestPart,
    PartEncoder,
    SnapshotHeader,
    StoredFile,
    encode_item,
)


@dataclass
class CommitResult:
    snapshot_id: str
    header: SnapshotHeader
    elapsed: float


@dataclass
class _CategoryPart:
    """One category's rows so far: compressed, and counted for its stats."""

    encoder: PartEncoder = field(default_factory=PartEncoder)
    files: int = 0
    bytes: int = 0


@dataclass
class SnapshotBuilder:
    repository: Repository
    writer: BlobWriter
    started: float = field(default_factory=time.time)
    _parts: dict[str, _CategoryPart] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: FileRecord, stored: StoredStream | None, category: str | None = None) -> str:
        category = category or classify(record.domain, record.relative_path).value
        row = FileRow(
            file_id=record.file_id,
            domain=record.domain,
            relative_path=record.relative_path,
            flags=record.flags,
            mbfile=record.blob,
            size=record.size if record.is_file else 0,
            chunks=stored.chunks if stored else [],
        )
        encoded = encode_item(row.to_json())  # the per-row work, outside the lock
        with self._lock:
            part = self._parts.setdefault(category, _CategoryPart())
            part.encoder.add(encoded)
            part.files += 1 if row.flags == FLAG_FILE else 0
            part.bytes += row.size
        return category

    def category_stats(self) -> dict[str, CategoryStats]:
        stats = {}
        for category, part in sorted(self._parts.items()):
            written = self.writer.stats.spaces.get(category)
            stats[category] = CategoryStats(
                files=part.files, bytes=part.bytes, new_bytes=written.stored_bytes if written else 0
            )
        return stats

    def store_whole(self, data: bytes, name: str) -> StoredFile:
        """Store a whole file (Manifest.db, an extra top-level file) in the manifest space. The import stores
        Manifest.db before its files, so it does not hold the bytes while they are ingested."""
        stored = self.writer.store_file(MANIFEST_SPACE, [data], relative_path=name, sqlite_hint=name.endswith(".db"))
        return StoredFile(stored.size, stored.chunks)

    def commit(
        self,
        *,
        device: DeviceIdentity,
        source: str,
        info_plist: bytes,
        status_plist: bytes,
        manifest_plist: bytes,
        manifest_db: StoredFile,
        is_encrypted: bool,
        skipped: list[SkippedEntry],
        backup_password: str | None,
        other_files: dict[str, bytes],
        complete: bool = True,
        partial: bool = False,
        role: str = "backup",
        backup_time: float | None = None,
    ) -> CommitResult:
        """Store the extra files, flush packs and index, then write the snapshot. `manifest_db` is what
        `store_whole` returned for the backup's Manifest.db.

        The snapshot's time is `backup_time` (an imported backup's own date), else this run's start.
        A partial snapshot (a chosen subset of categories) is never complete."""
        manifest = ManifestPart(
            manifest_db=manifest_db,
            backup_password=backup_password,
            other_files={name: self.store_whole(data, name) for name, data in other_files.items()},
        )
        self.writer.flush()
        header = SnapshotHeader(
            time=self.started if backup_time is None else backup_time,
            device={
                "udid": device.udid,
                "name": device.name,
                "product_type": device.product_type,
                "product_version": device.product_version,
                "build_version": device.build,
                "serial": device.serial,
            },
            source=source,
            host=host_name(),
            info_plist=info_plist,
            status_plist=status_plist,
            manifest_plist=manifest_plist,
            is_encrypted=is_encrypted,
            categories=self.category_stats(),
            skipped=[
                {"file_id": s.file_id, "domain": s.domain, "path": s.relative_path, "reason": s.reason} for s in skipped
            ],
            complete=complete and not partial,
            partial=partial,
            role=role,
            recorded=time.time(),
        )
        parts: dict[str, object] = {category: part.encoder.finish() for category, part in self._parts.items()}
        parts[MANIFEST_SPACE] = manifest.to_json()
        previous = self.repository.previous_snapshot(device.udid, before=header.time)
        snapshot_id = self.repository.write_snapshot(header, parts, previous)
        return CommitResult(snapshot_id, header, time.time() - self.started)
