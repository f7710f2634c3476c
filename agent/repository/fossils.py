"""Fossil records: packs `prune` marked for deletion in a later run (the first of its two phases).

`fossils/<sha256>` objects are sealed under the index key and list pack object names with the time they
were marked. A pack stays in the index while it is a fossil, so a backup that started before the marking can
still use it; a backup that starts later deduplicates against `index_for_backup`, which leaves fossils out,
so it never comes to depend on a pack the next prune may delete.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from agent.errors import RepositoryDamagedError
from agent.keys import primitives
from agent.repository.index import Index
from agent.repository.repository import Repository, put_if_absent

FOSSIL_PREFIX = "fossils/"


@dataclass
class Fossils:
    name: str
    time: float
    packs: dict[str, str]  # pack object name -> space ('' for an unindexed pack)


def load_fossils(repository: Repository) -> list[Fossils]:
    repository.keys.require_index()
    assert repository.keys.index_key is not None
    records = []
    for info in repository.storage.list(FOSSIL_PREFIX):
        data = repository.storage.get(info.name)
        if primitives.sha256(data).hex() != info.name.removeprefix(FOSSIL_PREFIX):
            raise RepositoryDamagedError(f"{info.name} is damaged (content does not match its name)")
        try:
            doc = json.loads(primitives.open_box_any(repository.keys.index_keys(), data, purpose=b"fossils"))
        except primitives.DecryptionError as exc:
            raise RepositoryDamagedError(f"{info.name} fails authentication") from exc
        records.append(Fossils(info.name, float(doc["time"]), dict(doc["packs"])))
    return records


def write_fossils(repository: Repository, packs: dict[str, str]) -> None:
    assert repository.keys.index_key is not None
    plain = json.dumps({"time": time.time(), "packs": packs}, sort_keys=True).encode()
    data = primitives.seal_box(repository.keys.index_key, plain, purpose=b"fossils")
    put_if_absent(repository.storage, FOSSIL_PREFIX + primitives.sha256(data).hex(), data)


def index_for_backup(repository: Repository) -> Index:
    """The index a new backup deduplicates against: every indexed pack except fossils.

    Load it after announcing the backup (`locks.running_backup`): prune deletes a fossil only when it was
    marked before the oldest running backup started, and a backup that starts after the marking must not
    reference it.
    """
    index = repository.load_index()
    fossil_names = {name for record in load_fossils(repository) for name in record.packs}
    usable = Index()
    usable.objects.update(index.objects)
    for record in index.packs():
        if repository.pack_name(record.space, record.pack_id) not in fossil_names:
            usable.add_pack(record)
    return usable
