"""Opening, creating and reading a repository: the place the other layers meet storage.

Write order is packs → index → snapshot, each put-if-absent under a name derived from the
content, so a reader never sees a snapshot whose data is not there yet, and concurrent
writers never overwrite each other.
"""

from __future__ import annotations

import json
import socket
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
from agent.repository.config import CONFIG_NAME, RepositoryConfig
from agent.repository.index import INDEX_PREFIX, Index, PackRecord, decode_index, encode_index
from agent.repository.ledger import SnapshotLedger
from agent.repository.snapshot import (
    SNAPSHOT_PREFIX,
    ChainRecord,
    SealedSnapshot,
    SnapshotHeader,
    open_chain,
    open_header,
    open_part,
    seal_snapshot,
)
from agent.storage.base import Storage

DATA_PREFIX = "data/"


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


class Repository:
    def __init__(self, storage: Storage, config: RepositoryConfig, keys: KeySet, slot_name: str) -> None:
        self.storage = storage
        self.config = config
        self.keys = keys
        self.slot_name = slot_name
        self.ledger = SnapshotLedger(config.repository_id)

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
        slot_name = slots.add_passphrase_slot(storage, config.kdf, passphrase, keys, label=None)
        recovery = recovery_key.generate()
        config.key_slots = [slot_name, slots.add_recovery_slot(storage, recovery, keys)]
        storage.put(CONFIG_NAME, config.encode(keys.auth_key))
        return cls(storage, config, keys, slot_name), recovery_key.format_key(recovery)

    @staticmethod
    def read_config(storage: Storage) -> tuple[RepositoryConfig, str]:
        try:
            data = storage.get(CONFIG_NAME)
        except ObjectNotFoundError as exc:
            if _holds_repository_objects(storage):
                raise RepositoryDamagedError(
                    f"the repository config is missing from {storage.location} (deleted, or `coffer init` was "
                    "interrupted: then empty the location and run it again)"
                ) from exc
            raise UsageError(f"there is no Coffer repository at {storage.location} (run `coffer init`)") from exc
        return RepositoryConfig.decode(data)

    @classmethod
    def open(cls, storage: Storage, secret: slots.Secret) -> Repository:
        config, mac = cls.read_config(storage)
        unlocked = _authenticating(config, mac, slots.unlock(storage, config.kdf, secret, config.key_slots))
        if storage.supports_object_lock:  # a copy on a backend without Object Lock stays readable
            storage.object_lock_days = config.object_lock_days  # later data objects carry a retention
        return cls(storage, config, unlocked.keys, unlocked.slot_name)

    def record_slots(self, added: Iterable[str] = (), removed: Iterable[str] = ()) -> None:
        """Rewrite the config's list of key slots after `key add` / `key remove` (full key only)."""
        self.keys.require_full()
        self.config.key_slots = sorted((set(self.config.key_slots) | set(added)) - set(removed))
        self.storage.put(CONFIG_NAME, self.config.encode(self.keys.auth_key), if_absent=False)

    # --- names --------------------------------------------------------------------
    def tag(self, space: str) -> str:
        return self.config.tag(space, self.keys.storage_tag_key)

    def pack_name(self, space: str, pack_id: str) -> str:
        return f"{DATA_PREFIX}{self.tag(space)}/{pack_id}"

    def spaces_by_tag(self) -> dict[str, str]:
        return {self.tag(space): space for space in self.config.public_keys}

    # --- index ----------------------------------------------------------------------
    def load_index(self) -> Index:
        self.keys.require_index()
        assert self.keys.index_key is not None
        index = Index()
        superseded: set[str] = set()
        loaded: list[tuple[str, list[PackRecord]]] = []
        for info in self.storage.list(INDEX_PREFIX):
            data = self.storage.get(info.name)
            if primitives.sha256(data).hex() != info.name.removeprefix(INDEX_PREFIX):
                raise RepositoryDamagedError(f"index object {info.name} is damaged (content does not match its name)")
            records, supersedes = decode_index(data, self.keys.index_keys(), info.name)
            superseded.update(supersedes)
            loaded.append((info.name, records))
        for name, records in loaded:
            if name in superseded:
                continue
            index.objects.add(name)
            for record in records:
                index.add_pack(record)
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
        try:
            data = self.storage.get(SNAPSHOT_PREFIX + snapshot_id)
        except ObjectNotFoundError as exc:
            raise RepositoryDamagedError(f"snapshot {snapshot_id[:12]} is missing") from exc
        return SealedSnapshot.parse(snapshot_id, data)

    def chains(self) -> dict[str, ChainRecord]:
        """Chain records of every snapshot (any writer can read them)."""
        self.keys.require_index()
        assert self.keys.index_key is not None
        return {sid: open_chain(self.read_sealed(sid), self.keys.index_keys()) for sid in self.snapshot_ids()}

    def snapshots(self) -> list[SnapshotEntry]:
        """Every snapshot with its header, oldest first."""
        self.keys.require_read(HEADER_SPACE)
        self.keys.require_index()
        assert self.keys.index_key is not None
        entries = []
        for sid in self.snapshot_ids():
            sealed = self.read_sealed(sid)
            entries.append(
                SnapshotEntry(
                    sid,
                    open_header(sealed, self.keys.private_keys_for(HEADER_SPACE)),
                    open_chain(sealed, self.keys.index_keys()),
                )
            )
        self.ledger.record(e.snapshot_id for e in entries)
        return sorted(entries, key=lambda e: (e.header.time, e.snapshot_id))

    def find_snapshot(self, reference: str) -> SnapshotEntry:
        """Resolve `latest`, a full ID or a unique ID prefix."""
        entries = self.snapshots()
        if not entries:
            raise UsageError("the repository has no snapshots yet")
        if reference == "latest":
            return entries[-1]
        matches = [e for e in entries if e.snapshot_id.startswith(reference)]
        if not matches:
            raise UsageError(f"no snapshot {reference!r} (see `coffer snapshots`)")
        if len(matches) > 1:
            raise UsageError(f"snapshot prefix {reference!r} is ambiguous: give more characters")
        return matches[0]

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
        """Seal and store a snapshot; `parts` maps space → JSON-able content (missing spaces get empty parts)."""
        self.keys.require_write()
        assert self.keys.index_key is not None
        udid = header.device.get("udid", "")
        chain = ChainRecord(device_tag=self.device_tag(udid), previous=previous, time=header.time)
        sealed_parts = {
            self.tag(space): (public, parts.get(space, []))
            for space, public in self.config.public_keys.items()
            if space != HEADER_SPACE
        }
        data = seal_snapshot(
            index_key=self.keys.index_key,
            chain=chain,
            header_public=self.config.public_keys[HEADER_SPACE],
            header=header,
            parts=sealed_parts,
        )
        snapshot_id = primitives.sha256(data).hex()
        put_if_absent(self.storage, SNAPSHOT_PREFIX + snapshot_id, data)
        self.ledger.record([snapshot_id])
        return snapshot_id


