"""Assemble a snapshot from file rows and stored content, then commit it.

Shared by `coffer import` (a backup folder) and `coffer backup` (a device over USB): both
feed rows as their files are stored, then commit once packs and index are written.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from agent.ios.categories import classify
from agent.ios.identity import DeviceIdentity
from agent.ios.records import FileRecord
from agent.ios.safety import SkippedEntry
from agent.keys.keyset import MANIFEST_SPACE
from agent.pipeline.writer import BlobWriter, StoredStream
from agent.repository.repository import Repository, host_name
from agent.repository.snapshot import CategoryStats, FileRow, ManifestPart, SnapshotHeader, StoredFile


@dataclass
class CommitResult:
    snapshot_id: str
    header: SnapshotHeader
    elapsed: float


@dataclass
class SnapshotBuilder:
    repository: Repository
    writer: BlobWriter
    started: float = field(default_factory=time.time)
    rows: dict[str, list[FileRow]] = field(default_factory=lambda: defaultdict(list))
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
        with self._lock:
            self.rows[category].append(row)
        return category

    def category_stats(self) -> dict[str, CategoryStats]:
        stats = {}
        for category, rows in sorted(self.rows.items()):
            written = self.writer.stats.spaces.get(category)
            stats[category] = CategoryStats(
                files=sum(1 for r in rows if r.flags == 1),
                bytes=sum(r.size for r in rows),
                new_bytes=written.stored_bytes if written else 0,
            )
        return stats

    def commit(
        self,
        *,
        device: DeviceIdentity,
        source: str,
        info_plist: bytes,
        status_plist: bytes,
        manifest_plist: bytes,
        manifest_db: bytes,
        is_encrypted: bool,
        skipped: list[SkippedEntry],
        backup_password: str | None,
        other_files: dict[str, bytes],
        complete: bool = True,
        partial: bool = False,
        role: str = "backup",
        backup_time: float | None = None,
    ) -> CommitResult:
        """Store Manifest.db and extra files, flush packs and index, then write the snapshot.

        The snapshot's time is `backup_time` (an imported backup's own date), else this run's start.
        A partial snapshot (a chosen subset of categories) is never complete."""
        manifest = ManifestPart(
            manifest_db=self._store_whole(manifest_db, "Manifest.db"),
            backup_password=backup_password,
            other_files={name: self._store_whole(data, name) for name, data in other_files.items()},
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
        parts: dict[str, object] = {cat: [row.to_json() for row in rows] for cat, rows in self.rows.items()}
        parts[MANIFEST_SPACE] = manifest.to_json()
        previous = self.repository.previous_snapshot(device.udid, before=header.time)
        snapshot_id = self.repository.write_snapshot(header, parts, previous)
        return CommitResult(snapshot_id, header, time.time() - self.started)

    def _store_whole(self, data: bytes, name: str) -> StoredFile:
        stored = self.writer.store_file(MANIFEST_SPACE, [data], relative_path=name, sqlite_hint=name.endswith(".db"))
        return StoredFile(stored.size, stored.chunks)
