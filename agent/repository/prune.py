"""`coffer prune`: reclaim the space of forgotten snapshots, safely beside running backups.

Backups take no lock, so a backup that started before prune may deduplicate against a pack
prune thinks unused. Prune therefore deletes in two phases, as duplicacy's fossil
collection and kopia's blob GC do:

1. *Mark*: packs no snapshot references (and packs left unindexed by interrupted backups)
   are listed in a sealed `fossils/` record; packs that are mostly unused are repacked (their
   live blobs copied into new packs) and the old ones marked the same way. Marked packs stay
   in the index, so a backup already running can still use them; backups that start later
   leave them out (`fossils.index_for_backup`).
2. *Sweep*, in a later run: a fossil is deleted only when it was marked more than the grace
   period ago, before the start of the oldest running backup, and no snapshot (new ones
   included) needs a blob that lives only there; otherwise it is unmarked and kept.

A chunk two writers uploaded at the same time is stored in two packs; it is live only in the
pack the index resolves it to, so the other copy counts as unused space and is reclaimed.

Every run holds the exclusive prune lease. The new index (without the deleted packs) is
written first and supersedes every index object listed; packs, fossil records and the old
index objects are removed only after it, so a prune that stops halfway leaves at most
unindexed packs for the next run.

With Object Lock (kopia's model) prune never tries to remove a locked version: a locked
object it no longer needs gets a delete marker (it leaves the listing, its data stays until
its retention ends), and a later run removes such hidden versions once they have expired.
Every object still referenced has its retention extended to `object_lock_days` from now.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agent.errors import ObjectNotFoundError, RepositoryDamagedError, StorageError
from agent.keys import slots
from agent.pipeline.reader import BlobReader
from agent.pipeline.writer import BlobWriter
from agent.repository import locks
from agent.repository.check import referenced_chunks
from agent.repository.config import CONFIG_NAME
from agent.repository.fossils import FOSSIL_PREFIX, Fossils, load_fossils, write_fossils
from agent.repository.index import INDEX_PREFIX, Index, PackRecord
from agent.repository.repository import DATA_PREFIX, Repository
from agent.repository.snapshot import SNAPSHOT_PREFIX
from agent.repository.tombstones import TOMBSTONE_PREFIX
from agent.repository.trailers import confirmed_index
from agent.storage.base import ObjectInfo, ObjectLockedError, Storage

DEFAULT_GRACE_SECONDS = 3600.0
REPACK_WASTE = 0.25  # repack a pack once a quarter of its bytes are unused
RETENTION_THREADS = 8  # retention updates are one small request each: overlap their latency

ChunkKey = tuple[str, bytes]  # (space, chunk ID)


@dataclass
class PruneReport:
    packs_deleted: int = 0
    bytes_deleted: int = 0
    packs_marked: int = 0
    packs_repacked: int = 0
    packs_kept_alive: int = 0  # fossils a newer snapshot still needed
    index_objects_replaced: int = 0
    objects_locked: int = 0  # no longer needed but under Object Lock: hidden now, removed once expired
    versions_purged: int = 0  # hidden objects whose retention ended, removed for good
    retention_extended: int = 0
    notes: list[str] = field(default_factory=list)


def prune(
    repository: Repository,
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    dry_run: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> PruneReport:
    repository.keys.require_full()
    report = PruneReport()
    storage = repository.storage
    say = on_progress or (lambda _text: None)
    with locks.exclusive(repository, "prune"):
        listed_index = {info.name for info in storage.list(INDEX_PREFIX)}
        # Only entries the packs' trailers confirm decide what is deleted (an added index object could lie).
        index = confirmed_index(repository, repository.load_index(), report.notes.append)
        snapshot_ids = repository.snapshot_ids()
        say(f"reading {len(snapshot_ids)} snapshots")
        used: set[ChunkKey] = set()
        for snapshot_id in snapshot_ids:
            used |= referenced_chunks(repository, snapshot_id)
        stored = {info.name: info for info in storage.list(DATA_PREFIX)}
        records = {repository.pack_name(r.space, r.pack_id): r for r in index.packs()}
        holders = _holders(records)
        _require_indexed(used, holders)

        fossils = load_fossils(repository)
        sweep = _sweep(
            fossils, records, holders, used, stored, grace_seconds, locks.oldest_running_backup(repository)
        )
        report.packs_kept_alive = sweep.kept_alive
        marked, repack = _mark(repository, index, records, holders, used, stored, sweep)
        report.packs_marked = len(marked)
        report.packs_repacked = len(repack)
        if dry_run:
            report.packs_deleted = len(sweep.doomed)
            report.bytes_deleted = sum(stored[name].size for name in sweep.doomed if name in stored)
            return report

        new_records: list[PackRecord] = []
        repack_objects: set[str] = set()
        if repack:
            say(f"repacking {len(repack)} packs")
            new_records, repack_objects = _repack(repository, index, repack)
            marked.update((repository.pack_name(r.space, r.pack_id), r.space) for r in repack)
        if marked:
            write_fossils(repository, marked)

        superseded: set[str] = set()
        current_index = set(index.objects)
        if sweep.doomed or repack:
            superseded = listed_index | index.objects | repack_objects
            keep = [record for name, record in records.items() if name not in sweep.doomed]
            current_index = {repository.write_index([*keep, *new_records], supersedes=sorted(superseded))}
            report.index_objects_replaced = len(superseded)

        remover = _Remover(storage, locked=repository.config.object_lock_days > 0, report=report)
        for name in sorted(sweep.doomed):
            remover.remove(name, stored[name].size if name in stored else 0, pack=True)
        for name in [*sweep.finished, *sorted(superseded)]:
            remover.remove(name, 0, pack=False)
        remover.summarise(say)

        _purge_expired_hidden(repository, snapshot_ids, set(records) - sweep.doomed, report, say)
        if repository.config.object_lock_days:
            say("extending the retention of everything still referenced")
            leaving = sweep.doomed | sweep.fossil_names | marked.keys()
            live_packs = [name for name in records if name in stored and name not in leaving]
            live_packs += [repository.pack_name(record.space, record.pack_id) for record in new_records]
            _extend_retention(repository, [*live_packs, *sorted(current_index)], snapshot_ids, report)
    return report


# --- analysis ------------------------------------------------------------------------------


def _holders(records: dict[str, PackRecord]) -> dict[ChunkKey, set[str]]:
    holders: dict[ChunkKey, set[str]] = defaultdict(set)
    for name, record in records.items():
        for chunk_id, *_ in record.blobs:
            holders[(record.space, chunk_id)].add(name)
    return holders


def _require_indexed(used: set[ChunkKey], holders: dict[ChunkKey, set[str]]) -> None:
    """Refuse to reclaim anything while a snapshot references a chunk no index lists."""
    missing = sum(1 for key in used if not holders.get(key))
    if missing:
        raise RepositoryDamagedError(
            f"snapshots reference {missing} chunks that no index lists (an index object or pack is missing): "
            "prune deletes nothing until `coffer check` passes"
        )


@dataclass
class _Sweep:
    doomed: set[str]  # packs to remove now
    finished: list[str]  # fossil records fully handled: remove them too
    fossil_names: set[str]  # packs still waiting in a fossil record (not ripe yet)
    kept_alive: int


def _sweep(
    fossils: list[Fossils],
    records: dict[str, PackRecord],
    holders: dict[ChunkKey, set[str]],
    used: set[ChunkKey],
    stored: dict[str, ObjectInfo],
    grace_seconds: float,
    oldest_backup: float | None,
) -> _Sweep:
    """Decide which ripe fossils go; a fossil a snapshot still needs is unmarked and judged again."""
    now = time.time()
    fossil_names = {name for fossil in fossils for name in fossil.packs}
    doomed: set[str] = set()
    finished: list[str] = []
    kept_alive = 0
    for fossil in fossils:
        ripe = now - fossil.time >= grace_seconds and (oldest_backup is None or fossil.time < oldest_backup)
        if not ripe:
            continue
        for name in fossil.packs:
            # The index's word on the pack's category, not the fossil's: a pack marked while unindexed (a
            # running backup's) has none in its fossil record, and may be indexed and used by now.
            record = records.get(name)
            needed = record is not None and any(
                (record.space, chunk_id) in used
                and not (holders[(record.space, chunk_id)] - fossil_names - doomed)
                for chunk_id, *_ in record.blobs
            )
            if needed:
                kept_alive += 1
            elif name in stored:
                doomed.add(name)
        finished.append(fossil.name)
        fossil_names -= set(fossil.packs)
    return _Sweep(doomed, finished, fossil_names, kept_alive)


def _keepers(
    repository: Repository,
    index: Index,
    used: set[ChunkKey],
    holders: dict[ChunkKey, set[str]],
    excluded: set[str],
) -> dict[ChunkKey, str]:
    """The one pack each used chunk stays in: where the index resolves it, unless that pack is on its way out."""
    keepers = {}
    for key in used:
        candidates = holders.get(key, set()) - excluded
        if not candidates:
            continue  # held only by fossils that are not ripe yet: nothing to decide now
        location = index.lookup(*key)
        resolved = repository.pack_name(location.space, location.pack) if location else None
        keepers[key] = resolved if resolved in candidates else min(candidates)
    return keepers


def _mark(
    repository: Repository,
    index: Index,
    records: dict[str, PackRecord],
    holders: dict[ChunkKey, set[str]],
    used: set[ChunkKey],
    stored: dict[str, ObjectInfo],
    sweep: _Sweep,
) -> tuple[dict[str, str], list[PackRecord]]:
    """Packs to mark as fossils (name -> space, '' when unindexed) and packs to repack (with their live blobs)."""
    excluded = sweep.doomed | sweep.fossil_names
    keepers = _keepers(repository, index, used, holders, excluded)
    marked: dict[str, str] = {}
    repack: list[PackRecord] = []
    for name, record in records.items():
        if name in excluded:
            continue
        live = [blob for blob in record.blobs if keepers.get((record.space, blob[0])) == name]
        # A copy of a chunk that another writer uploaded at the same time is kept elsewhere: left here it
        # would be stored twice for ever, so such a pack is repacked whatever its waste.
        live_ids = {blob[0] for blob in live}
        duplicate = any((record.space, c) in used for c, *_ in record.blobs if c not in live_ids)
        if not live:
            marked[name] = record.space
        elif duplicate or 1 - sum(blob[2] for blob in live) / max(record.stored_size, 1) >= REPACK_WASTE:
            repack.append(PackRecord(record.pack_id, record.space, live))
    for name in stored:
        if name not in records and name not in excluded:
            marked[name] = ""  # unindexed: left by an interrupted backup, or a running one's
    return marked, repack


def _repack(
    repository: Repository, index: Index, repack: list[PackRecord]
) -> tuple[list[PackRecord], set[str]]:
    """Copy the live blobs of `repack` into new packs; return their records and the index objects written."""
    fresh = Index()
    writer = BlobWriter(repository, fresh)
    with BlobReader(repository, index) as reader:
        for record in repack:
            for chunk_id, *_ in record.blobs:
                writer.store_chunk(record.space, reader.read(record.space, chunk_id), compress=True)
    writer.flush()
    return list(fresh.packs()), set(fresh.objects)


# --- removing, with Object Lock in mind -----------------------------------------------------


@dataclass
class _Remover:
    storage: Storage
    locked: bool  # the repository writes data under Object Lock
    report: PruneReport
    latest_lock: datetime | None = None

    def remove(self, name: str, size: int, *, pack: bool) -> None:
        """Remove `name` for good, or hide it behind a delete marker while its retention lasts."""
        if self.locked:
            until = self.storage.retained_until(name)
            if until is not None and until > datetime.now(UTC):
                self._hide(name, until, pack=pack)
                return
        try:
            self.storage.purge(name)
        except ObjectNotFoundError:
            return
        except ObjectLockedError:  # its retention was extended since we looked
            self._hide(name, None, pack=pack)
            return
        if pack:
            self.report.packs_deleted += 1
            self.report.bytes_deleted += size

    def _hide(self, name: str, until: datetime | None, *, pack: bool) -> None:
        self.storage.delete(name)  # a delete marker: never an attempt to remove the locked version
        self.report.objects_locked += 1
        self.report.packs_deleted += pack
        if until is not None and (self.latest_lock is None or until > self.latest_lock):
            self.latest_lock = until

    def summarise(self, say: Callable[[str], None]) -> None:
        if not self.report.objects_locked:
            return
        when = f" (at the latest {self.latest_lock:%Y-%m-%d %H:%M} UTC)" if self.latest_lock else ""
        note = (
            f"{self.report.objects_locked} objects no longer needed are under Object Lock: they are hidden now and "
            f"a prune after their retention ends{when} frees their space"
        )
        self.report.notes.append(note)
        say(note)


def _purge_expired_hidden(
    repository: Repository,
    snapshot_ids: list[str],
    indexed_packs: set[str],
    report: PruneReport,
    say: Callable[[str], None],
) -> None:
    """Remove for good the hidden (delete-marked) objects prune may discard, once no retention holds them.

    Only objects prune itself would discard: packs no index lists, index objects, fossil
    records, forgotten snapshots, leases and key slots the config no longer lists. A hidden
    pack the index still lists, a snapshot no tombstone names, a slot the config lists or a
    tombstone stays: someone deleted it who should not have, and removing the delete marker
    brings it back. When snapshots this host has seen
    vanished without a tombstone, nothing hidden is removed at all.
    """
    storage = repository.storage
    forgotten = repository.forgotten_ids()
    vanished = repository.ledger.seen() - set(snapshot_ids) - forgotten
    if vanished:
        note = (
            f"{len(vanished)} snapshots this host has seen are missing without a `forget`: hidden versions are "
            "kept for recovery; run `coffer check`"
        )
        report.notes.append(note)
        say(note)
        return
    discardable: list[tuple[str, Callable[[str], bool]]] = [
        (DATA_PREFIX, lambda name: name not in indexed_packs),
        (INDEX_PREFIX, lambda name: True),
        (FOSSIL_PREFIX, lambda name: True),
        (SNAPSHOT_PREFIX, lambda name: name.removeprefix(SNAPSHOT_PREFIX) in forgotten),
        (locks.LOCK_PREFIX, lambda name: True),
        (slots.SLOT_PREFIX, lambda name: name not in repository.config.key_slots),
    ]
    now = datetime.now(UTC)
    for prefix, may_discard in discardable:
        for info in storage.hidden(prefix):
            if not may_discard(info.name):
                continue
            until = storage.retained_until(info.name)
            if until is not None and until > now:
                continue
            try:
                storage.purge(info.name)
            except ObjectLockedError:
                continue
            report.versions_purged += 1
            if prefix == DATA_PREFIX:
                report.bytes_deleted += info.size


def _extend_retention(
    repository: Repository, data_and_index: list[str], snapshot_ids: list[str], report: PruneReport
) -> None:
    """Keep everything the repository still needs locked for `object_lock_days` from now."""
    storage = repository.storage
    until = datetime.now(UTC) + timedelta(days=repository.config.object_lock_days)
    names = [
        *data_and_index,
        *(SNAPSHOT_PREFIX + snapshot_id for snapshot_id in snapshot_ids),
        *(info.name for info in storage.list(TOMBSTONE_PREFIX)),
        *slots.slot_names(storage),
        CONFIG_NAME,
    ]
    failures: list[str] = []

    def extend(name: str) -> None:
        try:
            storage.extend_retention(name, until)
        except ObjectNotFoundError:
            pass  # forgotten or superseded meanwhile: nothing left to protect
        except StorageError as error:
            failures.append(f"{name}: {error}")

    with ThreadPoolExecutor(max_workers=RETENTION_THREADS, thread_name_prefix="coffer-retention") as pool:
        list(pool.map(extend, names))
    report.retention_extended = len(names) - len(failures)
    if failures:
        report.notes.append(f"could not extend the retention of {len(failures)} objects, e.g. {failures[0]}")
