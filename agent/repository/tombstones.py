"""Records of snapshots removed on purpose by `forget`, so `check` can tell them from an attack.

A snapshot chain with a missing link means deletion or rollback — unless the key holder
forgot that snapshot. `tombstones/<sha256>` objects, sealed under the index key (which a
storage provider never holds), list the IDs forgotten; `check` accepts a missing link only
when a tombstone names it.
"""

from __future__ import annotations

import time

from agent.repository.repository import TOMBSTONE_PREFIX, Repository, write_sealed_record
from agent.repository.snapshot import SNAPSHOT_PREFIX


def write_tombstone(repository: Repository, snapshot_ids: list[str]) -> str:
    return write_sealed_record(
        repository, TOMBSTONE_PREFIX, {"forgotten": sorted(snapshot_ids), "time": time.time()}, b"tombstone"
    )


def forget_snapshots(repository: Repository, snapshot_ids: list[str]) -> None:
    """Remove snapshots on purpose: the tombstone first, so `check` knows the missing links were
    forgotten, not deleted by an attacker."""
    if not snapshot_ids:
        return
    write_tombstone(repository, snapshot_ids)
    for snapshot_id in snapshot_ids:
        repository.storage.delete(SNAPSHOT_PREFIX + snapshot_id)

