"""A host-local cache of a remote repository's index and snapshot objects.

Every command starts by reading the index, and `snapshots`, `ls` and a backup's chain
lookup read every snapshot object; from a bucket that is one GET per object per command.
Those objects are content-named (`index/<sha256>`, `snapshots/<sha256>`) and never change,
so a copy kept under its name stays right for ever: `CachedStorage` serves them from
`<cache dir>/objects/<location hash>/` and only the listing goes to the bucket.

The cached bytes are the stored bytes, which are already sealed (index objects under the
index key, snapshot parts to their category keys), so the cache holds nothing in the clear.
A cached file is used only if its SHA-256 still matches its name; a damaged one is dropped
and fetched again. A complete listing of `index/` or `snapshots/` drops cached objects the
repository no longer lists (superseded by prune, forgotten), so the cache stays the size of
the repository's metadata.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agent.paths import cache_root
from agent.storage.base import ObjectInfo, Storage
from agent.storage.wrapper import StorageWrapper

log = logging.getLogger(__name__)

CACHED_PREFIXES = ("index/", "snapshots/")
_CONTENT_NAME = re.compile(r"[0-9a-f]{64}")
_TEMP_PREFIX = ".tmp-"


def _digest_name(name: str) -> str | None:
    """The SHA-256 (hex) a cacheable name promises, or None for names this cache leaves alone."""
    for prefix in CACHED_PREFIXES:
        rest = name.removeprefix(prefix)
        if rest != name and _CONTENT_NAME.fullmatch(rest):
            return rest
    return None


def cache_directory(location: str) -> Path:
    """Where the objects of the repository at `location` are cached."""
    return cache_root() / "objects" / hashlib.sha256(location.encode("utf-8")).hexdigest()[:32]


class CachedStorage(StorageWrapper):
    """`inner` with its content-named metadata objects served from a local folder once fetched."""

    def __init__(self, inner: Storage, directory: Path) -> None:
        super().__init__(inner)
        self.directory = directory

    @classmethod
    def for_location(cls, inner: Storage) -> CachedStorage:
        return cls(inner, cache_directory(inner.location))

    # -- reads and writes that go through the cache ---------------------------------------
    def get(self, name: str) -> bytes:
        digest = _digest_name(name)
        if digest is None:
            return self.inner.get(name)
        cached = self._load(name, digest)
        if cached is not None:
            return cached
        data = self.inner.get(name)
        if hashlib.sha256(data).hexdigest() == digest:
            self._store(name, data)
        return data  # damaged bytes are not cached; the caller reports the damage

    def put(
        self, name: str, data: bytes, *, if_absent: bool = True, tags: dict[str, str] | None = None
    ) -> None:
        self.inner.put(name, data, if_absent=if_absent, tags=tags)
        digest = _digest_name(name)
        if digest is not None and hashlib.sha256(data).hexdigest() == digest:
            self._store(name, data)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if prefix not in CACHED_PREFIXES:
            yield from self.inner.list(prefix)
            return
        listed: set[str] = set()
        for info in self.inner.list(prefix):
            listed.add(info.name)
            yield info
        self._evict(prefix, listed)

    def delete(self, name: str) -> None:
        self.inner.delete(name)
        self._discard(name)

    def purge(self, name: str) -> None:
        self.inner.purge(name)
        self._discard(name)

    # -- the cache folder ---------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        return self.directory.joinpath(*name.split("/"))

    def _load(self, name: str, digest: str) -> bytes | None:
        path = self._path(name)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != digest:
            log.warning("dropping the damaged cached copy of %s", name)
            path.unlink(missing_ok=True)
            return None
        return data

    def _store(self, name: str, data: bytes) -> None:
        """Keep a copy; a cache that cannot be written only costs the next command a download."""
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, temporary = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as error:
            log.debug("cannot cache %s in %s: %s", name, self.directory, error)

    def _discard(self, name: str) -> None:
        if _digest_name(name) is not None:
            self._path(name).unlink(missing_ok=True)

    def _evict(self, prefix: str, listed: set[str]) -> None:
        folder = self._path(prefix.rstrip("/"))
        try:
            cached = [entry.name for entry in os.scandir(folder) if not entry.name.startswith(_TEMP_PREFIX)]
        except OSError:
            return
        for filename in cached:
            if prefix + filename not in listed:
                (folder / filename).unlink(missing_ok=True)
