"""`coffer repair`: heal a damaged repository from what survives; no step needs a hand on storage.

* *index*: rebuilt from the packs' trailers (three ranged reads a pack), the ground truth of
  what each pack holds. The new index object supersedes every index object listed before, the
  damaged and the conflicting ones included; those are removed after it is written, so a repair
  that stops halfway leaves superseded objects that readers already skip.
* *packs*: every pack is read whole and every blob verified. The intact blobs of a damaged pack
  are copied into new packs (unless an intact copy exists elsewhere), then the damaged pack
  leaves the index and storage. Whatever was only in its damaged blobs is lost.
* *snapshots*: a snapshot that references chunks no stored pack holds any more is rewritten
  without the files they belonged to, which it lists in its `skipped` entries; the old one is
  tombstoned and removed as `forget` does (the new one is stored first; a rerun after a crash
  finishes, never duplicates). A snapshot whose header, chain record or manifest part fails
  authentication cannot be read at all: it is tombstoned and removed.

Lost chunks are then in no index, so the next backup of the same data stores them again
(deduplication never treats them as present), and after it `check --read-data` is clean.
Repair holds the exclusive lease, like prune.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from agent.errors import CofferError, ObjectNotFoundError, RepositoryDamagedError
from agent.keys import primitives, slots
from agent.keys.keyset import HEADER_SPACE, MANIFEST_SPACE
from agent.pipeline import compression
from agent.pipeline.writer import BlobWriter
from agent.repository import locks
from agent.repository.index import INDEX_PREFIX, Index, PackRecord
from agent.repository.leftovers import find_leftovers, remove_leftovers
from agent.repository.pack import HEADER_READ_SIZE, PackedBlob, open_blob, open_pack_key, read_trailer
from agent.repository.repository import Repository
from agent.repository.snapshot import CategoryStats, FileRow, ManifestPart, SnapshotHeader, StoredFile
from agent.repository.tombstones import forget_snapshots
from agent.repository.trailers import StoredPack, scan_trailer, stored_packs

LOST_PREFIX = "lost: "
LOST_REASON = LOST_PREFIX + "its data was damaged in the repository (removed by `coffer repair`)"


def has_lost_files(header: SnapshotHeader) -> bool:
    """Whether `repair` removed files from this snapshot: its original Manifest.db then lists files it lacks,
    so restores rebuild Manifest.db from the rows that remain."""
    return any(str(entry.get("reason", "")).startswith(LOST_PREFIX) for entry in header.skipped)


@dataclass
class RepairReport:
    packs_scanned: int = 0
    packs_indexed: int = 0
    packs_damaged: list[str] = field(default_factory=list)  # removed after salvage
    blobs_salvaged: int = 0
    blobs_lost: int = 0
    index_objects_replaced: int = 0
    snapshots_rewritten: dict[str, str] = field(default_factory=dict)  # old ID -> new ID
    snapshots_removed: list[str] = field(default_factory=list)  # unreadable: tombstoned
    leftovers_removed: int = 0  # unlisted slots and snapshot copies an interrupted key change left
    files_lost: list[dict[str, str]] = field(default_factory=list)  # snapshot, category, domain, path
    notes: list[str] = field(default_factory=list)


def repair(
    repository: Repository,
    *,
    index: bool = True,
    packs: bool = True,
    snapshots: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> RepairReport:
    repository.keys.require_full()
    report = RepairReport()
    say = on_progress or (lambda _text: None)
    with locks.exclusive(repository, "repair"):  # (a takeover of a stale lease is still noted)
        repository.quiet = True  # the damage repair works around, it reports itself
        if index or packs:
            _rebuild_index(repository, report, read_packs=packs, say=say)
        if snapshots:
            _remove_leftovers(repository, report)
            _repair_snapshots(repository, report, say)
    return report


LEFTOVER_MIN_AGE_SECONDS = 600.0  # a younger unlisted slot may belong to a `key add` still running


def _remove_leftovers(repository: Repository, report: RepairReport) -> None:
    found = find_leftovers(repository)
    cutoff = time.time() - LEFTOVER_MIN_AGE_SECONDS
    ages = {info.name: info.mtime for info in repository.storage.list(slots.SLOT_PREFIX)}
    young = [name for name in found.slots if ages.get(name, 0.0) > cutoff]
    found.slots = [name for name in found.slots if name not in young]
    remove_leftovers(repository, found)
    report.leftovers_removed = len(found.slots) + len(found.copies) + len(found.forgotten)
    if young:
        report.notes.append(
            f"{len(young)} unlisted key slots are younger than {LEFTOVER_MIN_AGE_SECONDS / 60:.0f} minutes (a key "
            "change may be running): kept; a later `coffer repair` removes them"
        )


# --- index and packs --------------------------------------------------------------------------


@dataclass
class _Scanned:
    pack: StoredPack
    good: list[PackedBlob]
    damaged: bool  # some blob, the trailer or the pack's hash failed


def _rebuild_index(repository: Repository, report: RepairReport, *, read_packs: bool, say: Callable[[str], None]) -> None:
    storage = repository.storage
    # Index objects before packs: every pack an object listed here names was stored before it.
    listed_index = sorted(info.name for info in storage.list(INDEX_PREFIX))
    old = repository.load_index()
    packs = stored_packs(repository)
    say(f"{'reading' if read_packs else 'reading the trailers of'} {len(packs)} packs")
    scanned: list[_Scanned] = []
    for pack in sorted(packs.values(), key=lambda p: p.name):
        report.packs_scanned += 1
        if pack.space is None:
            report.notes.append(f"pack {pack.name} has a category tag this repository does not know: left alone")
            continue
        result = _read_whole(repository, pack, old) if read_packs else _read_trailer_only(repository, pack, old, report)
        if result is not None:
            scanned.append(result)

    intact: dict[tuple[str, bytes], str] = {}
    records: list[PackRecord] = []
    for item in scanned:
        if item.damaged:
            continue
        assert item.pack.space is not None
        records.append(_record(item.pack, item.good))
        for blob in item.good:
            intact.setdefault((item.pack.space, blob.chunk_id), item.pack.name)
    damaged = [item for item in scanned if item.damaged]
    if damaged:
        say(f"salvaging the intact blobs of {len(damaged)} damaged packs")
        _salvage(repository, damaged, intact, report)
    report.packs_indexed = len(records)
    repository.write_index(records, supersedes=listed_index)
    report.index_objects_replaced = len(listed_index)
    for name in [*listed_index, *(item.pack.name for item in damaged)]:
        try:
            storage.delete(name)
        except CofferError as exc:  # e.g. under Object Lock: superseded objects are skipped anyway
            report.notes.append(f"could not remove {name}: {exc}")
    report.packs_damaged = sorted(item.pack.name for item in damaged)


def _record(pack: StoredPack, blobs: list[PackedBlob]) -> PackRecord:
    assert pack.space is not None
    return PackRecord(pack.pack_id, pack.space, [(b.chunk_id, b.offset, b.length, b.raw_length) for b in blobs])


def _indexed_blobs(old: Index, pack: StoredPack) -> list[PackedBlob]:
    """The entries the old index objects gave a pack: the fallback when its trailer is damaged."""
    record = old.pack(pack.pack_id)
    return [PackedBlob(*blob) for blob in record.blobs] if record else []


def _read_trailer_only(repository: Repository, pack: StoredPack, old: Index, report: RepairReport) -> _Scanned | None:
    try:
        return _Scanned(pack, scan_trailer(repository, pack), damaged=False)
    except RepositoryDamagedError as exc:
        kept = _indexed_blobs(old, pack)
        report.notes.append(
            f"{exc}: "
            + (f"kept the {len(kept)} entries the index had for it; `coffer repair packs` verifies them" if kept else "nothing indexes it")
        )
        return _Scanned(pack, kept, damaged=False) if kept else None


def _read_whole(repository: Repository, pack: StoredPack, old: Index) -> _Scanned | None:
    """Read a pack and verify every blob; a damaged trailer falls back to the old index's entries."""
    assert pack.space is not None
    try:
        data = repository.storage.get(pack.name)
    except ObjectNotFoundError:
        return None
    whole = primitives.pack_digest(data).hex() == pack.pack_id
    try:
        key = open_pack_key(data[:HEADER_READ_SIZE], repository.keys.private_keys_for(pack.space), repository.tag(pack.space), pack.name)
    except RepositoryDamagedError:
        return _Scanned(pack, [], damaged=True)  # without its key nothing in it can be read
    try:
        listed = read_trailer(data, key, pack.name)
    except RepositoryDamagedError:
        listed, whole = _indexed_blobs(old, pack), False
    good = [blob for blob in listed if _blob_plaintext(repository, pack.space, key, data, blob) is not None]
    return _Scanned(pack, good, damaged=not whole or len(good) < len(listed))


