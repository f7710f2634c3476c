"""The skeleton of a real phone: domains, directories, files and symlinks of an iOS 14 backup.

`data/ios14_layout.tsv` lists every entry (domain, path, kind, size) of a real iPhone's
backup. A profile takes a seeded share of its files and directories (all of them for
medium and large), with their real sizes up to the profile's cap, and all its symlinks.
Paths other generators own (the camera roll) are left to them.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import cache
from importlib import resources

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.entries import FileKind
from agent.sim.content.generators.filler import put_filler

_FLAGS = {"1": FileKind.FILE, "2": FileKind.DIRECTORY, "4": FileKind.SYMLINK}

# Entries another generator writes and keeps consistent with its database (the camera roll's
# 1xxAPPLE folders and their thumbnails).
_OWNED_PREFIXES = (
    ("CameraRollDomain", "Media/DCIM/1"),
    ("CameraRollDomain", "Media/PhotoData/Thumbnails/V2/DCIM/1"),
    ("CameraRollDomain", "Media/PhotoData/Metadata/DCIM/1"),
)

# The sample records no symlink targets; these are where such links point on iOS.
_SYMLINK_TARGETS = (
    ("*/IndexedDB/v0", "v1"),
    (
        "Library/Preferences/com.apple.carrier*",
        "/var/mobile/Library/Carrier Bundles/iPhone/Sunrise_ch.bundle/carrier.plist",
    ),
    (
        "Library/Preferences/com.apple.operator*",
        "/var/mobile/Library/Carrier Bundles/iPhone/Sunrise_ch.bundle/operator.plist",
    ),
    ("timezone/localtime", "/usr/share/zoneinfo/Europe/Zurich"),
)


@dataclass(frozen=True)
class LayoutRow:
    domain: str
    relative_path: str
    kind: FileKind
    size: int


@cache
def real_layout() -> tuple[LayoutRow, ...]:
    text = resources.files("agent.sim.content").joinpath("data/ios14_layout.tsv").read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            domain, relative_path, flags, size = line.split("\t")
            rows.append(LayoutRow(domain, relative_path, _FLAGS[flags], int(size)))
    return tuple(rows)


def symlink_target(relative_path: str) -> str:
    for pattern, target in _SYMLINK_TARGETS:
        if fnmatch.fnmatchcase(relative_path, pattern):
            return target
    raise ValueError(f"no symlink target known for {relative_path}")


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("layout")
    share, cap = b.profile.layout_share, b.profile.layout_size_cap
    for row in real_layout():
        chosen = rng.random() < share or row.kind is FileKind.SYMLINK
        if not chosen or b.exists(row.domain, row.relative_path) or _owned(row):
            continue
        if row.kind is FileKind.DIRECTORY:
            b.directory(row.domain, row.relative_path)
        elif row.kind is FileKind.SYMLINK:
            b.symlink(row.domain, row.relative_path, symlink_target(row.relative_path))
        else:
            put_filler(b, rng, row.domain, row.relative_path, row.size if cap is None else min(row.size, cap))


def _owned(row: LayoutRow) -> bool:
    return any(
        row.domain == domain and row.relative_path.startswith(prefix) for domain, prefix in _OWNED_PREFIXES
    )
