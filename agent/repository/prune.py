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

Every run holds the exclusive prune lease. The new index supersedes the old index objects,
which are deleted only after it is written.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.errors import ObjectNotFoundError
from agent.pipeline.reader import BlobReader
from agent.pipeline.writer import BlobWriter
from agent.repository import locks
from agent.repository.check import referenced_chunks
from agent.repository.fossils import load_fossils, write_fossils
from agent.repository.index import Index, PackRecord
from agent.repository.repository import DATA_PREFIX, Repository

DEFAULT_GRACE_SECONDS = 3600.0
REPACK_WASTE = 0.25  # repack a pack once a quarter of its bytes are unused


@dataclass
class PruneReport:
    packs_deleted: int = 0
    bytes_deleted: int = 0
    packs_marked: int = 0
    packs_repacked: int = 0
    packs_kept_alive: int = 0  # fossils a newer snapshot still needed
    index_objects_replaced: int = 0
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
    with locks.exclusive(storage):
        index = repository.load_index()
        old_index_objects = sorted(index.objects)
        say(f"reading {len(repository.snapshot_ids())} snapshots")
        used: set[tuple[str, bytes]] = set()
        for snapshot_id in repository.snapshot_ids():
            used |= referenced_chunks(repository, snapshot_id)
        stored = {info.name: info for info in storage.list(DATA_PREFIX)}
        records = {repository.pack_name(r.space, r.pack_id): r for r in index.packs()}
        now = time.time()
        oldest_backup = locks.oldest_running_backup(storage)

        # --- sweep: delete fossils that are old enough and still not needed ----------------
        fossils = load_fossils(repository)
        fossil_names = {name for f in fossils for name in f.packs}
        holders: dict[tuple[str, bytes], set[str]] = defaultdict(set)
        for name, record in records.items():
            for chunk_id, *_ in record.blobs:
                holders[(record.space, chunk_id)].add(name)
        deleted: set[str] = set()
        for fossil in fossils:
            ripe = now - fossil.time >= grace_seconds and (oldest_backup is None or fossil.time < oldest_backup)
            if not ripe:
                continue
            for name, space in fossil.packs.items():
                record = records.get(name)
                needed = record is not None and any(
                    (space, chunk_id) in used and not (holders[(space, chunk_id)] - fossil_names - deleted)
                    for chunk_id, *_ in record.blobs
                )
                if needed:
                    report.packs_kept_alive += 1
                elif name in stored:
                    report.packs_deleted += 1
                    report.bytes_deleted += stored[name].size
                    deleted.add(name)
            if not dry_run:
                for name in fossil.packs:
                    if name in deleted:
                        storage.delete(name)
                storage.delete(fossil.name)
            # A fossil still needed (a snapshot taken since the marking uses it) is no fossil any more: the
            # mark phase below judges it again like any other pack.
            fossil_names -= set(fossil.packs)

        # --- mark: unused packs, orphans, and packs worth repacking --------------------------
        marked: dict[str, str] = {}
        repack: list[PackRecord] = []
        for name, record in records.items():
            if name in deleted or name in fossil_names:
                continue
            live = [b for b in record.blobs if (record.space, b[0]) in used]
            if not live:
                marked[name] = record.space
            elif 1 - sum(b[2] for b in live) / max(record.stored_size, 1) >= REPACK_WASTE:
                repack.append(PackRecord(record.pack_id, record.space, live))
        for name in stored:
            if name not in records and name not in fossil_names and name not in deleted:
                marked[name] = ""  # unindexed: left by an interrupted backup, or a running one's
        report.packs_marked = len(marked)
        if dry_run:
            report.packs_repacked = len(repack)
            return report

        new_records: list[PackRecord] = []
        if repack:
            say(f"repacking {len(repack)} packs")
            fresh = Index()
            writer = BlobWriter(repository, fresh)
            with BlobReader(repository, index) as reader:
                for record in repack:
                    for chunk_id, *_ in record.blobs:
                        plain = reader.read(record.space, chunk_id)
                        writer.store_chunk(record.space, plain, compress=True)
                    marked[repository.pack_name(record.space, record.pack_id)] = record.space
            writer.flush()
            new_records = list(fresh.packs())
            report.packs_repacked = len(repack)
        if marked:
            write_fossils(repository, marked)

        # --- a new index without the deleted packs supersedes the old objects -------------
        if deleted or repack:
            keep = [r for n, r in records.items() if n not in deleted]
            repacked_objects = set(fresh.objects) if repack else set()
            repository.write_index([*keep, *new_records], supersedes=old_index_objects)
            for name in old_index_objects:
                if name not in repacked_objects:
                    try:
                        storage.delete(name)
                    except ObjectNotFoundError:
                        pass
            report.index_objects_replaced = len(old_index_objects)
    return report