def _blob_plaintext(repository: Repository, space: str, key: bytes, data: bytes, blob: PackedBlob) -> bytes | None:
    """The verified plaintext of one blob of a pack read whole, or None if it is damaged."""
    sealed = data[blob.offset : blob.offset + blob.length]
    try:
        payload, compressed = open_blob(key, blob.offset, blob.chunk_id, sealed, "")
        plain = compression.decompress(payload, blob.raw_length) if compressed else payload
    except (RepositoryDamagedError, compression.DecompressionError):
        return None
    id_key = repository.keys.chunk_id_key(space)
    if len(plain) != blob.raw_length or (id_key is not None and primitives.chunk_id(id_key, plain) != blob.chunk_id):
        return None
    return plain


def _salvage(
    repository: Repository, damaged: list[_Scanned], intact: dict[tuple[str, bytes], str], report: RepairReport
) -> None:
    """Copy the verified blobs of damaged packs that no intact pack holds into new packs."""
    fresh = Index()
    writer = BlobWriter(repository, fresh)
    for item in damaged:
        space = item.pack.space
        assert space is not None
        wanted = [blob for blob in item.good if (space, blob.chunk_id) not in intact]
        if not wanted:
            continue
        data = repository.storage.get(item.pack.name)
        key = open_pack_key(data[:HEADER_READ_SIZE], repository.keys.private_keys_for(space), repository.tag(space), item.pack.name)
        for blob in wanted:
            plain = _blob_plaintext(repository, space, key, data, blob)
            if plain is None:
                continue
            writer.store_chunk(space, plain, compress=True)
            intact[(space, blob.chunk_id)] = "salvaged"
            report.blobs_salvaged += 1
    writer.flush()


