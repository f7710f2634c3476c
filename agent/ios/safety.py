"""Defences against hostile or damaged backup folders: which Manifest.db rows are unsafe to use, and how a
(domain, relativePath) maps to a path that can never escape an extraction directory."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from agent.errors import BackupFormatError
from agent.ios.manifest_db import ManifestRow
from agent.ios.records import FLAG_DIRECTORY, KNOWN_FLAGS, FileRecord, file_id_for

FILE_ID_PATTERN = re.compile(r"[0-9a-f]{40}")
_CONTROL_CHARACTERS = re.compile(r"[\x01-\x1f\x7f]")
_MAX_NAME_BYTES = 255  # NAME_MAX on Linux and macOS


@dataclass(frozen=True)
class SkippedEntry:
    """A Manifest.db row that was not used, and why (reported to the user, never silent)."""

    file_id: str
    domain: str
    relative_path: str
    reason: str


def file_id_problem(file_id: str) -> str | None:
    """Why a fileID cannot name a blob (it becomes a path `xx/<fileID>`), or None."""
    if FILE_ID_PATTERN.fullmatch(file_id) is None:
        return "fileID is not 40 lowercase hex digits"
    return None


def path_problem(domain: str, relative_path: str) -> str | None:
    """Why a (domain, relativePath) pair is unsafe, or None."""
    if not domain or "/" in domain or "\x00" in domain or domain in (".", ".."):
        return "domain is empty or contains '/', NUL or a dot name"
    if "\x00" in relative_path:
        return "relativePath contains a NUL byte"
    if relative_path.startswith("/"):
        return "relativePath is absolute"
    if ".." in relative_path.split("/"):
        return "relativePath has a '..' component"
    return None


def safe_relative_path(domain: str, relative_path: str) -> PurePosixPath | None:
    """Where `coffer extract` puts a row: `<domain>/<relativePath>`, with empty and '.' components dropped and
    control characters replaced by '_'. None when the name cannot be made safe (a '..' component, NUL, an
    absolute path, a domain with '/', a component longer than 255 bytes): such rows are skipped, never
    written outside the target directory."""
    if path_problem(domain, relative_path) is not None:
        return None
    parts = [domain, *(part for part in relative_path.split("/") if part not in ("", "."))]
    cleaned = [_CONTROL_CHARACTERS.sub("_", part) for part in parts]
    if any(len(part.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES for part in cleaned):
        return None
    return PurePosixPath(*cleaned)


@dataclass
class CheckedRows:
    """What `iter_checked_rows` reported about the rows it did not yield or yielded with doubts (never a crash,
    never silent)."""

    skipped: list[SkippedEntry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _text(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def _check_row(row: ManifestRow, seen: set[str], warnings: list[str]) -> tuple[FileRecord | None, str]:
    if not row.is_well_typed():
        return None, "the row has wrongly typed columns"
    file_id, domain, path, flags = str(row.file_id), str(row.domain), str(row.relative_path), int(row.flags)  # type: ignore[call-overload]
    reason = file_id_problem(file_id) or path_problem(domain, path)
    if reason:
        return None, reason
    if flags not in KNOWN_FLAGS:
        return None, f"unknown flags value {flags}"
    if flags != FLAG_DIRECTORY and all(part in ("", ".") for part in path.split("/")):
        # It would stand where the domain's own folder is (extract writes `<domain>/<relativePath>`).
        return None, "a file or symlink row whose relativePath names no file (empty or '.')"
    if file_id in seen:
        return None, "duplicate fileID"
    try:
        record = FileRecord.from_row(file_id, domain, path, flags, row.blob)  # type: ignore[arg-type]
    except BackupFormatError as error:
        return None, f"unreadable file record: {error}"
    if record.file_id != file_id_for(record.domain, record.relative_path):
        warnings.append(f"{record.file_id}: fileID is not sha1 of {record.domain}-{record.relative_path}; row kept")
    if record.is_file and record.size < 0:
        return None, f"negative size {record.size}"
    return record, ""


def iter_checked_rows(rows: Iterable[ManifestRow], checked: CheckedRows) -> Iterator[FileRecord]:
    """Validate the rows of a Manifest.db one at a time (typed columns, safe names, known flags, unique fileIDs,
    a readable MBFile record): yields the usable records and adds skips and warnings to `checked` as they are
    met. What a backup folder or a device sends is hostile input until this says otherwise; the caller keeps
    the records in its own form (agent.ios.records.PackedRecords)."""
    seen: set[str] = set()
    for row in rows:
        record, reason = _check_row(row, seen, checked.warnings)
        if record is None:
            checked.skipped.append(SkippedEntry(_text(row.file_id), _text(row.domain), _text(row.relative_path), reason))
        else:
            seen.add(record.file_id)
            yield record
