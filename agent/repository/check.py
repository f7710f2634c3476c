"""`coffer check`: find every damaged, missing or inconsistent object.

Structure first, without any key: the config's checksum, and for every content-named
object (key slots, index, snapshots, tombstones, fossils, packs with `--read-data`) that
its bytes hash to its name — so a flipped byte is damage (exit 4) and never mistaken for
a wrong key (exit 3).
Then, with the key: index and snapshot authentication, every chunk a snapshot references
is in the index, every indexed pack exists, snapshot chains are unbroken, and every pack's
trailer opens (ranged reads: truncation and trailer damage show without `--read-data`).
Every index entry must be one its pack's trailer lists; an index object holding others is
named (a conflicting record: readers fall back past it, `repair index` removes it). With
`--read-data` every blob decrypts, decompresses and matches its keyed ID, and every chunk a
snapshot references verifies at one of its locations — the one a restore ends up using.
Damaged index and snapshot objects are reported one by one: none hides the others. Stale
leases are warnings. What an interrupted key
change left (unlisted slots, copies of a snapshot: `leftovers`) is a warning, not damage.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from agent.errors import ObjectNotFoundError, RepositoryDamagedError
from agent.keys import primitives, slots
from agent.keys.keyset import HEADER_SPACE, MANIFEST_SPACE
from agent.pipeline import compression
from agent.repository import locks
from agent.repository.fossils import load_fossils
from agent.repository.index import Index
from agent.repository.leftovers import Leftovers, snapshot_copies, unlisted_slots
from agent.repository.pack import HEADER_READ_SIZE, PackedBlob, open_blob, open_pack_key, read_trailer
from agent.repository.repository import Repository
from agent.repository.snapshot import FileRow, ManifestPart
from agent.repository.trailers import TRAILER_THREADS, StoredPack, scan_trailer, stored_packs


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    snapshots: int = 0
    packs: int = 0
    packs_read: int = 0
    blobs_read: int = 0
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def referenced_chunks(repository: Repository, snapshot_id: str) -> set[tuple[str, bytes]]:
    chunks: set[tuple[str, bytes]] = set()
    for space in repository.keys.public_keys:
        if space == HEADER_SPACE or not repository.keys.can_read(space):
            continue
        content = repository.read_part(snapshot_id, space)
        if space == MANIFEST_SPACE:
            part = ManifestPart.from_json(content)  # type: ignore[arg-type]
            for stored in [part.manifest_db, *part.other_files.values()]:
                chunks.update((space, c) for c in stored.chunks)
        else:
            for item in content:  # type: ignore[union-attr]
                chunks.update((space, c) for c in FileRow.from_json(item).chunks)
    return chunks


def _check_chains(repository: Repository, report: CheckReport) -> None:
    chains = repository.chains()
    forgotten = repository.forgotten_ids()
    damaged = set(repository.damaged_snapshots)  # reported by the snapshot checks, not as missing
    for snapshot_id in sorted(repository.ledger.seen() - set(chains) - forgotten - damaged):
        report.errors.append(
            f"snapshot {snapshot_id[:12]}, which this host has seen, is missing: deleted or rolled back by the storage"
        )
    repository.ledger.record(chains)
    for snapshot_id, chain in chains.items():
        previous = chain.previous
        if previous is None or previous in chains or previous in forgotten or previous in damaged:
            continue
        report.errors.append(
            f"snapshot {snapshot_id[:12]} follows {previous[:12]}, which is missing (deleted or rolled back)"
        )
    for snapshot_id, chain in chains.items():
        previous = chains.get(chain.previous) if chain.previous else None
        if previous is not None and previous.time > chain.time:
            report.errors.append(f"snapshot {snapshot_id[:12]} is older than the snapshot it follows (reordered)")


@dataclass
class _PackFindings:
    """What reading the packs established: each pack's trailer, and with `--read-data` the blobs that verify."""

    trailers: dict[str, set[tuple[bytes, int, int, int]]] = field(default_factory=dict)  # pack id -> entries
    verified: set[tuple[str, bytes, str, int]] = field(default_factory=set)  # (space, chunk, pack id, offset)
    holders: dict[tuple[str, bytes], str] = field(default_factory=dict)  # chunk -> a pack whose trailer lists it


def _note_trailer(findings: _PackFindings, pack: StoredPack, blobs: list[PackedBlob]) -> None:
    assert pack.space is not None
    findings.trailers[pack.pack_id] = {(b.chunk_id, b.offset, b.length, b.raw_length) for b in blobs}
    for blob in blobs:
        findings.holders.setdefault((pack.space, blob.chunk_id), pack.name)


