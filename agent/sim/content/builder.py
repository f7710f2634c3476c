"""Adds, replaces and removes the entries of a catalogue being generated or evolved.

Every generator module writes through a `DeviceBuilder`: it materialises small files
as blobs, keys media streams, builds and edits SQLite databases in a scratch folder,
creates parent directories, keeps inodes stable per path and stamps times from the
device clock. Randomness comes from `rng(purpose)`, one independent seeded generator
per purpose, so adding a generator never shifts what another one produces.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from agent.sim.content.catalogue import Catalogue
from agent.sim.content.entries import BlobContent, ContentSource, FileKind, SimFile
from agent.sim.content.profiles import Profile
from agent.sim.content.rules import default_mode, is_encrypted_only, protection_class_for
from agent.sim.content.state import StateStore
from agent.sim.content.stream import derive_stream, header_for

DAY = 86_400


class DeviceBuilder:
    """Mutates `catalogue` (a working copy) on behalf of one generation or evolve run.

    New and changed entries get times in `[clock - window, clock]`.
    """

    def __init__(
        self,
        store: StateStore,
        catalogue: Catalogue,
        profile: Profile,
        *,
        run: tuple[str | int, ...],
        window: int,
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.profile = profile
        self._run = (catalogue.seed, *run)
        self._window = window
        self._times = self.rng("timestamps")
        self._scratch = Path(tempfile.mkdtemp(prefix="coffer-sim-"))

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> DeviceBuilder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- randomness and time -------------------------------------------------------------

    def rng(self, purpose: str) -> random.Random:
        material = "\x00".join(str(part) for part in (*self._run, purpose)).encode()
        return random.Random(int.from_bytes(hashlib.sha256(material).digest(), "big"))

    @property
    def now(self) -> int:
        return self.catalogue.clock

    def timestamp(self) -> int:
        """A time inside this run's window, for an entry written now."""
        return self.now - self._times.randint(0, self._window)

    # --- queries ---------------------------------------------------------------------------

    def get(self, domain: str, relative_path: str) -> SimFile | None:
        return self.catalogue.entries.get((domain, relative_path))

    def exists(self, domain: str, relative_path: str) -> bool:
        return (domain, relative_path) in self.catalogue.entries

    def files_under(self, domain: str, prefix: str) -> list[SimFile]:
        return sorted(
            (f for (d, p), f in self.catalogue.entries.items() if d == domain and p.startswith(prefix)),
            key=lambda f: f.relative_path,
        )

    def bytes_of(self, f: SimFile) -> bytes:
        assert isinstance(f.source, BlobContent), f"{f.key} is not materialised"
        return self.store.blob_bytes(f.source.sha256)

    # --- writes ----------------------------------------------------------------------------

    def directory(self, domain: str, relative_path: str) -> None:
        """Ensure a directory and all its ancestors (the domain's root row included) exist."""
        parts = PurePosixPath(relative_path).parts if relative_path else ()
        for depth in range(len(parts) + 1):
            path = "/".join(parts[:depth])
            if not self.exists(domain, path):
                self._place(domain, path, FileKind.DIRECTORY, size=0, mtime=self.timestamp())

    def put_bytes(self, domain: str, relative_path: str, data: bytes, *, mtime: int | None = None) -> None:
        source = BlobContent(self.store.put_blob(data))
        self._place_file(domain, relative_path, source, len(data), mtime)

    def put_stream(
        self,
        domain: str,
        relative_path: str,
        size: int,
        *,
        mtime: int | None = None,
        header: bytes | None = None,
    ) -> None:
        """A file of `size` incompressible bytes, keyed by this run and the path."""
        source = derive_stream(
            *self._run, domain, relative_path, header=header_for(relative_path) if header is None else header
        )
        self._place_file(domain, relative_path, source, size, mtime)

    def put_sqlite(
        self,
        domain: str,
        relative_path: str,
        build: Callable[[sqlite3.Connection], None],
        *,
        mtime: int | None = None,
    ) -> None:
        """Create a database with `build(connection)` and store it."""
        self._run_sqlite(domain, relative_path, None, build, mtime)

    def edit_sqlite(
        self,
        domain: str,
        relative_path: str,
        edit: Callable[[sqlite3.Connection], None],
        *,
        mtime: int | None = None,
    ) -> None:
        """Apply `edit(connection)` to an existing database in place, so only the touched pages change."""
        existing = self.get(domain, relative_path)
        if existing is None:
            raise KeyError(f"{domain}/{relative_path} does not exist")
        self._run_sqlite(domain, relative_path, self.bytes_of(existing), edit, mtime)

    def symlink(self, domain: str, relative_path: str, target: str) -> None:
        self._ensure_parent(domain, relative_path)
        self._place(domain, relative_path, FileKind.SYMLINK, size=0, mtime=self.timestamp(), target=target)

    def remove(self, domain: str, relative_path: str) -> None:
        """Remove an entry and, for a directory, everything under it."""
        prefix = f"{relative_path}/" if relative_path else ""
        doomed = [key for key in self.catalogue.entries if key[0] == domain and key[1].startswith(prefix)]
        for key in [*doomed, (domain, relative_path)]:
            self.catalogue.entries.pop(key, None)

    # --- internals -------------------------------------------------------------------------

    def _run_sqlite(
        self,
        domain: str,
        relative_path: str,
        initial: bytes | None,
        action: Callable[[sqlite3.Connection], None],
        mtime: int | None,
    ) -> None:
        scratch = Path(tempfile.mkstemp(dir=self._scratch, suffix=".sqlite")[1])
        try:
            if initial is None:
                scratch.unlink()
            else:
                scratch.write_bytes(initial)
            connection = sqlite3.connect(scratch)
            try:
                connection.execute("PRAGMA synchronous = OFF")  # a scratch file: durability is the blob's job
                action(connection)
                connection.commit()
            finally:
                connection.close()
            self.put_bytes(domain, relative_path, scratch.read_bytes(), mtime=mtime)
        finally:
            scratch.unlink(missing_ok=True)

    def _place_file(
        self, domain: str, relative_path: str, source: ContentSource, size: int, mtime: int | None
    ) -> None:
        self._ensure_parent(domain, relative_path)
        self._place(domain, relative_path, FileKind.FILE, size=size, mtime=mtime, source=source)

    def _ensure_parent(self, domain: str, relative_path: str) -> None:
        parent = str(PurePosixPath(relative_path).parent)
        self.directory(domain, "" if parent == "." else parent)

    def _place(
        self,
        domain: str,
        relative_path: str,
        kind: FileKind,
        *,
        size: int,
        mtime: int | None,
        target: str | None = None,
        source: ContentSource | None = None,
    ) -> None:
        old = self.get(domain, relative_path)
        if (
            old is not None
            and old.kind is kind
            and old.source == source
            and old.size == size
            and old.target == target
        ):
            return  # same content: a real filesystem would not touch it either
        stamp = self.timestamp() if mtime is None else mtime
        if old is not None:
            inode, birth = old.inode, old.birth
        else:
            inode, birth = self.catalogue.next_inode, stamp
            self.catalogue.next_inode += 1
        self.catalogue.entries[(domain, relative_path)] = SimFile(
            domain=domain,
            relative_path=relative_path,
            kind=kind,
            size=size,
            mtime=stamp,
            birth=min(birth, stamp),
            mode=default_mode(kind),
            inode=inode,
            protection_class=protection_class_for(domain, relative_path, kind),
            encrypted_only=is_encrypted_only(domain, relative_path, kind),
            target=target,
            source=source,
        )
