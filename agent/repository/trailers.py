"""What the packs say about themselves: each pack's trailer, read with ranged reads.

The trailer is the ground truth of a pack's content (sealed under the pack key with the blobs),
so the index can always be checked against it and rebuilt from it: three small ranged reads
per pack (header for the pack key, footer, trailer), never the whole pack.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from agent.errors import ObjectNotFoundError, RepositoryDamagedError
from agent.repository.index import Index, PackRecord
from agent.repository.pack import HEADER_READ_SIZE, PackedBlob, open_pack_key, read_trailer_ranged
from agent.repository.repository import DATA_PREFIX, Repository

TRAILER_THREADS = 8  # a trailer is three small ranged reads: overlap their latency


@dataclass(frozen=True)
class StoredPack:
    name: str  # data/<tag>/<pack id>
    pack_id: str
    space: str | None  # None: a tag this repository does not know
    size: int


def stored_packs(repository: Repository) -> dict[str, StoredPack]:
    """Every pack object in storage, by name, with the space its tag stands for."""
    spaces = repository.spaces_by_tag()
    packs = {}
    for info in repository.storage.list(DATA_PREFIX):
        parts = info.name.split("/")
        tag, pack_id = (parts[1], parts[2]) if len(parts) == 3 else ("", info.name)
        packs[info.name] = StoredPack(info.name, pack_id, spaces.get(tag), info.size)
    return packs


def read_pack_key(repository: Repository, pack: StoredPack) -> bytes:
    assert pack.space is not None
    header = _get_range(repository, pack.name, 0, HEADER_READ_SIZE)
    return open_pack_key(header, repository.keys.private_keys_for(pack.space), repository.tag(pack.space), pack.name)


def scan_trailer(repository: Repository, pack: StoredPack) -> list[PackedBlob]:
    """The blobs a pack's trailer lists; damage or truncation raises RepositoryDamagedError naming the pack."""
    if pack.space is None:
        raise RepositoryDamagedError(f"pack {pack.name} has a category tag this repository does not know")
    key = read_pack_key(repository, pack)
    return read_trailer_ranged(
        lambda offset, length: _get_range(repository, pack.name, offset, length), pack.size, key, pack.name
    )


def _get_range(repository: Repository, name: str, offset: int, length: int) -> bytes:
    try:
        return repository.storage.get_range(name, offset, length)
    except ObjectNotFoundError as exc:
        raise RepositoryDamagedError(f"pack {name} is missing") from exc


def confirmed_index(repository: Repository, index: Index, on_note: Callable[[str], None]) -> Index:
    """`index` without the entries no pack trailer confirms: what deletion decisions may rely on.

    An index object added by a holder of the index key could otherwise claim that a live chunk lives
    in some other pack, and make prune reclaim the only true copy. A pack whose trailer cannot be read
    keeps its index entries (`check` reports it)."""
    packs = stored_packs(repository)

    def confirm(record: PackRecord) -> tuple[PackRecord, set[tuple[bytes, int, int, int]] | None]:
        stored = packs.get(repository.pack_name(record.space, record.pack_id))
        if stored is None:
            return record, None
        try:
            return record, {(b.chunk_id, b.offset, b.length, b.raw_length) for b in scan_trailer(repository, stored)}
        except RepositoryDamagedError as exc:
            on_note(f"{exc}: its index entries are used unconfirmed")
            return record, None

    confirmed = Index()
    confirmed.objects.update(index.objects)
    with ThreadPoolExecutor(max_workers=TRAILER_THREADS, thread_name_prefix="coffer-trailer") as pool:
        for record, listed in pool.map(confirm, list(index.packs())):
            blobs = record.blobs if listed is None else [blob for blob in record.blobs if blob in listed]
            if len(blobs) < len(record.blobs):
                on_note(f"ignored {len(record.blobs) - len(blobs)} index entries for pack {record.pack_id[:12]} its trailer does not confirm")
            confirmed.add_pack(PackRecord(record.pack_id, record.space, blobs))
    return confirmed