def _read_pack(repository: Repository, pack: StoredPack, findings: _PackFindings, report: CheckReport) -> None:
    """Read a whole pack: its hash, its trailer and every blob it lists."""
    data = repository.storage.get(pack.name)
    report.packs_read += 1
    report.bytes_read += len(data)
    if primitives.pack_digest(data).hex() != pack.pack_id:
        report.errors.append(f"pack {pack.name} is damaged (content does not match its name)")
        return
    if pack.space is None or not repository.keys.can_read(pack.space):
        return
    space = pack.space
    key = open_pack_key(data[:HEADER_READ_SIZE], repository.keys.private_keys_for(space), repository.tag(space), pack.name)
    trailer = read_trailer(data, key, pack.name)
    _note_trailer(findings, pack, trailer)
    for blob in trailer:
        sealed = data[blob.offset : blob.offset + blob.length]
        payload, compressed = open_blob(key, blob.offset, blob.chunk_id, sealed, pack.name)
        try:
            plain = compression.decompress(payload, blob.raw_length) if compressed else payload
        except compression.DecompressionError:
            plain = b""  # reported below as not matching its ID
        report.blobs_read += 1
        id_key = repository.keys.chunk_id_key(space)
        if len(plain) != blob.raw_length or (id_key is not None and primitives.chunk_id(id_key, plain) != blob.chunk_id):
            report.errors.append(f"pack {pack.name}: blob {blob.chunk_id.hex()[:16]} does not match its ID")
            continue
        findings.verified.add((space, blob.chunk_id, pack.pack_id, blob.offset))


def _try(action: Callable[[], list[PackedBlob]]) -> list[PackedBlob] | RepositoryDamagedError:
    try:
        return action()
    except RepositoryDamagedError as exc:
        return exc


def _check_index_against_trailers(index: Index, findings: _PackFindings, report: CheckReport) -> None:
    """Every index entry must be one its pack's trailer lists; name each index object that says otherwise."""
    conflicts: dict[str, list[str]] = defaultdict(list)
    for chunk_id, location in index.entries():
        listed = findings.trailers.get(location.pack)
        if listed is None or (chunk_id, location.offset, location.length, location.raw_length) in listed:
            continue
        conflicts[location.source or "(written by this run)"].append(location.pack)
    for source, packs in sorted(conflicts.items()):
        report.errors.append(
            f"index object {source} lists {len(packs)} blobs at places their packs do not hold them (e.g. in pack "
            f"{packs[0][:12]}): a conflicting index record, damaged or added by a holder of the index key; "
            "readers fall back to the true location, `coffer repair index` removes it"
        )


