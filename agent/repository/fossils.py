"""Fossil records: packs `prune` marked for deletion in a later run (the first of its two phases).

`fossils/<sha256>` objects are sealed under the index key and list pack object names with the time they
were marked. A pack stays in the index while it is a fossil, so a backup that started before the marking can
still use it; a backup that starts later deduplicates against `index_for_backup`, which leaves fossils out,
so it never comes to depend on a pack the next prune may delete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from agent.repository.index import Index
from agent.repository.repository import Repository, read_sealed_records, write_sealed_record

FOSSIL_PREFIX = "fossils/"


@dataclass
class Fossils:
    name: str
    time: float
    packs: dict[str, str]  # pack object name -> space ('' for an unindexed pack)


def load_fossils(repository: Repository) -> list[Fossils]:
    return [
        Fossils(name, float(document["time"]), dict(document["packs"]))
        for name, document in read_sealed_records(repository, FOSSIL_PREFIX, b"fossils")
    ]


def write_fossils(repository: Repository, packs: dict[str, str]) -> None:
    write_sealed_record(repository, FOSSIL_PREFIX, {"time": time.time(), "packs": packs}, b"fossils")


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
