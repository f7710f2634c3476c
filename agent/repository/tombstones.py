"""Records of snapshots removed on purpose by `forget`, so `check` can tell them from an attack.

A snapshot chain with a missing link means deletion or rollback — unless the key holder
forgot that snapshot. `tombstones/<sha256>` objects, sealed under the index key (which a
storage provider never holds), list the IDs forgotten; `check` accepts a missing link only
when a tombstone names it.
"""

from __future__ import annotations

import json
import time

from agent.errors import RepositoryDamagedError
from agent.keys import primitives
from agent.repository.repository import Repository, put_if_absent

TOMBSTONE_PREFIX = "tombstones/"


def write_tombstone(repository: Repository, snapshot_ids: list[str]) -> str:
    assert repository.keys.index_key is not None
    plain = json.dumps({"forgotten": sorted(snapshot_ids), "time": time.time()}).encode("utf-8")
    data = primitives.seal_box(repository.keys.index_key, plain, purpose=b"tombstone")
    name = TOMBSTONE_PREFIX + primitives.sha256(data).hex()
    put_if_absent(repository.storage, name, data)
    return name


def forgotten_snapshots(repository: Repository) -> set[str]:
    repository.keys.require_index()
    assert repository.keys.index_key is not None
    forgotten: set[str] = set()
    for info in repository.storage.list(TOMBSTONE_PREFIX):
        data = repository.storage.get(info.name)
        if primitives.sha256(data).hex() != info.name.removeprefix(TOMBSTONE_PREFIX):
            raise RepositoryDamagedError(f"{info.name} is damaged (content does not match its name)")
        try:
            doc = json.loads(primitives.open_box_any(repository.keys.index_keys(), data, purpose=b"tombstone"))
        except primitives.DecryptionError as exc:
            raise RepositoryDamagedError(f"{info.name} fails authentication") from exc
        forgotten.update(doc["forgotten"])
    return forgotten
