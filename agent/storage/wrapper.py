"""A storage backend that forwards every call to another one: the base of the layers around a backend.

A layer (the metadata cache, upload jitter) overrides only what it changes; everything else —
reads, listings, Object Lock — is the inner backend's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from agent.storage.base import ObjectInfo, Storage


class StorageWrapper(Storage):
    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    def put(self, name: str, data: bytes, *, if_absent: bool = True, tags: dict[str, str] | None = None) -> None:
        self.inner.put(name, data, if_absent=if_absent, tags=tags)

    def get(self, name: str) -> bytes:
        return self.inner.get(name)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(name, offset, length)

    def get_range_writable(self, name: str, offset: int, length: int) -> bytearray:
        return self.inner.get_range_writable(name, offset, length)

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def purge(self, name: str) -> None:
        self.inner.purge(name)

    def close(self) -> None:
        self.inner.close()

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def supports_object_lock(self) -> bool:  # type: ignore[override]
        return self.inner.supports_object_lock

    @property
    def read_ahead(self) -> int:  # type: ignore[override]
        return self.inner.read_ahead

    @property
    def object_lock_days(self) -> int | None:
        return self.inner.object_lock_days

    @object_lock_days.setter
    def object_lock_days(self, days: int | None) -> None:
        self.inner.object_lock_days = days

    def prepare(self, *, object_lock_days: int = 0) -> None:
        self.inner.prepare(object_lock_days=object_lock_days)

    def retained_until(self, name: str) -> datetime | None:
        return self.inner.retained_until(name)

    def extend_retention(self, name: str, until: datetime) -> None:
        self.inner.extend_retention(name, until)

    def hidden(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.hidden(prefix)
