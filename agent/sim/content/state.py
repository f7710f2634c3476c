"""The device state folder: `catalogue.json` plus content-addressed blobs.

```
<state_dir>/catalogue.json      every entry of the device (see catalogue.py)
<state_dir>/blobs/<xx>/<sha256> the materialised files (databases, plists, text)
```
Every write is a temporary file renamed into place, so a reader or a crash sees the
old state or the new one. Blobs are written before the catalogue that names them and
collected only after a catalogue that no longer names them is in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agent.errors import CofferError, UsageError
from agent.sim.content.catalogue import Catalogue

CATALOGUE_NAME = "catalogue.json"


class StateStore:
    """Reads and writes one device's state folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "blobs"

    @classmethod
    def create(cls, root: Path) -> StateStore:
        if (root / CATALOGUE_NAME).exists():
            raise UsageError(f"{root} already holds a simulated device; load it or pick an empty folder")
        root.mkdir(parents=True, exist_ok=True)
        (root / "blobs").mkdir(exist_ok=True)
        return cls(root)

    @classmethod
    def open(cls, root: Path) -> StateStore:
        if not (root / CATALOGUE_NAME).is_file():
            raise UsageError(f"{root} holds no simulated device (no {CATALOGUE_NAME}); create one first")
        return cls(root)

    def load(self) -> Catalogue:
        path = self.root / CATALOGUE_NAME
        try:
            return Catalogue.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CofferError(
                f"the simulated device state {path} is unreadable ({exc}); create the device again"
            ) from exc

    def save(self, catalogue: Catalogue) -> None:
        data = json.dumps(catalogue.to_json(), separators=(",", ":")).encode()
        self._write_atomically(self.root / CATALOGUE_NAME, data, durable=True)

    def put_blob(self, data: bytes) -> str:
        """Store `data`; return its SHA-256 (its name)."""
        digest = hashlib.sha256(data).hexdigest()
        if not self.blob_path(digest).exists():
            self._write_atomically(self.blob_path(digest), data, durable=False)
        return digest

    def put_blob_pieces(self, pieces: Iterator[bytes]) -> tuple[str, int]:
        """Store the concatenation of `pieces` without holding it in memory; return (SHA-256, size)."""
        hasher = hashlib.sha256()
        size = 0
        fd, temp_name = tempfile.mkstemp(dir=self._blobs, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                for piece in pieces:
                    hasher.update(piece)
                    size += len(piece)
                    out.write(piece)
            digest = hasher.hexdigest()
            final = self.blob_path(digest)
            final.parent.mkdir(exist_ok=True)
            os.replace(temp_name, final)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return digest, size

    def blob_path(self, digest: str) -> Path:
        return self._blobs / digest[:2] / digest

    def read_blob(self, digest: str, piece_size: int) -> Iterator[bytes]:
        with self.blob_path(digest).open("rb") as blob:
            while piece := blob.read(piece_size):
                yield piece

    def blob_bytes(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def collect_garbage(self, referenced: set[str]) -> None:
        """Delete every blob (and leftover temporary file) the catalogue no longer names."""
        for path in self._blobs.glob("*/*"):
            if path.name not in referenced:
                path.unlink(missing_ok=True)
        for leftover in self._blobs.glob(".incoming-*"):
            leftover.unlink(missing_ok=True)

    def _write_atomically(self, final: Path, data: bytes, *, durable: bool) -> None:
        final.parent.mkdir(exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                if durable:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(temp_name, final)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
