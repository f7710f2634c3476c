"""What this host has seen of a repository — its snapshots and config generation — to notice deletion and rollback.

A storage provider can delete the newest snapshot of a device, or roll the whole repository
back to an older state; nothing inside the repository can prove such an absence. Each host
therefore remembers the snapshot IDs it wrote or listed (`<state dir>/<repository>/seen-snapshots`),
and `check` reports any that vanished without a tombstone from `forget`. Likewise it remembers the
newest config generation it saw (`config-generation`): a provider serving an older, validly signed
config (one that still lists a revoked station, say) is reported.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from agent.paths import state_root


def _write_atomically(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except OSError:
        pass  # a read-only home only loses this host's rollback detection, never a backup


class ConfigLedger:
    def __init__(self, repository_id: str, root: Path | None = None) -> None:
        self.path = (root or state_root()) / repository_id / "config-generation"

    def seen(self) -> int:
        try:
            return int(self.path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def check(self, generation: int) -> int | None:
        """Record `generation`; return the newer one seen before if storage went back in time."""
        seen = self.seen()
        if generation < seen:
            return seen
        if generation > seen:
            _write_atomically(self.path, f"{generation}\n")
        return None


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
        _write_atomically(self.path, "".join(f"{sid}\n" for sid in sorted(known | new)))
