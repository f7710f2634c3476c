"""Opening, creating and reading a repository: the place the other layers meet storage.

Write order is packs → index → snapshot, each put-if-absent under a name derived from the
content, so a reader never sees a snapshot whose data is not there yet, and concurrent
writers never overwrite each other.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from agent.errors import (
    ObjectExistsError,
    ObjectNotFoundError,
    RepositoryDamagedError,
    StorageError,
    UsageError,
    WrongSecretError,
)
from agent.keys import primitives, recovery_key, slots
from agent.keys.kdf import calibrate
from agent.keys.keyset import HEADER_SPACE, KeySet
from agent.keys.slots import SlotEntry
from agent.repository import selection
from agent.repository.config import CONFIG_NAME, ConfigEnvelope, RepositoryConfig
from agent.repository.index import INDEX_PREFIX, Index, PackRecord, decode_index, encode_index
from agent.repository.ledger import ConfigLedger, SnapshotLedger
from agent.repository.snapshot import (
    SNAPSHOT_PREFIX,
    ChainRecord,
    SealedSnapshot,
    SnapshotHeader,
    open_header,
    open_part,
    seal_snapshot,
)
from agent.storage.base import Storage

DATA_PREFIX = "data/"
TOMBSTONE_PREFIX = "tombstones/"
OPENED_SNAPSHOTS_KEPT = 4


@dataclass
class SnapshotEntry:
    snapshot_id: str
    header: SnapshotHeader
    chain: ChainRecord

    @property
    def short_id(self) -> str:
        return self.snapshot_id[:8]


def put_if_absent(storage: Storage, name: str, data: bytes, tags: dict[str, str] | None = None) -> None:
    """Write a content-named object; an existing object of that name has the same content."""
    try:
        storage.put(name, data, tags=tags)
    except ObjectExistsError:
        pass


def put_parts_if_absent(storage: Storage, name: str, parts: list[bytes], tags: dict[str, str] | None = None) -> None:
    """`put_if_absent` of the concatenation of `parts`, which a local folder writes without joining them."""
    try:
        storage.put_parts(name, parts, tags=tags)
    except ObjectExistsError:
        pass


class Repository:
    def __init__(self, storage: Storage, config: RepositoryConfig, keys: KeySet, slot_name: str) -> None:
        self.storage = storage
        self.config = config
        self._tags: dict[tuple[bool, bytes, str], str] = {}
        self.keys = keys
        self.slot_name = slot_name
        self.ledger = SnapshotLedger(config.repository_id)
        self.config_rollback: int | None = None  # the newer config generation this host saw, if storage serves an older one
        self.quiet = False  # True: no warnings on stderr (`check` and `repair` report damage themselves)
        self._warned: set[str] = set()
        self._opened: dict[str, SealedSnapshot] = {}  # the last snapshots read (`read_sealed`)
        self.damaged_snapshots: dict[str, str] = {}  # snapshot ID -> why `snapshots()` skipped it

    def warn(self, message: str) -> None:
        """Note damage that was worked around, once, on stderr unless `quiet`."""
        if not self.quiet and message not in self._warned:
            self._warned.add(message)
            print(f"coffer: warning: {message}", file=sys.stderr, flush=True)

    # --- creating and opening -------------------------------------------------
    @classmethod
    def init(
        cls,
        storage: Storage,
        passphrase: str,
        categories: list[str],
        *,
        plain_category_tags: bool = False,
        object_lock_days: int = 0,
    ) -> tuple[Repository, str]:
        """Create a repository; return it and the recovery key, formatted to show once."""
        storage.prepare(object_lock_days=object_lock_days)  # e.g. create the bucket, with Object Lock if asked
        if storage.exists(CONFIG_NAME):
            raise UsageError(f"a repository already exists at {storage.location}")
        repository_id = uuid.uuid4().hex
        keys = KeySet.generate(repository_id, categories)
        config = RepositoryConfig(
            repository_id=repository_id,
            kdf=calibrate(),
            public_keys=dict(keys.public_keys),
            categories=list(categories),
            plain_category_tags=plain_category_tags,
            object_lock_days=object_lock_days,
        )
        # Slots first, config last: a half-created repository has no config and is not a repository.
        slot_name = slots.add_passphrase_slot(storage, config.kdf, passphrase, keys)
        recovery = recovery_key.generate()
        config.key_slots = {
            slot_name: SlotEntry.new("passphrase"),
            slots.add_recovery_slot(storage, recovery, keys): SlotEntry.new("recovery"),
        }
        storage.put(CONFIG_NAME, config.encode(keys))
        repository = cls(storage, config, keys, slot_name)
        repository.config_ledger.check(config.generation)
        return repository, recovery_key.format_key(recovery)

    @staticmethod
    def read_config(storage: Storage) -> ConfigEnvelope:
        try:
            data = storage.get(CONFIG_NAME)
        except ObjectNotFoundError as exc:
            if _holds_repository_objects(storage):
                raise RepositoryDamagedError(
                    f"the repository config is missing from {storage.location} (deleted, or `coffer init` was "
                    "interrupted: then empty the location and run it again)"
                ) from exc
            raise UsageError(f"there is no Coffer repository at {storage.location} (run `coffer init`)") from exc
        return ConfigEnvelope.decode(data)

    @classmethod
    def open(cls, storage: Storage, secret: slots.Secret) -> Repository:
        envelope = cls.read_config(storage)
        try:
            candidates = slots.unlock(storage, envelope.kdf, secret, envelope.slot_names)
        except RepositoryDamagedError as exc:
            present = set(slots.slot_names(storage))
            if present and not present & set(envelope.slot_names):  # the slots are fine: the config is not theirs
                raise RepositoryDamagedError(
                    f"`{CONFIG_NAME}` lists none of the {len(present)} key slots stored here: it belongs to another "
                    "repository or was replaced"
                ) from exc
            raise
        return cls.from_unlocked(storage, envelope, candidates)

    @classmethod
    def from_unlocked(cls, storage: Storage, envelope: ConfigEnvelope, candidates: list[slots.Unlocked]) -> Repository:
        """The repository as the key set among `candidates` that the signed config vouches for opens it.

        A candidate whose owner did not sign this config (a slot an interrupted rotation left, a slot of
        another repository) is passed over; one whose slot the config no longer lists (removed, revoked,
        put back by the storage provider) is refused."""
        revoked = []
        for candidate in candidates:
            if not envelope.verifies_with(candidate.keys):
                if candidate.slot_name not in envelope.slot_names:  # an older generation's slot (a rotate, a removal)
                    revoked.append(candidate.slot_name)
                continue
            config = envelope.open(candidate.keys)
            if config.repository_id != candidate.keys.repository_id:
                continue
            if candidate.slot_name not in config.key_slots:
                revoked.append(candidate.slot_name)
                continue
            if candidate.keys.public_keys != config.public_keys:
                raise RepositoryDamagedError(
                    "the repository config disagrees with this key's public keys: refusing to write to keys "
                    "that are not this repository's"
                )
            repository = cls(storage, config, candidate.keys, candidate.slot_name)
            if storage.supports_object_lock:  # a copy on a backend without Object Lock stays readable
                storage.object_lock_days = config.object_lock_days  # later data objects carry a retention
            repository.config_rollback = repository.config_ledger.check(config.generation)
            return repository
        if revoked:
            raise WrongSecretError(
                f"this key opens key slot {slots.short_id(revoked[0])}, which the repository no longer lists: it "
                "was removed or revoked (if it came back, storage put it back)"
            )
        raise RepositoryDamagedError(
            "the repository config is not signed by the owner of the key that was given: it was altered or "
            "replaced (or this key belongs to another repository)"
        )

    @property
    def config_ledger(self) -> ConfigLedger:
        return ConfigLedger(self.config.repository_id)

    def write_config(self) -> None:
        """Sign and store the config (full key only), one generation on."""
        self.keys.require_full()
        self.config.generation += 1
        self.storage.put(CONFIG_NAME, self.config.encode(self.keys), if_absent=False)
        self.config_ledger.check(self.config.generation)

    def record_slots(self, added: dict[str, SlotEntry] | None = None, removed: Iterable[str] = ()) -> None:
        """Rewrite the config's slot catalogue after `key add` / `key remove` (full key only)."""
        catalogue = {**self.config.key_slots, **(added or {})}
        for name in removed:
            catalogue.pop(name, None)
        self.config.key_slots = catalogue
        self.write_config()

    # --- names --------------------------------------------------------------------
    def tag(self, space: str) -> str:
        # An HMAC per blob read showed in restore profiles: remember each (setting, key, space)'s tag.
        key = (self.config.plain_category_tags, self.keys.storage_tag_key, space)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = self.config.tag(space, self.keys.storage_tag_key)
        return tag

    def pack_name(self, space: str, pack_id: str) -> str:
        return f"{DATA_PREFIX}{self.tag(space)}/{pack_id}"

    def spaces_by_tag(self) -> dict[str, str]:
        return {self.tag(space): space for space in self.keys.public_keys}

    # --- index ----------------------------------------------------------------------
    def load_index(self) -> Index:
        """The union of every index object not superseded.

        A damaged or vanished object is skipped with a warning naming it (`Index.damaged`; `check`
        reports it): it only affects the lookups that need it, and `coffer repair index` rebuilds
        its entries from the packs' trailers."""
        self.keys.require_index()
        assert self.keys.index_key is not None
        index = Index()
        superseded: set[str] = set()
        loaded: list[tuple[str, list[PackRecord]]] = []
        damaged: dict[str, str] = {}
        for info in self.storage.list(INDEX_PREFIX):
            try:
                data = self.storage.get(info.name)
            except ObjectNotFoundError:
                continue  # removed since the listing (a prune or repair replaced it)
            if primitives.sha256(data).hex() != info.name.removeprefix(INDEX_PREFIX):
                damaged[info.name] = f"index object {info.name} is damaged (content does not match its name)"
                continue
            try:
                records, supersedes = decode_index(data, self.keys.index_keys(), info.name)
            except RepositoryDamagedError as exc:
                damaged[info.name] = str(exc)
                continue
            except (ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
                damaged[info.name] = f"index object {info.name} is not a valid index object ({exc})"
                continue
            superseded.update(supersedes)
            loaded.append((info.name, records))
        for name, records in loaded:
            if name in superseded:
                continue
            index.objects.add(name)
            for record in records:
                index.add_pack(record, name)
        for name, problem in sorted(damaged.items()):
            if name not in superseded:  # a damaged object a repair already replaced is only waiting to be removed
                index.damaged[name] = problem
                self.warn(f"{problem}: skipped (lookups it served fail; `coffer repair index` rebuilds it)")
        return index

    def write_index(self, records: Iterable[PackRecord], supersedes: list[str] | None = None) -> str:
        assert self.keys.index_key is not None
        data = encode_index(records, self.keys.index_key, supersedes)
        name = INDEX_PREFIX + primitives.sha256(data).hex()
        put_if_absent(self.storage, name, data)
        return name

    # --- snapshots --------------------------------------------------------------------
    def snapshot_ids(self) -> list[str]:
        return [info.name.removeprefix(SNAPSHOT_PREFIX) for info in self.storage.list(SNAPSHOT_PREFIX)]

    def read_sealed(self, snapshot_id: str) -> SealedSnapshot:
        """The snapshot, opened and checked. The last few are kept: reading a snapshot's parts one category
        at a time must not fetch and decrypt the whole object for each (it is named by its hash, so a kept
        copy cannot go stale)."""
        self.keys.require_index()
        if snapshot_id in self._opened:
            return self._opened[snapshot_id]
        try:
            data = self.storage.get(SNAPSHOT_PREFIX + snapshot_id)
        except ObjectNotFoundError as exc:
            raise RepositoryDamagedError(f"snapshot {snapshot_id[:12]} is missing") from exc
        sealed = SealedSnapshot.parse(snapshot_id, data, self.keys.index_keys())
        if len(self._opened) >= OPENED_SNAPSHOTS_KEPT:
            self._opened.pop(next(iter(self._opened)))
        self._opened[snapshot_id] = sealed
        return sealed

    def forgotten_ids(self) -> set[str]:
        """Snapshot IDs the key holder forgot on purpose (tombstones): never listed, even if storage still has them."""
        forgotten: set[str] = set()
        for _name, document in read_sealed_records(self, TOMBSTONE_PREFIX, b"tombstone"):
            forgotten.update(document["forgotten"])
        return forgotten

    def live_snapshot_ids(self) -> list[str]:
        """Stored snapshots minus forgotten ones (a forget that was interrupted, or a snapshot put back)."""
        forgotten = self.forgotten_ids()
        return [sid for sid in self.snapshot_ids() if sid not in forgotten]

    def chains(self) -> dict[str, ChainRecord]:
        """Chain records of every live snapshot (any writer can read them); a damaged one blocks no other."""
        chains = {}
        for sid in self.live_snapshot_ids():
            try:
                chains[sid] = self.read_sealed(sid).chain
            except RepositoryDamagedError as exc:  # check reports it
                self.damaged_snapshots[sid] = str(exc)
        return chains

    def snapshots(self) -> list[SnapshotEntry]:
        """Every readable snapshot with its header, oldest first.

        A damaged one is skipped with a warning naming it (`damaged_snapshots`; `check` reports it), so
        it never blocks the others."""
        self.keys.require_read(HEADER_SPACE)
        self.keys.require_index()
        assert self.keys.index_key is not None
        entries = []
        snapshot_ids = self.live_snapshot_ids()
        self.damaged_snapshots = {}
        for sid in snapshot_ids:
            try:
                sealed = self.read_sealed(sid)
                entries.append(SnapshotEntry(sid, self.open_header(sealed), sealed.chain))
            except RepositoryDamagedError as exc:
                self.damaged_snapshots[sid] = str(exc)
                self.warn(f"{exc}: skipped")
        self.ledger.record(e.snapshot_id for e in entries)
        return selection.chronological(entries)

    def open_header(self, sealed: SealedSnapshot) -> SnapshotHeader:
        """The header, with the statistics of the categories this key can read."""
        readable = {
            self.tag(space): (space, self.keys.private_keys_for(space))
            for space in self.config.categories
            if self.keys.can_read(space)
        }
        return open_header(sealed, self.keys.private_keys_for(HEADER_SPACE), readable)

    def find_snapshot(self, reference: str, device: str | None = None) -> SnapshotEntry:
        """Resolve `latest` or an ID prefix, optionally of one device (agent/repository/selection.py); a
        damaged or vanished snapshot it names is damage (exit 4), not a typo."""
        entries = self.snapshots()
        if reference == "latest" and not entries and self.damaged_snapshots:
            raise RepositoryDamagedError("every snapshot of the repository is damaged (see `coffer check`)")
        try:
            return selection.find(entries, reference, device)
        except UsageError:
            if not any(e.snapshot_id.startswith(reference) for e in entries):  # not merely another device's
                self._explain_absent(reference)
            raise

    def _explain_absent(self, reference: str) -> None:
        """A snapshot that is damaged, or that this host saw or a chain names, is damage (exit 4), not a typo."""
        for sid, problem in self.damaged_snapshots.items():
            if sid.startswith(reference):
                raise RepositoryDamagedError(problem)
        if len(reference) < 8:
            return
        known = self.ledger.seen() | {c.previous for c in self.chains().values() if c.previous}
        for sid in sorted(known):
            if sid.startswith(reference):
                if sid in self.forgotten_ids():
                    raise UsageError(f"snapshot {sid[:12]} was forgotten (`coffer forget`)")
                raise RepositoryDamagedError(
                    f"snapshot {sid[:12]} is missing from storage (deleted or rolled back; see `coffer check`)"
                )

    def read_part(self, snapshot_id: str, space: str) -> object:
        self.keys.require_read(space)
        return open_part(self.read_sealed(snapshot_id), self.tag(space), self.keys.private_keys_for(space))

    def device_tag(self, udid: str) -> str:
        assert self.keys.id_key is not None
        return primitives.mac(self.keys.id_key, b"coffer device v1 " + udid.encode("utf-8"))[:16].hex()

    def previous_snapshot(self, udid: str, before: float | None = None) -> str | None:
        """This device's newest snapshot not newer than `before`: the link of the next one in its chain.

        Two backups of one device may overlap (two hosts); each follows what came before its own
        start, so the chain never runs backwards in time (a fork, which `check` accepts)."""
        tag = self.device_tag(udid)
        chains = [
            (c.time, sid)
            for sid, c in self.chains().items()
            if c.device_tag == tag and (before is None or c.time <= before)
        ]
        return max(chains)[1] if chains else None

    def write_snapshot(self, header: SnapshotHeader, parts: dict[str, object], previous: str | None) -> str:
        """Seal and store a snapshot; `parts` maps space → JSON-able content or an `EncodedPart` (missing spaces
        get empty parts)."""
        self.keys.require_write()
        assert self.keys.index_key is not None
        udid = header.device.get("udid", "")
        chain = ChainRecord(device_tag=self.device_tag(udid), previous=previous, time=header.time)
        # Sealed to the public keys of this writer's own key set, never to keys read from storage.
        sealed_parts = {
            self.tag(space): (public, parts.get(space, []))
            for space, public in self.keys.public_keys.items()
            if space != HEADER_SPACE
        }
        data = seal_snapshot(
            index_key=self.keys.index_key,
            chain=chain,
            header_public=self.keys.public_keys[HEADER_SPACE],
            header=header,
            parts=sealed_parts,
            stats_keys={self.tag(space): (self.keys.public_keys[space], space) for space in self.config.categories},
        )
        snapshot_id = primitives.sha256(data).hex()
        put_if_absent(self.storage, SNAPSHOT_PREFIX + snapshot_id, data)
        self.ledger.record([snapshot_id])
        return snapshot_id


def _holds_repository_objects(storage: Storage) -> bool:
    """Whether the location holds key slots or data: then a missing config is damage, not a wrong path."""
    try:
        return any(any(True for _ in storage.list(prefix)) for prefix in (slots.SLOT_PREFIX, SNAPSHOT_PREFIX, DATA_PREFIX))
    except StorageError:
        return False  # no such folder or bucket prefix: nothing there


def write_sealed_record(repository: Repository, prefix: str, document: dict[str, object], purpose: bytes) -> str:
    """Store a small JSON record sealed under the index key as `<prefix><sha256>` (tombstones, fossils)."""
    assert repository.keys.index_key is not None
    data = primitives.seal_object(repository.keys.index_key, json.dumps(document, sort_keys=True).encode(), purpose=purpose)
    name = prefix + primitives.sha256(data).hex()
    put_if_absent(repository.storage, name, data)
    return name


def read_sealed_records(repository: Repository, prefix: str, purpose: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record under `prefix`, checked against its name and opened with the current or a retired index key."""
    repository.keys.require_index()
    for info in repository.storage.list(prefix):
        data = repository.storage.get(info.name)
        if primitives.sha256(data).hex() != info.name.removeprefix(prefix):
            raise RepositoryDamagedError(f"{info.name} is damaged (content does not match its name)")
        try:
            yield info.name, json.loads(primitives.open_object(repository.keys.index_keys(), data, purpose=purpose))
        except primitives.DecryptionError as exc:
            raise RepositoryDamagedError(f"{info.name} fails authentication") from exc


def host_name() -> str:
    return socket.gethostname()