def _authenticating(config: RepositoryConfig, mac: str, opened: list[slots.Unlocked]) -> slots.Unlocked:
    """The opened key set that authenticates the config, from a slot the config lists.

    Another slot the same secret opens is what an interrupted `key rotate` or key change left: a new slot
    whose keys the config does not use yet, or an old one the config no longer lists. Neither unlocks, and
    neither hides the current one. A listed slot whose keys fail is damage (the config was altered); a
    secret that opens only slots the config does not list is a revoked or not yet added one (exit 3).
    """
    listed = set(config.key_slots)  # empty in a config from before slots were listed: any slot counts
    unlisted: list[str] = []
    failures: list[str] = []
    for candidate in opened:
        if candidate.keys.repository_id != config.repository_id:
            failures.append(f"key slot {candidate.slot_name} belongs to another repository")
            continue
        if listed and candidate.slot_name not in listed:
            unlisted.append(candidate.slot_name)
            continue
        try:
            config.verify(mac, candidate.keys.auth_key)
        except RepositoryDamagedError as exc:
            failures.append(str(exc))
            continue
        return candidate
    if failures:
        raise RepositoryDamagedError(failures[0])
    raise WrongSecretError(
        f"this secret opens only key slot {unlisted[0]}, which the repository config does not list: it was replaced "
        "or removed (`key passwd`, `key remove`, `key rotate`), or its `key add` was interrupted (run it again)"
    )


def _holds_repository_objects(storage: Storage) -> bool:
    """Whether the location holds key slots or data: then a missing config is damage, not a wrong path."""
    try:
        return any(any(True for _ in storage.list(prefix)) for prefix in (slots.SLOT_PREFIX, SNAPSHOT_PREFIX, DATA_PREFIX))
    except StorageError:
        return False  # no such folder or bucket prefix: nothing there


def write_sealed_record(repository: Repository, prefix: str, document: dict[str, object], purpose: bytes) -> str:
    """Store a small JSON record sealed under the index key as `<prefix><sha256>` (tombstones, fossils)."""
    assert repository.keys.index_key is not None
    data = primitives.seal_box(repository.keys.index_key, json.dumps(document, sort_keys=True).encode(), purpose=purpose)
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
            yield info.name, json.loads(primitives.open_box_any(repository.keys.index_keys(), data, purpose=purpose))
        except primitives.DecryptionError as exc:
            raise RepositoryDamagedError(f"{info.name} fails authentication") from exc


def host_name() -> str:
    return socket.gethostname()
