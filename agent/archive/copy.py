"""`coffer copy`: copy snapshots from one repository into another, uploading only what the target lacks.

The usual flow is local first, cloud second: back up to a folder, then copy to a bucket. The
two repositories have different keys, so the same file has different chunk IDs (keyed MACs)
and even different chunk boundaries (a keyed chunker) in each. Each file is therefore read
from the source (authenticated and verified blob by blob), chunked and stored through the
target's own write pipeline: exactly what a backup of that file into the target would
store. Copies thus deduplicate against the target's own backups and against each other, and
only chunks the target lacks are uploaded. A file whose source chunks were already
translated in this run (the same file in an earlier snapshot) is not read again.

Each snapshot is sealed again for the target, with its original header. Chains stay per
device: a copied snapshot follows the newest target snapshot of its device that is not newer
than itself. A snapshot the target already holds (same device, same time; counted, since an
import of a partial export shares its source's date) is skipped, so a copy run again copies
only what is new. The copy announces itself like a backup
(`locks.running_backup`), so a prune of the target never deletes a pack it reuses.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from agent.archive.importer import default_workers
from agent.archive.parallel import SMALL_FILE, bounded_map
from agent.archive.progress import Progress
from agent.errors import UsageError
from agent.keys.keyset import HEADER_SPACE, MANIFEST_SPACE
from agent.pipeline.chunker import is_sqlite_name
from agent.pipeline.reader import BlobReader
from agent.pipeline.writer import BlobWriter, WriterStats
from agent.repository import locks, selection
from agent.repository.fossils import index_for_backup
from agent.repository.index import Index
from agent.repository.repository import Repository, SnapshotEntry
from agent.repository.snapshot import ChainRecord, FileRow, ManifestPart, StoredFile

ChunkList = tuple[bytes, ...]


@dataclass
class CopiedSnapshot:
    source_id: str
    target_id: str | None  # None when the target already held it
    entry: SnapshotEntry


@dataclass
class CopyResult:
    snapshots: list[CopiedSnapshot] = field(default_factory=list)
    bytes_read: int = 0  # plaintext read from the source
    new_bytes: int = 0  # plaintext the target did not hold yet
    uploaded_bytes: int = 0  # pack bytes written to the target
    packs: int = 0

    def add_writer(self, stats: WriterStats) -> None:
        self.new_bytes += sum(space.new_bytes for space in stats.spaces.values())
        self.uploaded_bytes += stats.uploaded_bytes
        self.packs += stats.packs_uploaded


def _small_row(item: tuple[str, FileRow]) -> bool:
    return item[1].size < SMALL_FILE


def select_snapshots(source: Repository, references: list[str]) -> list[SnapshotEntry]:
    """The snapshots named (IDs, unique prefixes, `latest`), or all of them; oldest first."""
    if not references:
        return source.snapshots()
    chosen = {entry.snapshot_id: entry for entry in (source.find_snapshot(ref) for ref in references)}
    return selection.chronological(chosen.values())


def copy_snapshots(
    source: Repository,
    target: Repository,
    references: list[str],
    *,
    progress: bool,
    workers: int | None = None,
) -> CopyResult:
    source.keys.require_full()
    target.keys.require_write()
    if source.config.repository_id == target.config.repository_id:
        raise UsageError("the source and the target are the same repository")
    missing = sorted(set(source.config.public_keys) - set(target.config.public_keys))
    if missing:
        raise UsageError(
            f"the target repository has no categories {', '.join(missing)}: it cannot hold these snapshots"
        )
    entries = select_snapshots(source, references)
    result = CopyResult()
    with locks.running_backup(target), BlobReader(source, source.load_index()) as reader:
        copier = _Copier(source, target, reader, index_for_backup(target), workers or default_workers())
        for entry in entries:
            target_id = copier.copy(entry, result, progress=progress)
            result.snapshots.append(CopiedSnapshot(entry.snapshot_id, target_id, entry))
    return result


class _Copier:
    def __init__(
        self, source: Repository, target: Repository, reader: BlobReader, index: Index, workers: int
    ) -> None:
        self.source = source
        self.target = target
        self.reader = reader
        self.index = index  # the target's, grown by every snapshot copied
        self.workers = workers
        self.chains: dict[str, ChainRecord] = target.chains()
        # How many snapshots of each (device, time) the target holds already: that many are not copied again.
        # A count, not a set: an import of a partial export shares its source snapshot's date.
        self.present = Counter((c.device_tag, c.time) for c in self.chains.values())
        self._translated: dict[tuple[str, ChunkList], list[bytes]] = {}
        self._lock = threading.Lock()

    def copy(self, entry: SnapshotEntry, result: CopyResult, *, progress: bool) -> str | None:
        """Copy one snapshot; None when the target already holds it."""
        device_tag = self.target.device_tag(entry.header.device.get("udid", ""))
        if self.present[(device_tag, entry.header.time)] > 0:
            self.present[(device_tag, entry.header.time)] -= 1
            return None
        writer = BlobWriter(self.target, self.index)
        parts = self._copy_parts(entry, writer, result, progress=progress)
        writer.flush()
        result.add_writer(writer.stats)
        previous = self._previous(device_tag, entry.header.time)
        target_id = self.target.write_snapshot(entry.header, parts, previous)
        self.chains[target_id] = ChainRecord(device_tag=device_tag, previous=previous, time=entry.header.time)
        return target_id

    def _previous(self, device_tag: str, time: float) -> str | None:
        earlier = [
            (c.time, sid) for sid, c in self.chains.items() if c.device_tag == device_tag and c.time <= time
        ]
        return max(earlier)[1] if earlier else None

    def _copy_parts(
        self, entry: SnapshotEntry, writer: BlobWriter, result: CopyResult, *, progress: bool
    ) -> dict[str, object]:
        rows: dict[str, list[FileRow]] = {}
        parts: dict[str, object] = {}
        for space in self.source.config.public_keys:
            if space == HEADER_SPACE:
                continue
            content = self.source.read_part(entry.snapshot_id, space)
            if space == MANIFEST_SPACE:
                manifest = ManifestPart.from_json(content)  # type: ignore[arg-type]
                manifest.manifest_db = self._copy_whole(manifest.manifest_db, "Manifest.db", writer, result)
                manifest.other_files = {
                    name: self._copy_whole(stored, name, writer, result)
                    for name, stored in manifest.other_files.items()
                }
                parts[space] = manifest.to_json()
            else:
                rows[space] = [FileRow.from_json(item) for item in content]  # type: ignore[union-attr]
        files = [(space, row) for space, space_rows in rows.items() for row in space_rows if row.chunks]
        with Progress(f"copy {entry.short_id}", sum(row.size for _, row in files), enabled=progress) as bar:

            def copy_row(item: tuple[str, FileRow]) -> None:
                space, row = item
                row.chunks = self._translate(space, row.chunks, row.relative_path, writer, result)
                bar.advance(row.size)

            for _ in bounded_map(
                copy_row, files, workers=self.workers, in_flight=self.workers * 2, alone=_small_row
            ):
                pass
        for space, space_rows in rows.items():
            parts[space] = [row.to_json() for row in space_rows]
        return parts

    def _copy_whole(
        self, stored: StoredFile, name: str, writer: BlobWriter, result: CopyResult
    ) -> StoredFile:
        return StoredFile(stored.size, self._translate(MANIFEST_SPACE, stored.chunks, name, writer, result))

    def _translate(
        self, space: str, chunks: list[bytes], relative_path: str, writer: BlobWriter, result: CopyResult
    ) -> list[bytes]:
        """The target's chunk IDs for a file made of the source's `chunks`, storing what the target lacks."""
        key = (space, tuple(chunks))
        with self._lock:
            known = self._translated.get(key)
        if known is not None:
            return known
        pieces = self._counted(self.reader.read_stream(space, chunks), result)
        stored = writer.store_file(
            space, pieces, relative_path=relative_path, sqlite_hint=is_sqlite_name(relative_path)
        )
        with self._lock:
            self._translated[key] = stored.chunks
        return stored.chunks

    def _counted(self, pieces: Iterable[bytes], result: CopyResult) -> Iterator[bytes]:
        for piece in pieces:
            with self._lock:
                result.bytes_read += len(piece)
            yield piece