# --- snapshots --------------------------------------------------------------------------------


def _repair_snapshots(repository: Repository, report: RepairReport, say: Callable[[str], None]) -> None:
    index = repository.load_index()
    stored = set(stored_packs(repository))

    def present(space: str, chunk_id: bytes) -> bool:
        return any(repository.pack_name(space, loc.pack) in stored for loc in index.locations(space, chunk_id))

    entries = repository.snapshots()
    unreadable = dict(repository.damaged_snapshots)
    # A rewrite a killed repair already stored (same device, time and link, lost files recorded): finish, don't redo.
    rewrites = {
        (e.chain.device_tag, e.header.time, e.chain.previous): e.snapshot_id for e in entries if has_lost_files(e.header)
    }
    for entry in entries:
        try:
            parts, lost = _surviving_parts(repository, entry.snapshot_id, present)
        except RepositoryDamagedError as exc:
            unreadable[entry.snapshot_id] = str(exc)
            continue
        if not lost:
            continue
        new_id = rewrites.get((entry.chain.device_tag, entry.header.time, entry.chain.previous))
        if new_id is None or new_id == entry.snapshot_id:
            skipped = [{"domain": e["domain"], "path": e["path"], "reason": e["reason"]} for e in lost]
            header = replace(
                entry.header, skipped=[*entry.header.skipped, *skipped], categories=_recount(entry.header.categories, parts)
            )
            new_id = repository.write_snapshot(header, parts, entry.chain.previous)
        forget_snapshots(repository, [entry.snapshot_id])  # the new one first: a crash never loses the snapshot
        report.snapshots_rewritten[entry.snapshot_id] = new_id
        report.files_lost.extend({"snapshot": entry.snapshot_id, **e} for e in lost)
        say(f"snapshot {entry.snapshot_id[:8]} → {new_id[:8]}: {len(lost)} files lost")
    for _, problem in sorted(unreadable.items()):
        report.notes.append(f"{problem}: nothing of it can be read, so it was forgotten")
    if unreadable:
        forget_snapshots(repository, sorted(unreadable))
        report.snapshots_removed = sorted(unreadable)


