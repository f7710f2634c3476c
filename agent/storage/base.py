"""The small interface every storage backend implements.

Objects are named by slash-separated strings such as `config`, `keys/<id>`,
`data/<tag>/<pack-id>`, `index/<id>`, `snapshots/<id>`, `locks/<id>`. Names and
contents are opaque to a backend. Every write of a name that must never be
overwritten goes through `put(..., if_absent=True)`, which raises
`ObjectExistsError` when the name is taken, so concurrent writers cannot clobber
each other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object as a listing reports it."""

    name: str
    size: int
    mtime: float  # seconds since the epoch, as the backend reports it


class Storage(ABC):
    """A flat namespace of immutable objects."""

    @abstractmethod
    def put(self, name: str, data: bytes, *, if_absent: bool = True, tags: dict[str, str] | None = None) -> None:
        """Store `data` under `name` atomically: readers see all of it or nothing.

        With `if_absent` (the default), raise `ObjectExistsError` if `name` exists.
        `tags` are backend metadata (S3 object tags); a backend without tags ignores them.
        """

    @abstractmethod
    def get(self, name: str) -> bytes:
        """Return the whole object; `ObjectNotFoundError` if absent."""

    @abstractmethod
    def get_range(self, name: str, offset: int, length: int) -> bytes:
        """Return `length` bytes from `offset`; fewer only at the end of the object."""

    @abstractmethod
    def stat(self, name: str) -> ObjectInfo:
        """Return the object's info; `ObjectNotFoundError` if absent."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose name starts with `prefix`, in no particular order."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove an object; absent objects are not an error."""

    def exists(self, name: str) -> bool:
        from agent.errors import ObjectNotFoundError

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
