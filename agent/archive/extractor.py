"""`coffer extract`: the files themselves, as plain files under `DIR/<domain>/<relative path>`.

Names come from a device and are treated as hostile: every path goes through
`safe_relative_path`, is checked to resolve inside `DIR`, and rows that cannot be made safe
are skipped and reported. Symlink rows are reported, never created. Files appear atomically
with their modification times. A file whose data is damaged is left out and listed; every
other file is still written.
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from agent.archive.damage import damaged_entry
from agent.archive.exporter import create_target
from agent.archive.parallel import SMALL_FILE, bounded_map
from agent.archive.progress import Progress
from agent.archive.view import open_view
from agent.errors import RepositoryDamagedError
from agent.ios.records import FileRecord
from agent.ios.safety import safe_relative_path
from agent.pipeline.reader import BlobReader
from agent.repository.repository import Repository, SnapshotEntry
from agent.repository.snapshot import FileRow


@dataclass
class ExtractResult:
    snapshot_id: str
    files: int = 0
    bytes: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    damaged: list[dict[str, str]] = field(default_factory=list)  # files whose data is damaged: not written


def _matches(glob: str | None, domain: str, relative_path: str) -> bool:
    if glob is None:
        return True
    return fnmatch.fnmatchcase(f"{domain}/{relative_path}", glob) or fnmatch.fnmatchcase(relative_path, glob)


def _inside(root: Path, path: Path) -> bool:
    return os.path.commonpath([root, path.resolve()]) == str(root)


def _small_file(item: tuple[str, FileRow, FileRecord, Path]) -> bool:
    return item[1].size < SMALL_FILE


def _without_collisions(
    chosen: list[tuple[str, FileRow, FileRecord, Path]], result: ExtractResult
) -> list[tuple[str, FileRow, FileRecord, Path]]:
    """Drop (and report) files whose cleaned name another file already takes, or that other files need as their
    folder (`HomeDomain/.` next to `HomeDomain/Library/…`): a device's names are hostile, not a plan to follow."""
    folders = {parent for *_, destination in chosen for parent in destination.parents}
    taken: set[Path] = set()
    kept = []
    for item in chosen:
        record, destination = item[2], item[3]
        reason = None
        if destination in folders:
            reason = "its name is also the folder of other files"
        elif destination in taken:
            reason = "another file has the same name once empty and '.' components are dropped"
        if reason is None:
            taken.add(destination)
            kept.append(item)
        else:
            result.skipped.append({"domain": record.domain, "path": record.relative_path, "reason": reason})
    return kept


def extract_snapshot(
    repository: Repository,
    reference: str | SnapshotEntry,
    target: Path,
    *,
    categories: list[str] | None,
    path_glob: str | None,
    progress: bool,
    workers: int = 4,
) -> ExtractResult:
    view = open_view(repository, reference, categories)
    create_target(target)
    root = target.resolve()
    result = ExtractResult(view.entry.snapshot_id)
    chosen: list[tuple[str, FileRow, FileRecord, Path]] = []
    for category, row, record in view.records():
        if not _matches(path_glob, record.domain, record.relative_path) or record.is_directory:
            continue
        relative = safe_relative_path(record.domain, record.relative_path)
        reason = None
        if relative is None:
            reason = "unsafe name"
        elif record.is_symlink:
            reason = f"symlink to {record.target!r} (not created)"
        elif not _inside(root, root / relative):
            reason = "would resolve outside the target folder"
        if reason is not None or relative is None:
            result.skipped.append({"domain": record.domain, "path": record.relative_path, "reason": reason or ""})
            continue
        chosen.append((category, row, record, root / relative))
    chosen = _without_collisions(chosen, result)

    index = repository.load_index()
    with BlobReader(repository, index) as reader, Progress("extract", sum(r.size for _, r, _, _ in chosen), enabled=progress) as bar:

        def write(item: tuple[str, FileRow, FileRecord, Path]) -> dict[str, str] | None:
            category, row, record, destination = item
            destination.parent.mkdir(parents=True, exist_ok=True)
            if not _inside(root, destination.parent):
                raise OSError(f"{destination.parent} resolves outside {root}")
            fd, temporary = tempfile.mkstemp(prefix=".coffer-", dir=destination.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    for piece in reader.read_stream(category, row.chunks):
                        handle.write(piece)
                        bar.advance(len(piece))
                os.utime(temporary, (record.mtime, record.mtime))
                os.replace(temporary, destination)
            except RepositoryDamagedError as exc:  # this file only: every other one is still written
                return damaged_entry(category, record, exc)
            finally:
                if os.path.exists(temporary):
                    os.unlink(temporary)
            return None

        result.damaged = [
            d for d in bounded_map(write, chosen, workers=workers, in_flight=workers * 2, alone=_small_file) if d
        ]
    lost = {(d["domain"], d["path"]) for d in result.damaged}
    written = [row for _, row, record, _ in chosen if (record.domain, record.relative_path) not in lost]
    result.files = len(written)
    result.bytes = sum(row.size for row in written)
    return result
