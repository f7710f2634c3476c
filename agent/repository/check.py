"""`coffer check`: find every damaged, missing or inconsistent object.

Structure first, without any key: the config's checksum, and for every content-named
object (key slots, index, snapshots, tombstones, fossils, packs with `--read-data`) that
its bytes hash to its name — so a flipped byte is damage (exit 4) and never mistaken for
a wrong key (exit 3).
Then, with the key: index and snapshot authentication, every chunk a snapshot references
is in the index, every indexed pack exists, snapshot chains are unbroken, and with
`--read-data` every blob decrypts, decompresses and matches its keyed ID. What an interrupted key
change left (unlisted slots, copies of a snapshot: `leftovers`) is a warning, not damage.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.errors import ObjectNotFoundError, RepositoryDamagedError
from agent.keys import primitives, slots
from agent.keys.keyset import HEADER_SPACE, MANIFEST_SPACE
from agent.pipeline import compression
from agent.repository.fossils import load_fossils
from agent.repository.index import Index
from agent.repository.leftovers import Leftovers, snapshot_copies, unlisted_slots
from agent.repository.pack import HEADER_READ_SIZE, open_blob, open_pack_key, read_trailer
from agent.repository.repository import DATA_PREFIX, Repository
from agent.repository.snapshot import FileRow, ManifestPart, open_header
from agent.repository.tombstones import forgotten_snapshots


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
    for space in repository.config.public_keys:
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
    forgotten = forgotten_snapshots(repository)
    for snapshot_id in sorted(repository.ledger.seen() - set(chains) - forgotten):
        report.errors.append(
            f"snapshot {snapshot_id[:12]}, which this host has seen, is missing: deleted or rolled back by the storage"
        )
    repository.ledger.record(chains)
    for snapshot_id, chain in chains.items():
        previous = chain.previous
        if previous is None or previous in chains or previous in forgotten:
            continue
        report.errors.append(
            f"snapshot {snapshot_id[:12]} follows {previous[:12]}, which is missing (deleted or rolled back)"
        )
    for snapshot_id, chain in chains.items():
        previous = chains.get(chain.previous) if chain.previous else None
        if previous is not None and previous.time > chain.time:
            report.errors.append(f"snapshot {snapshot_id[:12]} is older than the snapshot it follows (reordered)")


def _read_pack(
    repository: Repository, index: Index, name: str, pack_id: str, space: str, report: CheckReport
) -> None:
    data = repository.storage.get(name)
    report.packs_read += 1
    report.bytes_read += len(data)
    if primitives.sha256(data).hex() != pack_id:
        report.errors.append(f"pack {name} is damaged (content does not match its name)")
        return
    if not repository.keys.can_read(space):
        return
    key = open_pack_key(data[:HEADER_READ_SIZE], repository.keys.private_keys_for(space), repository.tag(space), name)
    trailer = read_trailer(data, key, name)
    record = index.pack(pack_id)
    indexed = {(c, o, n, r) for c, o, n, r in record.blobs} if record else set()
    listed = {(b.chunk_id, b.offset, b.length, b.raw_length) for b in trailer}
    if record is not None and indexed != listed:
        report.errors.append(f"pack {name}: its trailer and the index disagree")
    for blob in trailer:
        payload, compressed = open_blob(key, blob.offset, blob.chunk_id, data[blob.offset : blob.offset + blob.length], name)
        plain = compression.decompress(payload, blob.raw_length) if compressed else payload
        report.blobs_read += 1
        id_key = repository.keys.id_key
        if len(plain) != blob.raw_length or (id_key is not None and primitives.chunk_id(id_key, plain) != blob.chunk_id):
            report.errors.append(f"pack {name}: blob {blob.chunk_id.hex()[:16]} does not match its ID")


def check_repository(
    repository: Repository,
    *,
    read_data_fraction: float = 0.0,
    on_pack: Callable[[int], None] | None = None,
) -> CheckReport:
    """Run every check; collect findings instead of stopping at the first."""
    report = CheckReport()
    storage = repository.storage

    def guard(what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except RepositoryDamagedError as exc:
            report.errors.append(str(exc))
        except ObjectNotFoundError as exc:
            report.errors.append(f"{what}: {exc}")

    guard("key slots", lambda: slots.list_slots(storage, repository.keys.auth_key))
    present = set(slots.slot_names(storage))
    for name in sorted(set(repository.config.key_slots) - present):
        report.errors.append(f"key slot {name} is missing (deleted from storage)")
    try:
        copies = snapshot_copies(repository)
    except RepositoryDamagedError:
        copies = {}  # a damaged snapshot: reported below, where each snapshot is checked
    report.warnings.extend(Leftovers(unlisted_slots(repository), copies).messages())
    index_holder: list[Index] = []
    guard("index", lambda: index_holder.append(repository.load_index()))
    index = index_holder[0] if index_holder else Index()

    stored_packs = {info.name: info for info in storage.list(DATA_PREFIX)}
    spaces = repository.spaces_by_tag()
    known_packs: dict[str, tuple[str, str]] = {}  # object name -> (pack id, space)
    for record in index.packs():
        name = repository.pack_name(record.space, record.pack_id)
        known_packs[name] = (record.pack_id, record.space)
        if name not in stored_packs:
            report.errors.append(f"pack {name} is listed in the index but missing from storage")
    for name in stored_packs:
        if name not in known_packs:
            report.warnings.append(f"pack {name} is in no index (left by an interrupted backup; prune removes it)")
            _, tag, pack_id = name.split("/", 2)
            if tag in spaces:
                known_packs[name] = (pack_id, spaces[tag])
    report.packs = len(stored_packs)

    guard("snapshot chains", lambda: _check_chains(repository, report))
    guard("fossils", lambda: load_fossils(repository))
    for snapshot_id in repository.snapshot_ids():
        report.snapshots += 1

        def check_snapshot(snapshot_id: str = snapshot_id) -> None:
            sealed = repository.read_sealed(snapshot_id)
            if repository.keys.can_read(HEADER_SPACE):
                open_header(sealed, repository.keys.private_keys_for(HEADER_SPACE))
            for space, chunk_id in referenced_chunks(repository, snapshot_id):
                location = index.lookup(space, chunk_id)
                if location is None:
                    report.errors.append(
                        f"snapshot {snapshot_id[:12]} references a {space} chunk that no index lists (index or pack lost)"
                    )
                    return
                if repository.pack_name(space, location.pack) not in stored_packs:
                    report.errors.append(f"snapshot {snapshot_id[:12]} references missing pack {location.pack[:12]}")
                    return

        guard(f"snapshot {snapshot_id[:12]}", check_snapshot)

    if read_data_fraction > 0:
        names = sorted(n for n in stored_packs if n in known_packs)
        if read_data_fraction < 1:
            count = max(1, round(len(names) * read_data_fraction)) if names else 0
            names = sorted(random.sample(names, count))
        for name in names:
            pack_id, space = known_packs[name]
            guard(name, lambda name=name, pack_id=pack_id, space=space: _read_pack(repository, index, name, pack_id, space, report))
            if on_pack is not None:
                on_pack(stored_packs[name].size)
    return report
