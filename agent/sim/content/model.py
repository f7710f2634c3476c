"""The simulated device's filesystem: what the backup services see and change.

`DeviceFilesystem` is the one object the protocol engine talks to. It lists every
entry of the phone (`files()`), streams a file's bytes (`read()`), lets a day of use
pass (`evolve()`) and takes a restore (`apply_restore()`). State lives in one folder:
a JSON catalogue of the entries plus the small files (SQLite databases, plists, text)
materialised under `blobs/`; media bytes are never stored, they are a seeded keystream
regenerated on every read (see `stream.py`), so a several-GB device costs a few MB.

Keys of `snapshot_digest()` and of `EvolveReport` are `"<domain>/<relative_path>"`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from agent.sim.content.catalogue import Catalogue
from agent.sim.content.entries import (
    READ_PIECE_SIZE,
    BlobContent,
    ContentSource,
    EvolveReport,
    FileKind,
    RestoredEntry,
    SimFile,
    StreamContent,
)
from agent.sim.content.evolve import evolve_device
from agent.sim.content.generator import generate_device
from agent.sim.content.profiles import PROFILE_NAMES, profile_named
from agent.sim.content.restore import restore_entries
from agent.sim.content.state import StateStore
from agent.sim.content.stream import stream_pieces

__all__ = [
    "PROFILE_NAMES",
    "READ_PIECE_SIZE",
    "BlobContent",
    "ContentSource",
    "DeviceFilesystem",
    "EvolveReport",
    "FileKind",
    "RestoredEntry",
    "SimFile",
    "StreamContent",
]


class DeviceFilesystem:
    """The content of one simulated device, persisted in its state folder.

    Reads are thread-safe and may run while another thread evolves or restores:
    they keep serving the entry they were given as long as its bytes still exist.
    """

    def __init__(self, store: StateStore, catalogue: Catalogue) -> None:
        self._store = store
        self._catalogue = catalogue
        self._lock = threading.Lock()
        self._stream_digests: dict[tuple[bytes, bytes, int], str] = {}

    @classmethod
    def create(cls, state_dir: Path, *, profile: str, seed: int) -> DeviceFilesystem:
        """Generate a new device of `profile` (tiny, small, medium, large) into an empty `state_dir`."""
        store = StateStore.create(Path(state_dir))
        catalogue = generate_device(store, profile_named(profile), seed)
        store.save(catalogue)
        return cls(store, catalogue)

    @classmethod
    def load(cls, state_dir: Path) -> DeviceFilesystem:
        """Reopen a device that `create()` made (after any evolve or restore)."""
        store = StateStore.open(Path(state_dir))
        return cls(store, store.load())

    @property
    def state_dir(self) -> Path:
        return self._store.root

    @property
    def profile(self) -> str:
        return self._catalogue.profile

    @property
    def seed(self) -> int:
        return self._catalogue.seed

    @property
    def clock(self) -> int:
        """The device's current time (unix seconds); each evolve moves it a day on."""
        return self._catalogue.clock

    def files(self) -> list[SimFile]:
        """Every entry, a root directory row per domain included, sorted by domain then path."""
        return self._catalogue.sorted_files()

    def get(self, domain: str, relative_path: str) -> SimFile | None:
        return self._catalogue.entries.get((domain, relative_path))

    def read(self, f: SimFile) -> Iterator[bytes]:
        """Stream the bytes of a file entry in pieces of at most 1 MiB; nothing for others."""
        if f.kind is not FileKind.FILE:
            return iter(())
        if isinstance(f.source, StreamContent):
            return stream_pieces(f.source, f.size, READ_PIECE_SIZE)
        if isinstance(f.source, BlobContent):
            return self._store.read_blob(f.source.sha256, READ_PIECE_SIZE)
        raise ValueError(f"{f.key} has no content source")

    def as_restored(self, f: SimFile) -> RestoredEntry:
        """The entry as a restore would hand it back (its content read lazily)."""
        return RestoredEntry(
            domain=f.domain,
            relative_path=f.relative_path,
            kind=f.kind,
            mode=f.mode,
            mtime=f.mtime,
            target=f.target,
            data=self.read(f) if f.kind is FileKind.FILE else None,
            protection_class=f.protection_class or None,
        )

    def total_size(self) -> int:
        return sum(f.size for f in self._catalogue.entries.values())

    def evolve(self, seed: int) -> EvolveReport:
        """Let a day of use pass: new photos and messages, an edited note, an app installed, ..."""
        with self._lock:
            catalogue, report = evolve_device(self._store, self._catalogue, seed)
            self._commit(catalogue)
        return report

    def apply_restore(self, entries: Iterable[RestoredEntry], *, remove_missing: bool) -> None:
        """Put restored entries onto the device; with `remove_missing`, drop every entry not restored."""
        with self._lock:
            self._commit(
                restore_entries(self._store, self._catalogue, entries, remove_missing=remove_missing)
            )

    def snapshot_digest(self, *, include_encrypted_only: bool = True) -> dict[str, str]:
        """Map each entry's key to the SHA-256 of its bytes, `"dir"` or `"symlink:<target>"`."""
        digests: dict[str, str] = {}
        for f in self.files():
            if f.encrypted_only and not include_encrypted_only:
                continue
            if f.kind is FileKind.DIRECTORY:
                digests[f.key] = "dir"
            elif f.kind is FileKind.SYMLINK:
                digests[f.key] = f"symlink:{f.target}"
            else:
                digests[f.key] = self._content_digest(f)
        return digests

    def _content_digest(self, f: SimFile) -> str:
        if isinstance(f.source, BlobContent):
            return f.source.sha256
        assert isinstance(f.source, StreamContent)
        cache_key = (f.source.key, f.source.header, f.size)
        digest = self._stream_digests.get(cache_key)
        if digest is None:
            hasher = hashlib.sha256()
            for piece in self.read(f):
                hasher.update(piece)
            digest = self._stream_digests[cache_key] = hasher.hexdigest()
        return digest

    def _commit(self, catalogue: Catalogue) -> None:
        self._store.save(catalogue)
        self._catalogue = catalogue
        self._store.collect_garbage(catalogue.referenced_blobs())
