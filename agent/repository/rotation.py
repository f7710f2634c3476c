"""`coffer key rotate`: new keys for new data, every small object re-sealed, old data honestly accounted for.

What changes: the config keys (the auth key sealing its body, the Ed25519 key signing it), the index key (index, chain
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
import time
from dataclasses import dataclass, field, replace

from agent.keys import contacts, primitives, recovery_key, slots
from agent.keys.keyset import KeySet, RetiredKeys
from agent.keys.slots import SlotEntry
from agent.repository import locks
from agent.repository.config import CONFIG_NAME
from agent.repository.device_secrets import SECRET_PREFIX, newest_per_device, record_password
from agent.repository.fossils import FOSSIL_PREFIX, load_fossils, write_fossils
from agent.repository.index import INDEX_PREFIX
from agent.repository.leftovers import find_leftovers, remove_leftovers
from agent.repository.repository import DATA_PREFIX, Repository
from agent.repository.snapshot import SNAPSHOT_PREFIX
from agent.repository.tombstones import TOMBSTONE_PREFIX, write_tombstone
from agent.repository.trailers import confirmed_index


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
    sign_key, verify_key = primitives.generate_signing_key()
    new = KeySet(
        kind="full",
        repository_id=old.repository_id,
        auth_key=primitives.random_key(),
        verify_key=verify_key,
        sign_key=sign_key,
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
    with locks.exclusive(repository, "key rotate"):
        old_keys, old_config = repository.keys, repository.config
        # What a stopped rotation or key change left goes first; a copy's followers are re-linked to its original.
        leftovers = find_leftovers(repository)
        remove_leftovers(repository, leftovers)
        # Everything small is read under the old keys first (and any older generation a stopped rotation left).
        # Only entries the packs' trailers confirm are carried over: an index object a station added must not
        # gain the new key's authority (readers would still fall back, but `check` would keep flagging it).
        index = confirmed_index(repository, repository.load_index(), lambda _note: None)
        entries = repository.snapshots()
        spaces = [s for s in old_keys.public_keys if s != "_header"]
        contents = {e.snapshot_id: {s: repository.read_part(e.snapshot_id, s) for s in spaces} for e in entries}
        forgotten = repository.forgotten_ids()
        fossils = load_fossils(repository)
        device_passwords = newest_per_device(repository)
        old_objects = [
            i.name for prefix in (INDEX_PREFIX, TOMBSTONE_PREFIX, FOSSIL_PREFIX, SECRET_PREFIX) for i in storage.list(prefix)
        ]
        old_slots = dict(old_config.key_slots)
        contact_entries = [entry for entry in old_slots.values() if entry.kind == "contact"]

        new_keys = _new_generation(old_keys, list(old_keys.public_keys))
        new_config = replace(
            old_config, public_keys=dict(new_keys.public_keys), key_slots={}, generation=old_config.generation + 1
        )
        rotated = Repository(storage, new_config, new_keys, "")
        recovery = recovery_key.generate()
        # New slots are not listed by the old config, so they unlock nothing until the switch.
        new_slots = {
            slots.add_passphrase_slot(storage, new_config.kdf, passphrase, new_keys): SlotEntry.new("passphrase"),
            slots.add_recovery_slot(storage, recovery, new_keys): SlotEntry.new("recovery"),
        }
        for entry in contact_entries:
            publics = [base64.b64decode(c) for c in entry.contacts or []]
            name = contacts.add_contact_slot(storage, new_keys, publics, entry.threshold or 1)
            new_slots[name] = replace(entry, created=time.time())
        new_config.key_slots = new_slots
        storage.put(CONFIG_NAME, new_config.encode(new_keys), if_absent=False)  # the switch
        rotated.config_ledger.check(new_config.generation)

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
        for device in device_passwords:  # the stations' own copies go with their revoked key files
            record_password(rotated, device.udid, device.password)

        for old_id in renamed:
            storage.delete(SNAPSHOT_PREFIX + old_id)
        for name in old_objects:
            storage.delete(name)
        for name in old_slots:
            if name not in new_slots:
                storage.delete(name)
        packs = list(storage.list(DATA_PREFIX))
        return RotationReport(
            recovery_key=recovery_key.format_key(recovery),
            snapshots_resealed=len(renamed),
            packs_under_old_keys=len(packs),
            bytes_under_old_keys=sum(p.size for p in packs),
            contact_slots=len(contact_entries),
            revoked=sorted(entry.kind for entry in old_slots.values() if entry.kind in ("put-only", "category")),
            leftovers_removed=len(leftovers.slots) + len(leftovers.copies) + len(leftovers.forgotten),
        )
