"""`coffer key rotate`: new keys for new data, every small object re-sealed, old data honestly accounted for.

What changes: the authentication key (config MAC, slot labels), the index key (index, chain
records, tombstones, fossils) and every category, header and manifest key pair. What stays:
the chunk-ID and chunker keys — changing them would make every chunk new and re-upload
everything — and the storage-tag key, so packs keep their names. Re-sealed under the new
keys: the index, every snapshot (new IDs, chains re-linked, the old IDs tombstoned),
tombstones and fossils. New slots: the passphrase that ran the rotation, a new recovery key,
and the same recovery contacts; station and category key files are revoked (issue new ones).

What cannot change in a deduplicating store without rewriting it: packs stay sealed to the
old category keys (the new full key set keeps those private keys as a retired generation to
read them), so whoever held an old key can still read the data that existed at rotation
time — the report says how much — and can still test whether a given chunk exists.

Order for crash safety, under the exclusive lease: new slots → new config (the switch) →
re-sealed index, snapshots, tombstone (naming every old snapshot ID) and fossils → deletion
of the old ones. Before the switch the new slots are not listed, so the old keys stay the
ones that open; after it the old slots are not listed, and readers try the current keys,
then the retired ones, so every intermediate state opens with the passphrase. A stopped
rotation leaves unlisted slots and, once snapshots were being re-sealed, copies of them
(`leftovers`); a rerun removes those first, then rotates again from wherever the stopped one
got to, and prints the recovery key the stopped run never showed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace

from agent.keys import contacts, primitives, recovery_key, slots
from agent.keys.keyset import KeySet, RetiredKeys
from agent.repository import locks
from agent.repository.config import CONFIG_NAME
from agent.repository.fossils import FOSSIL_PREFIX, load_fossils, write_fossils
from agent.repository.index import INDEX_PREFIX
from agent.repository.leftovers import find_leftovers, remove_leftovers
from agent.repository.repository import DATA_PREFIX, Repository
from agent.repository.snapshot import SNAPSHOT_PREFIX
from agent.repository.tombstones import TOMBSTONE_PREFIX, forgotten_snapshots, write_tombstone


@dataclass
class RotationReport:
    recovery_key: str
    snapshots_resealed: int = 0
    packs_under_old_keys: int = 0
    bytes_under_old_keys: int = 0
    contact_slots: int = 0
    revoked: list[str] = field(default_factory=list)  # kinds of the slots removed
    leftovers_removed: int = 0  # slots and snapshot copies an interrupted earlier rotation or key change left


def _new_generation(old: KeySet, spaces: list[str]) -> KeySet:
    new = KeySet(
        kind="full",
        repository_id=old.repository_id,
        auth_key=primitives.random_key(),
        id_key=old.id_key,
        chunker_key=old.chunker_key,
        index_key=primitives.random_key(),
        tag_key=old.storage_tag_key,
        retired=[RetiredKeys(old.index_key, dict(old.private_keys)), *old.retired],
    )
    for space in spaces:
        new.add_space(space)
    return new


def rotate(repository: Repository, passphrase: str) -> RotationReport:
    repository.keys.require_full()
    storage = repository.storage
    with locks.exclusive(storage):
        old_keys, old_config = repository.keys, repository.config
        # What a stopped rotation or key change left goes first; a copy's followers are re-linked to its original.
        leftovers = find_leftovers(repository)
        remove_leftovers(repository, leftovers)
        # Everything small is read under the old keys first (and any older generation a stopped rotation left).
        index = repository.load_index()
        entries = repository.snapshots()
        spaces = [s for s in old_config.public_keys if s != "_header"]
        contents = {e.snapshot_id: {s: repository.read_part(e.snapshot_id, s) for s in spaces} for e in entries}
        forgotten = forgotten_snapshots(repository)
        fossils = load_fossils(repository)
        old_objects = [i.name for prefix in (INDEX_PREFIX, TOMBSTONE_PREFIX, FOSSIL_PREFIX) for i in storage.list(prefix)]
        old_slots = slots.list_slots(storage, old_keys.auth_key)
        contact_docs = [(info, slots.read_slot(storage, info.name)) for info in old_slots if info.kind == "contact"]

        new_keys = _new_generation(old_keys, list(old_config.public_keys))
        new_config = replace(old_config, public_keys=dict(new_keys.public_keys), key_slots=[])
        rotated = Repository(storage, new_config, new_keys, "")
        recovery = recovery_key.generate()
        # New slots are not listed by the old config, so they unlock nothing until the switch.
        new_slots = [
            slots.add_passphrase_slot(storage, new_config.kdf, passphrase, new_keys, None),
            slots.add_recovery_slot(storage, recovery, new_keys),
        ]
        for info, document in contact_docs:
            publics = [base64.b64decode(c["public"]) for c in document["contacts"]]  # type: ignore[union-attr, index]
            new_slots.append(
                contacts.add_contact_slot(storage, new_keys, publics, int(document["threshold"]), info.label)  # type: ignore[arg-type]
            )
        new_config.key_slots = new_slots
        storage.put(CONFIG_NAME, new_config.encode(new_keys.auth_key), if_absent=False)  # the switch

        rotated.write_index(list(index.packs()))
        renamed: dict[str, str] = {}

        def new_id(old_id: str) -> str:
            return renamed.get(leftovers.copies.get(old_id, old_id), old_id)

        for entry in entries:  # oldest first, so each snapshot's predecessor is already renamed
            previous = entry.chain.previous
            renamed[entry.snapshot_id] = rotated.write_snapshot(
                entry.header, contents[entry.snapshot_id], new_id(previous) if previous else None
            )
        write_tombstone(rotated, sorted(forgotten | set(renamed)))
        for fossil in fossils:
            write_fossils(rotated, fossil.packs)

        for old_id in renamed:
            storage.delete(SNAPSHOT_PREFIX + old_id)
        for name in old_objects:
            storage.delete(name)
        for info in old_slots:
            if info.name not in new_slots:
                storage.delete(info.name)
        packs = list(storage.list(DATA_PREFIX))
        return RotationReport(
            recovery_key=recovery_key.format_key(recovery),
            snapshots_resealed=len(renamed),
            packs_under_old_keys=len(packs),
            bytes_under_old_keys=sum(p.size for p in packs),
            contact_slots=len(contact_docs),
            revoked=sorted(info.kind for info in old_slots if info.kind in ("put-only", "category")),
            leftovers_removed=len(leftovers.slots) + len(leftovers.copies),
        )