def _surviving_parts(
    repository: Repository, snapshot_id: str, present: Callable[[str, bytes], bool]
) -> tuple[dict[str, object], list[dict[str, str]]]:
    """The snapshot's parts without the files whose chunks are gone, and the list of those files.
    A damaged category part loses that category; a damaged manifest part makes the snapshot unreadable."""
    manifest = ManifestPart.from_json(repository.read_part(snapshot_id, MANIFEST_SPACE))  # type: ignore[arg-type]
    parts: dict[str, object] = {}
    lost: list[dict[str, str]] = []
    for space in repository.config.public_keys:
        if space in (HEADER_SPACE, MANIFEST_SPACE):
            continue
        try:
            rows = [FileRow.from_json(item) for item in repository.read_part(snapshot_id, space)]  # type: ignore[union-attr]
        except RepositoryDamagedError:
            rows = []
            lost.append({"category": space, "domain": "", "path": "", "reason": f"{LOST_REASON} (every {space} file)"})
        kept = []
        for row in rows:
            if all(present(space, chunk) for chunk in row.chunks):
                kept.append(row)
            else:
                lost.append({"category": space, "domain": row.domain, "path": row.relative_path, "reason": LOST_REASON})
        parts[space] = [row.to_json() for row in kept]
    parts[MANIFEST_SPACE] = _repair_manifest(manifest, lambda chunk: present(MANIFEST_SPACE, chunk), lost).to_json()
    return parts, lost


def _repair_manifest(manifest: ManifestPart, present: Callable[[bytes], bool], lost: list[dict[str, str]]) -> ManifestPart:
    """Drop the manifest space's files whose chunks are gone (an export then lacks them)."""
    others = {}
    for name, stored in manifest.other_files.items():
        if all(present(chunk) for chunk in stored.chunks):
            others[name] = stored
        else:
            lost.append({"category": MANIFEST_SPACE, "domain": "", "path": name, "reason": LOST_REASON})
    database = manifest.manifest_db
    if not all(present(chunk) for chunk in database.chunks):
        lost.append({"category": MANIFEST_SPACE, "domain": "", "path": "Manifest.db", "reason": LOST_REASON})
        database = StoredFile(0, [])
    return ManifestPart(database, manifest.backup_password, others)


def _recount(categories: dict[str, CategoryStats], parts: dict[str, object]) -> dict[str, CategoryStats]:
    """Per-category file and byte counts of the rows that remain (as the builder counts them; new bytes as they were)."""
    counted = dict(categories)
    for space, stats in categories.items():
        rows = parts.get(space)
        if isinstance(rows, list):
            kept = [FileRow.from_json(item) for item in rows]
            counted[space] = replace(stats, files=sum(1 for r in kept if r.flags == 1), bytes=sum(r.size for r in kept))
    return counted
