"""What this host has seen of a repository's snapshots, to notice deletion and rollback.

A storage provider can delete the newest snapshot of a device, or roll the whole repository
back to an older state; nothing inside the repository can prove such an absence. Each host
therefore remembers the snapshot IDs it wrote or listed (`<state dir>/<repository>/seen-snapshots`),
and `check` reports any that vanished without a tombstone from `forget`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from agent.paths import state_root


class SnapshotLedger:
    def __init__(self, repository_id: str, root: Path | None = None) -> None:
        self.path = (root or state_root()) / repository_id / "seen-snapshots"

    def seen(self) -> set[str]:
        try:
            return {line.strip() for line in self.path.read_text().splitlines() if line.strip()}
        except FileNotFoundError:
            return set()

    def record(self, snapshot_ids: Iterable[str]) -> None:
        known = self.seen()
        new = set(snapshot_ids) - known
        if not new:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, temporary = tempfile.mkstemp(prefix=".seen-", dir=self.path.parent)
            with os.fdopen(fd, "w") as handle:
                handle.write("".join(f"{sid}\n" for sid in sorted(known | new)))
            os.replace(temporary, self.path)
        except OSError:
            pass  # a read-only home only loses this host's rollback detection, never a backup
