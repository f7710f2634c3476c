"""The local-directory backend, the embedded default.

Every write goes to a temporary file in the target folder, is fsynced, and then appears
under its final name in one step: `link()` for put-if-absent (it fails if the name is
taken, which makes the check and the write one atomic operation) or `rename()` otherwise.
A killed process therefore leaves either the whole object or none of it, plus at most a
stray `.tmp-*` file that listings ignore and `cleanup_temporary` removes.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from agent.errors import ObjectExistsError, ObjectNotFoundError, StorageError
from agent.storage.base import ObjectInfo, Storage
from agent.storage.direct_io import write_parts

_Read = TypeVar("_Read", bytes, bytearray)

TEMP_PREFIX = ".tmp-"
STALE_TEMP_SECONDS = 24 * 3600


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


class LocalStorage(Storage):
    read_ahead = 0

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, name: str) -> Path:
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") or p.startswith(TEMP_PREFIX) for p in parts):
            raise StorageError(f"invalid object name {name!r}")
        return self.root.joinpath(*parts)

    def put(
        self, name: str, data: bytes, *, if_absent: bool = True, tags: dict[str, str] | None = None
    ) -> None:
        self._write(name, [data], if_absent=if_absent)

    def put_parts(self, name: str, parts: Sequence[bytes], *, tags: dict[str, str] | None = None) -> None:
        self._write(name, parts, if_absent=True)

    def _write(self, name: str, parts: Sequence[bytes], *, if_absent: bool) -> None:
        """Write to a temporary file, fsync, then link (if absent) or rename into place, and fsync the folder."""
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
            try:
                try:
                    write_parts(fd, parts)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                if if_absent:
                    try:
                        os.link(tmp, path)
                    except FileExistsError as exc:
                        raise ObjectExistsError(f"object {name} already exists") from exc
                else:
                    os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            self._sync_dir(path.parent)
        except ObjectExistsError:
            raise
        except OSError as exc:
            raise StorageError(f"cannot write {name} to {self.root}: {_describe(exc)}") from exc

    @staticmethod
    def _sync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"object {name} is missing from {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {name} from {self.root}: {_describe(exc)}") from exc

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self._read_range(name, lambda descriptor: os.pread(descriptor, length, offset))

    def get_range_writable(self, name: str, offset: int, length: int) -> bytearray:
        def read_into(descriptor: int) -> bytearray:
            buffer = bytearray(length)
            del buffer[os.preadv(descriptor, [buffer], offset) :]
            return buffer

        return self._read_range(name, read_into)

    def _read_range(self, name: str, read: Callable[[int], _Read]) -> _Read:
        # One system call per blob, no buffered reader.
        try:
            descriptor = os.open(self._path(name), os.O_RDONLY)
            try:
                return read(descriptor)
            finally:
                os.close(descriptor)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"object {name} is missing from {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {name} from {self.root}: {_describe(exc)}") from exc

    def stat(self, name: str) -> ObjectInfo:
        try:
            st = self._path(name).stat()
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"object {name} is missing from {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot stat {name} in {self.root}: {_describe(exc)}") from exc
        return ObjectInfo(name=name, size=st.st_size, mtime=st.st_mtime)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            raise StorageError(f"repository folder {self.root} does not exist")
        for directory, subdirs, files in os.walk(self.root):
            subdirs.sort()
            rel_dir = os.path.relpath(directory, self.root)
            base = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
            if prefix and not (base.startswith(prefix) or prefix.startswith(base)):
                subdirs.clear()
                continue
            for filename in sorted(files):
                name = base + filename
                if filename.startswith(TEMP_PREFIX) or not name.startswith(prefix):
                    continue
                try:
                    st = os.stat(os.path.join(directory, filename))
                except FileNotFoundError:
                    continue
                yield ObjectInfo(name=name, size=st.st_size, mtime=st.st_mtime)

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {name} from {self.root}: {_describe(exc)}") from exc

    def cleanup_temporary(self, older_than: float = STALE_TEMP_SECONDS) -> int:
        """Remove temporary files a killed writer left behind; returns how many."""
        removed = 0
        cutoff = time.time() - older_than
        for directory, _subdirs, files in os.walk(self.root):
            for filename in files:
                path = os.path.join(directory, filename)
                if filename.startswith(TEMP_PREFIX) and os.stat(path).st_mtime < cutoff:
                    os.unlink(path)
                    removed += 1
        return removed
