"""The small interface every storage backend implements.

Objects are named by slash-separated strings such as `config`, `keys/<id>`,
`data/<tag>/<pack-id>`, `index/<id>`, `snapshots/<id>`, `locks/<id>`. Names and
contents are opaque to a backend. Every write of a name that must never be
overwritten goes through `put(..., if_absent=True)`, which raises
`ObjectExistsError` when the name is taken, so concurrent writers cannot clobber
each other.

Object Lock (S3) adds a few capabilities with safe defaults here, for backends
that keep a single version of each object and lock nothing: `object_lock_days`,
`prepare`, `retained_until`, `extend_retention`, `purge` and `hidden`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from agent.errors import ObjectNotFoundError, StorageError, UsageError


class ObjectLockedError(StorageError):
    """An Object Lock retention forbids removing an object version."""


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object as a listing reports it."""

    name: str
    size: int
    mtime: float  # seconds since the epoch, as the backend reports it


class Storage(ABC):
    """A flat namespace of immutable objects."""

    @abstractmethod
    def put(
        self, name: str, data: bytes, *, if_absent: bool = True, tags: dict[str, str] | None = None
    ) -> None:
        """Store `data` under `name` atomically: readers see all of it or nothing.

        With `if_absent` (the default), raise `ObjectExistsError` if `name` exists.
        `tags` are backend metadata (S3 object tags); a backend without tags ignores them.
        """

    def put_parts(self, name: str, parts: Sequence[bytes], *, tags: dict[str, str] | None = None) -> None:
        """`put(name, b"".join(parts))` if absent. A backend that can write the parts one after the other
        overrides it (a local folder does: a pack is then never held twice in memory)."""
        self.put(name, b"".join(parts), tags=tags)

    @abstractmethod
    def get(self, name: str) -> bytes:
        """Return the whole object; `ObjectNotFoundError` if absent."""

    @abstractmethod
    def get_range(self, name: str, offset: int, length: int) -> bytes:
        """Return `length` bytes from `offset`; fewer only at the end of the object."""

    def get_range_writable(self, name: str, offset: int, length: int) -> bytearray:
        """As `get_range`, into a buffer the caller owns and may overwrite: a blob is decrypted in place.
        Backends that can read straight into it override this; layers that watch or change reads override
        both."""
        return bytearray(self.get_range(name, offset, length))

    @abstractmethod
    def stat(self, name: str) -> ObjectInfo:
        """Return the object's info; `ObjectNotFoundError` if absent."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose name starts with `prefix`, in no particular order."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove an object; absent objects are not an error."""

    # How many blob reads a restore keeps in flight ahead of the one it needs: enough to hide a network
    # round trip. A local folder answers in microseconds and sets 0 (reads then run in the caller's thread:
    # a hand-off to a pool thread per blob only cost thread switches).
    read_ahead = 6

    # -- immutability (S3 Object Lock); here nothing is versioned and nothing is locked ---------

    supports_object_lock = False

    @property
    def object_lock_days(self) -> int | None:
        """Days of retention every protected put carries; None when puts are not locked."""
        return None

    @object_lock_days.setter
    def object_lock_days(self, days: int | None) -> None:
        if days:
            raise UsageError(
                f"{self.location} cannot lock objects: Object Lock needs an s3:// repository on a bucket "
                "created with Object Lock"
            )

    def prepare(self, *, object_lock_days: int = 0) -> None:
        """Get the location ready for a new repository; lock every later protected put if asked."""
        self.object_lock_days = object_lock_days

    def retained_until(self, name: str) -> datetime | None:
        """The latest retention date of any stored version of `name`; None when nothing locks it."""
        return None

    def extend_retention(self, name: str, until: datetime) -> None:
        """Keep `name` locked until at least `until`."""
        raise UsageError(f"{self.location} cannot lock objects, so it cannot extend a retention")

    def purge(self, name: str) -> None:
        """Remove `name` and every older version of it, freeing its space."""
        self.delete(name)

    def hidden(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Deleted names under `prefix` whose older versions are still stored (newest version's size)."""
        return iter(())

    def exists(self, name: str) -> bool:
        try:
            self.stat(name)
        except ObjectNotFoundError:
            return False
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default has nothing to release."""

    @property
    def location(self) -> str:
        """A human-readable location for messages (never contains credentials)."""
        return type(self).__name__
