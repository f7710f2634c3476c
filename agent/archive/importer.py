"""`coffer import DIR`: ingest a Finder/iTunes/idevicebackup2 backup folder as a snapshot.

Encrypted backups are decrypted with their password and stored as plaintext, so they
deduplicate and compress like anything else; the keybag and per-file keys stay in the
snapshot so `coffer export` rebuilds the original ciphertext byte for byte.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from agent.archive.builder import CommitResult, SnapshotBuilder
from agent.archive.files_cache import CachedFile, FilesCache, fingerprint
from agent.archive.parallel import SMALL_INGEST_FILE, bounded_map
from agent.archive.partial_marker import is_marked_partial
from agent.archive.passwords import known_passwords
from agent.archive.progress import Progress
from agent.errors import CofferError, UsageError, WrongSecretError
from agent.ios.categories import classify
from agent.ios.folder import INFO_PLIST, MANIFEST_DB, MANIFEST_PLIST, BackupFolder
from agent.ios.identity import DeviceIdentity
from agent.ios.plists import load_plist_dict
from agent.ios.records import FileRecord, PackedRecords
from agent.pipeline.chunker import is_sqlite_name
from agent.pipeline.writer import BlobWriter, StoredStream, WriterStats
from agent.repository import locks
from agent.repository.fossils import index_for_backup
from agent.repository.repository import Repository


@dataclass
class ImportResult:
    commit: CommitResult
    writer: WriterStats
    skipped: int
    warnings: list[str]


def locate_backup_folder(path: Path) -> Path:
    """Accept the backup folder itself or a backup root holding exactly one device folder."""
    if (path / MANIFEST_PLIST).is_file():
        return path
    if not path.is_dir():
        raise UsageError(f"{path} is not a folder")
    candidates = [child for child in sorted(path.iterdir()) if (child / MANIFEST_PLIST).is_file()]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UsageError(f"{path} is not an iOS backup folder (no Manifest.plist)")
    raise UsageError(f"{path} holds backups of several devices: name one of {', '.join(c.name for c in candidates)}")


def backup_date(folder: BackupFolder) -> float | None:
    """When the backup was made: Status.plist's `Date`, else Info.plist's `Last Backup Date` (UTC)."""
    for value in (folder.status.get("Date"), folder.info.get("Last Backup Date")):
        if isinstance(value, dt.datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # plists store UTC, unzoned
            return moment.timestamp()
    return None


def default_workers() -> int:
    # One file per core (at least two): the per-byte work runs outside the GIL now, so more files in flight
    # only add memory. A 1.2 GB import on 2 cores: 2.7-2.9 s with 2, 3 or 4 workers, peak RSS 180, 207 and
    # 197-250 MB.
    return min(8, max(2, os.cpu_count() or 1))


def import_folder(
    repository: Repository,
    path: Path,
    *,
    backup_password: str | None,
    progress: bool,
    workers: int | None = None,
    use_files_cache: bool = True,
) -> ImportResult:
    folder, backup_password = _open_folder(repository, locate_backup_folder(path), backup_password)
    # Announce the backup before reading the index, so prune never deletes a pack this run may reuse.
    cache = FilesCache(repository.config.repository_id, repository.device_tag(folder.device.udid))
    with locks.running_backup(repository), cache:
        writer = BlobWriter(repository, index_for_backup(repository))
        commit = _import(
            repository, folder, writer, cache, backup_password, progress, workers or default_workers(), use_files_cache
        )
    return ImportResult(commit, writer.stats, len(folder.skipped), folder.warnings)


def _open_folder(repository: Repository, path: Path, password: str | None) -> tuple[BackupFolder, str | None]:
    """Open the folder; an encrypted one without a password given is tried with the passwords sealed in
    the repository for its device (an export Coffer made opens without asking)."""
    try:
        return BackupFolder.open(path, password), password
    except WrongSecretError:
        if password is not None:
            raise
        udid = _folder_udid(path)
        for candidate in known_passwords(repository, udid) if udid else []:
            try:
                return BackupFolder.open(path, candidate), candidate
            except WrongSecretError:
                continue
        raise


def _folder_udid(path: Path) -> str:
    plists = []
    for name in (MANIFEST_PLIST, INFO_PLIST):
        try:
            plists.append(load_plist_dict((path / name).read_bytes(), str(path / name)))
        except (OSError, CofferError):
            plists.append({})
    return DeviceIdentity.from_plists(plists[1], plists[0]).udid


def _small_file(item: tuple[FileRecord, str | None]) -> bool:
    return item[0].size < SMALL_INGEST_FILE


def _import(
    repository: Repository,
    folder: BackupFolder,
    writer: BlobWriter,
    cache: FilesCache,
    backup_password: str | None,
    progress: bool,
    workers: int,
    use_files_cache: bool,
) -> CommitResult:
    builder = SnapshotBuilder(repository, writer)
    manifest_db = builder.store_whole(folder.read_manifest_db(), MANIFEST_DB)
    # The files to read, packed like the folder's rows (memory per file is most of what grows with a device).
    files = PackedRecords()
    stamps: deque[str | None] = deque()
    to_read = 0
    for record in folder.take_records():
        if not record.is_file:
            builder.add(record, None)
            continue
        stamp = fingerprint(record, folder.blob_path(record))
        cached = cache.lookup(record, stamp, writer.index) if use_files_cache else None
        if cached is not None:
            builder.add(record, StoredStream(cached.chunks, cached.size), cached.category)
            cache.remember(record.file_id, cached)
            writer.stats.files_unchanged += 1
            writer.stats.unchanged_bytes += cached.size
        else:
            files.append(record)
            stamps.append(stamp)
            to_read += record.size

    with Progress("import", to_read, enabled=progress) as bar:

        def store(item: tuple[FileRecord, str | None]) -> None:
            record, stamp = item
            category = classify(record.domain, record.relative_path).value
            stored: StoredStream = writer.store_file(
                category,
                bar.counted(folder.open_plaintext(record, reuse_buffer=True)),
                relative_path=record.relative_path,
                sqlite_hint=is_sqlite_name(record.relative_path),
            )
            builder.add(record, stored, category)
            if stamp is not None:
                cache.remember(record.file_id, CachedFile(stamp, category, stored.size, stored.chunks))

        try:
            queue = ((record, stamps.popleft()) for record in files.drain())
            for _ in bounded_map(store, queue, workers=workers, in_flight=workers * 2, alone=_small_file):
                pass
        except BaseException:
            # Keep what was uploaded indexed, so the next run resumes instead of starting over.
            with contextlib.suppress(Exception):
                writer.flush()
            raise
    commit = builder.commit(
        device=folder.device,
        source="import",
        info_plist=folder.info_plist,
        status_plist=folder.status_plist,
        manifest_plist=folder.manifest_plist,
        manifest_db=manifest_db,
        is_encrypted=folder.is_encrypted,
        skipped=folder.skipped,
        backup_password=backup_password if folder.is_encrypted else None,
        other_files={name: (folder.path / name).read_bytes() for name in folder.other_files},
        # Without device encryption Health, Keychain... are absent, as in a USB backup.
        complete=folder.is_encrypted,
        partial=is_marked_partial(folder.info),
        role="import",
        backup_time=backup_date(folder),
    )
    cache.save()
    return commit