def check_repository(
    repository: Repository,
    *,
    read_data_fraction: float = 0.0,
    on_pack: Callable[[int], None] | None = None,
) -> CheckReport:
    """Run every check; collect findings instead of stopping at the first."""
    report = CheckReport()
    storage = repository.storage
    repository.quiet = True  # what loading works around is reported here as errors, once

    def guard(what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except RepositoryDamagedError as exc:
            report.errors.append(str(exc))
        except ObjectNotFoundError as exc:
            report.errors.append(f"{what}: {exc}")

    if repository.config_rollback is not None:
        report.errors.append(
            f"the repository config is generation {repository.config.generation}, but this host saw generation "
            f"{repository.config_rollback}: storage serves an older config (rolled back)"
        )
    present = set(slots.slot_names(storage))
    for name in sorted(set(repository.config.key_slots) - present):
        report.errors.append(f"key slot {name} is missing (deleted from storage)")
    for name in sorted(set(repository.config.key_slots) & present):
        guard(name, lambda name=name: slots.read_slot(storage, name))  # type: ignore[misc]
    try:
        copies = snapshot_copies(repository)
    except RepositoryDamagedError:
        copies = {}  # a damaged snapshot: reported below, where each snapshot is checked
    report.warnings.extend(Leftovers(unlisted_slots(repository), copies).messages())
    guard("leases", lambda: report.warnings.extend(
            f"{lease.describe()}: `coffer unlock` removes it" for lease in locks.stale_leases(repository)
        ))
    index_holder: list[Index] = []
    guard("index", lambda: index_holder.append(repository.load_index()))
    index = index_holder[0] if index_holder else Index()
    report.errors.extend(index.damaged.values())

    packs = stored_packs(repository)
    report.packs = len(packs)
    indexed_names = set()
    for record in index.packs():
        name = repository.pack_name(record.space, record.pack_id)
        indexed_names.add(name)
        if name not in packs:
            report.errors.append(f"pack {name} is listed in the index but missing from storage")
    full_read: set[str] = set()
    if read_data_fraction > 0:
        names = sorted(p.name for p in packs.values() if p.space is not None)
        if read_data_fraction < 1:
            count = max(1, round(len(names) * read_data_fraction)) if names else 0
            names = sorted(random.sample(names, count))
        full_read = set(names)
    findings = _PackFindings()
    ordered = sorted(packs.values(), key=lambda p: p.name)
    # Every other trailer, by ranged reads (a few at a time: each is small and latency-bound), so truncation
    # and trailer damage show without --read-data.
    scanned = [p for p in ordered if p.name not in full_read and p.space is not None and repository.keys.can_read(p.space)]
    with ThreadPoolExecutor(max_workers=TRAILER_THREADS, thread_name_prefix="coffer-check") as pool:
        for pack, outcome in zip(scanned, pool.map(lambda p: _try(lambda: scan_trailer(repository, p)), scanned), strict=True):
            if isinstance(outcome, RepositoryDamagedError):
                report.errors.append(str(outcome))
            else:
                _note_trailer(findings, pack, outcome)
    for pack in ordered:
        if pack.name in full_read:
            guard(pack.name, lambda pack=pack: _read_pack(repository, pack, findings, report))
            if on_pack is not None:
                on_pack(pack.size)
        if pack.name not in indexed_names:
            report.warnings.append(
                f"pack {pack.name} is in no index (left by an interrupted backup, or its index object was lost: "
                "prune removes it, `coffer repair index` indexes it)"
            )
    _check_index_against_trailers(index, findings, report)

    guard("snapshot chains", lambda: _check_chains(repository, report))
    guard("fossils", lambda: load_fossils(repository))
    forgotten = repository.forgotten_ids()
    for snapshot_id in repository.snapshot_ids():
        if snapshot_id in forgotten:
            report.warnings.append(
                f"snapshot {snapshot_id[:12]} was forgotten but is still in storage (an interrupted forget, or put "
                "back): it is never listed; `coffer repair` removes it"
            )
            continue
        report.snapshots += 1
        guard(
            f"snapshot {snapshot_id[:12]}",
            lambda snapshot_id=snapshot_id: _check_snapshot(
                repository, snapshot_id, index, packs, findings, read_data_fraction >= 1, report
            ),
        )
    return report


def _check_snapshot(
    repository: Repository,
    snapshot_id: str,
    index: Index,
    packs: dict[str, StoredPack],
    findings: _PackFindings,
    every_pack_read: bool,
    report: CheckReport,
) -> None:
    """Every chunk the snapshot references has a location; with every pack read, one that verifies
    (the one a restore ends up using)."""
    sealed = repository.read_sealed(snapshot_id)
    if repository.keys.can_read(HEADER_SPACE):
        repository.open_header(sealed)
    unindexed: list[tuple[str, bytes]] = []
    in_missing_pack: list[str] = []
    damaged: list[str] = []
    for space, chunk_id in sorted(referenced_chunks(repository, snapshot_id)):
        locations = index.locations(space, chunk_id)
        if not locations:
            unindexed.append((space, chunk_id))
        elif not any(repository.pack_name(space, loc.pack) in packs for loc in locations):
            in_missing_pack.append(locations[0].pack)
        elif every_pack_read and not any((space, chunk_id, loc.pack, loc.offset) in findings.verified for loc in locations):
            damaged.append(locations[0].pack)
    short = snapshot_id[:12]
    if unindexed:
        holder = findings.holders.get(unindexed[0])
        where = (
            f"pack {holder} holds one: its index object was deleted or damaged, `coffer repair index` rebuilds it"
            if holder
            else "index or pack lost: `coffer repair` marks what is lost"
        )
        report.errors.append(
            f"snapshot {short} references {len(unindexed)} {unindexed[0][0]} chunks that no index lists ({where})"
        )
    if in_missing_pack:
        report.errors.append(
            f"snapshot {short} references missing pack {in_missing_pack[0][:12]} "
            f"({len(in_missing_pack)} chunks; `coffer repair` marks what is lost)"
        )
    if damaged:
        report.errors.append(
            f"snapshot {short} references {len(damaged)} chunks damaged wherever they are stored (e.g. in pack "
            f"{damaged[0][:12]}): `coffer repair` marks what is lost"
        )
