"""Taking a restore: what a device does with the entries of a backup restored onto it.

Every restored entry replaces the device's entry at that path (keeping its inode), with
the restored mode, mtime and bytes; with `remove_missing`, entries the restore did not
name are deleted. Restored bytes that are exactly a generated media stream (recognised
by the marker at their start, then checked byte for byte) are kept as the stream's key,
so restoring a several-GB device does not fill the state folder; anything else is
materialised as a blob.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain

from agent.sim.content.catalogue import Catalogue
from agent.sim.content.entries import (
    READ_PIECE_SIZE,
    BlobContent,
    ContentSource,
    FileKind,
    RestoredEntry,
    SimFile,
)
from agent.sim.content.rules import DIRECTORY_MODE, is_encrypted_only, protection_class_for
from agent.sim.content.state import StateStore
from agent.sim.content.stream import RECOGNITION_PREFIX, StreamComparer, recognise_stream, stream_pieces


def restore_entries(
    store: StateStore, before: Catalogue, entries: Iterable[RestoredEntry], *, remove_missing: bool
) -> Catalogue:
    after = before.copy()
    restored: set[tuple[str, str]] = set()
    for entry in entries:
        key = (entry.domain, entry.relative_path)
        restored.add(key)
        source, size = _store_content(store, entry.data or ()) if entry.kind is FileKind.FILE else (None, 0)
        old = after.entries.get(key)
        if old is not None:
            inode, birth = old.inode, min(old.birth, entry.mtime)
        else:
            inode, birth = after.next_inode, entry.mtime
            after.next_inode += 1
        protection_class = entry.protection_class
        if protection_class is None:
            protection_class = protection_class_for(entry.domain, entry.relative_path, entry.kind)
        after.entries[key] = SimFile(
            domain=entry.domain,
            relative_path=entry.relative_path,
            kind=entry.kind,
            size=size,
            mtime=entry.mtime,
            birth=birth,
            mode=entry.mode,
            inode=inode,
            protection_class=protection_class,
            encrypted_only=is_encrypted_only(entry.domain, entry.relative_path, entry.kind),
            target=entry.target if entry.kind is FileKind.SYMLINK else None,
            source=source,
        )
    if remove_missing:
        for key in after.entries.keys() - restored:
            del after.entries[key]
    _add_missing_domain_roots(after)
    return after


def _add_missing_domain_roots(catalogue: Catalogue) -> None:
    """Every domain keeps its root directory row, even when a restore did not name it."""
    for domain in {domain for domain, _ in catalogue.entries} - {
        d for d, path in catalogue.entries if path == ""
    }:
        catalogue.entries[(domain, "")] = SimFile(
            domain=domain,
            relative_path="",
            kind=FileKind.DIRECTORY,
            size=0,
            mtime=catalogue.clock,
            birth=catalogue.clock,
            mode=DIRECTORY_MODE,
            inode=catalogue.next_inode,
            protection_class=0,
            encrypted_only=False,
        )
        catalogue.next_inode += 1


def _store_content(store: StateStore, data: Iterable[bytes]) -> tuple[ContentSource, int]:
    pieces = iter(data)
    head: list[bytes] = []
    head_size = 0
    while head_size < RECOGNITION_PREFIX and (piece := next(pieces, None)) is not None:
        head.append(piece)
        head_size += len(piece)
    candidate = recognise_stream(b"".join(head))
    if candidate is None:
        return _store_blob(store, chain(head, pieces))
    comparer = StreamComparer(candidate)
    incoming = chain(head, pieces)
    for piece in incoming:
        if not comparer.matches(piece):
            # Not the stream after all: materialise the part that matched, then the rest as received.
            matched = stream_pieces(candidate, comparer.matched, READ_PIECE_SIZE)
            return _store_blob(store, chain(matched, [piece], incoming))
    return candidate, comparer.matched


def _store_blob(store: StateStore, pieces: Iterator[bytes]) -> tuple[ContentSource, int]:
    digest, size = store.put_blob_pieces(pieces)
    return BlobContent(digest), size
