"""The catalogue of one device: its entries, clock and counters, and their JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from agent.sim.content.entries import BlobContent, ContentSource, FileKind, SimFile, StreamContent

FORMAT_VERSION = 1


@dataclass
class Catalogue:
    """Everything persisted about a device except the blob bytes.

    A committed catalogue is never changed again: evolve and restore work on a `copy()`.
    """

    profile: str
    seed: int
    clock: int  # the device's current time, unix seconds
    next_inode: int
    evolutions: list[int] = field(default_factory=list)  # the seeds of every evolve so far
    entries: dict[tuple[str, str], SimFile] = field(default_factory=dict)

    @cached_property
    def _sorted(self) -> list[SimFile]:
        return [self.entries[key] for key in sorted(self.entries)]

    def sorted_files(self) -> list[SimFile]:
        return list(self._sorted)

    def referenced_blobs(self) -> set[str]:
        return {f.source.sha256 for f in self.entries.values() if isinstance(f.source, BlobContent)}

    def copy(self) -> Catalogue:
        return Catalogue(
            profile=self.profile,
            seed=self.seed,
            clock=self.clock,
            next_inode=self.next_inode,
            evolutions=list(self.evolutions),
            entries=dict(self.entries),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "profile": self.profile,
            "seed": self.seed,
            "clock": self.clock,
            "next_inode": self.next_inode,
            "evolutions": self.evolutions,
            "entries": [_entry_to_json(f) for f in self._sorted],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Catalogue:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"catalogue format {data.get('format')!r}, this version reads {FORMAT_VERSION}")
        files = [_entry_from_json(row) for row in data["entries"]]
        return cls(
            profile=data["profile"],
            seed=data["seed"],
            clock=data["clock"],
            next_inode=data["next_inode"],
            evolutions=list(data["evolutions"]),
            entries={(f.domain, f.relative_path): f for f in files},
        )


def _entry_to_json(f: SimFile) -> dict[str, Any]:
    row: dict[str, Any] = {
        "domain": f.domain,
        "path": f.relative_path,
        "kind": f.kind.value,
        "size": f.size,
        "mtime": f.mtime,
        "birth": f.birth,
        "mode": f.mode,
        "inode": f.inode,
        "class": f.protection_class,
        "encrypted_only": f.encrypted_only,
    }
    if f.target is not None:
        row["target"] = f.target
    if isinstance(f.source, BlobContent):
        row["blob"] = f.source.sha256
    elif isinstance(f.source, StreamContent):
        row["stream_key"] = f.source.key.hex()
        row["stream_header"] = f.source.header.hex()
    return row


def _entry_from_json(row: dict[str, Any]) -> SimFile:
    source: ContentSource | None = None
    if "blob" in row:
        source = BlobContent(row["blob"])
    elif "stream_key" in row:
        source = StreamContent(
            key=bytes.fromhex(row["stream_key"]), header=bytes.fromhex(row["stream_header"])
        )
    return SimFile(
        domain=row["domain"],
        relative_path=row["path"],
        kind=FileKind(row["kind"]),
        size=row["size"],
        mtime=row["mtime"],
        birth=row["birth"],
        mode=row["mode"],
        inode=row["inode"],
        protection_class=row["class"],
        encrypted_only=row["encrypted_only"],
        target=row.get("target"),
        source=source,
    )
