"""Optional timing cover: each pack and index upload waits a random moment first (`--upload-jitter`).

Without it, the provider sees a backup as a burst of pack and index writes ending with a
snapshot, and can tell which packs a snapshot added. Random waits (up to the given seconds,
from the system's CSPRNG, per object) blur that burst's shape at the cost of a slower backup;
they cannot hide that a backup ran. Off by default (docs/threat-model.md).
"""

from __future__ import annotations

import secrets
import time

from agent.storage.base import Storage
from agent.storage.wrapper import StorageWrapper

JITTERED_PREFIXES = ("data/", "index/")
_RANDOM = secrets.SystemRandom()


class JitteredStorage(StorageWrapper):
    def __init__(self, inner: Storage, max_seconds: float) -> None:
        super().__init__(inner)
        self.max_seconds = max_seconds

    def put(self, name: str, data: bytes, *, if_absent: bool = True, tags: dict[str, str] | None = None) -> None:
        if name.startswith(JITTERED_PREFIXES):
            time.sleep(_RANDOM.uniform(0, self.max_seconds))
        self.inner.put(name, data, if_absent=if_absent, tags=tags)
