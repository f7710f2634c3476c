"""What an interrupted key change or `key rotate` leaves behind: found for `check`, removed for `repair`.

Key changes are ordered so that a crash between any two storage writes leaves the old or the new
state plus, at most, objects of two harmless kinds:

* key slots the config does not list: written by a `key add`, `key passwd` or rotation that stopped
  before its config switch, or replaced by one that stopped after it (`key passwd` and `key remove`
  unlist a slot first and delete it after). Such a slot unlocks nothing: `Repository.open` uses only
  a slot the config lists.
* copies of a snapshot: a rotation re-seals every snapshot under the new keys and removes the
  originals last, so a stopped one leaves both. Two snapshots of one device with the same time,
  header and contents are one backup; the copy sealed under the current keys is the one kept.

A rerun of `key rotate` removes both as part of its work; `remove_leftovers` does it without new keys.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from agent.errors import ObjectNotFoundError, RepositoryDamagedError
from agent.keys import slots
from agent.keys.keyset import HEADER_SPACE
from agent.repository.repository import Repository
from agent.repository.snapshot import SNAPSHOT_PREFIX, SealedSnapshot
from agent.repository.tombstones import write_tombstone


@dataclass
class Leftovers:
    slots: list[str] = field(default_factory=list)  # key slots the config does not list
    copies: dict[str, str] = field(default_factory=dict)  # snapshot ID -> ID of the identical snapshot kept
    # Snapshots a tombstone names that are still stored (a forget or rotate stopped between its tombstone and
    # its deletions); `check` reports them itself.
    forgotten: list[str] = field(default_factory=list)

    def messages(self) -> list[str]:
        return [
            *(
                f"key slot {name} is not listed by the config (left by an interrupted key change or rotate, an "
                "older `config` put back, or put there by someone else): no key can use it; `coffer repair` removes it"
                for name in self.slots
            ),
            *(
                f"snapshot {copy[:12]} is a copy of snapshot {kept[:12]} left over from an interrupted `key rotate`; "
                "rerun it, or `coffer repair` removes the copy"
                for copy, kept in sorted(self.copies.items())
            ),
        ]


def unlisted_slots(repository: Repository) -> list[str]:
    listed = set(repository.config.key_slots)
    if not listed:  # a config from before slots were listed: nothing to compare with
        return []
    return [name for name in slots.slot_names(repository.storage) if name not in listed]


def snapshot_copies(repository: Repository) -> dict[str, str]:
    """Snapshots that duplicate another one (same device, time, header and contents); needs the full key."""
    if not repository.keys.is_full:
        return {}
    groups: dict[tuple[str, float], list[str]] = defaultdict(list)
    for snapshot_id, chain in repository.chains().items():
        groups[(chain.device_tag, chain.time)].append(snapshot_id)
    copies: dict[str, str] = {}
    for members in groups.values():
        if len(members) < 2:
            continue  # the rule: a snapshot has no copy (only a stopped rotation makes one)
        current = {sid for sid in members if _sealed_under_current_keys(repository, sid)}
        kept: list[tuple[str, object]] = []
        for snapshot_id in sorted(members, key=lambda sid: (sid not in current, sid)):
            content = _content(repository, snapshot_id)
            same = next((k for k, c in kept if c == content), None)
            if same is None:
                kept.append((snapshot_id, content))
            else:
                copies[snapshot_id] = same
    return copies


def find_leftovers(repository: Repository) -> Leftovers:
    forgotten = repository.forgotten_ids()
    still_stored = [sid for sid in repository.snapshot_ids() if sid in forgotten]
    return Leftovers(unlisted_slots(repository), snapshot_copies(repository), still_stored)


def remove_leftovers(repository: Repository, leftovers: Leftovers) -> None:
    """Remove what `find_leftovers` found: copies are tombstoned first, so a link to one stays explained."""
    repository.keys.require_full()
    if leftovers.copies:
        write_tombstone(repository, sorted(leftovers.copies))
        for copy in sorted(leftovers.copies):
            repository.storage.delete(SNAPSHOT_PREFIX + copy)
    for snapshot_id in leftovers.forgotten:
        repository.storage.delete(SNAPSHOT_PREFIX + snapshot_id)
    for name in leftovers.slots:
        repository.storage.delete(name)


def _sealed_under_current_keys(repository: Repository, snapshot_id: str) -> bool:
    assert repository.keys.index_key is not None
    try:
        SealedSnapshot.parse(snapshot_id, repository.storage.get(SNAPSHOT_PREFIX + snapshot_id), [repository.keys.index_key])
    except (RepositoryDamagedError, ObjectNotFoundError):
        return False
    return True


def _content(repository: Repository, snapshot_id: str) -> object:
    """Everything a snapshot holds, whichever generation of keys it is sealed under."""
    header = repository.open_header(repository.read_sealed(snapshot_id))
    parts = {s: repository.read_part(snapshot_id, s) for s in repository.keys.public_keys if s != HEADER_SPACE}
    return header, parts
