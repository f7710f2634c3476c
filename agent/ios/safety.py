"""Defences against hostile or damaged backup folders: which Manifest.db rows are unsafe to use, and how a
(domain, relativePath) maps to a path that can never escape an extraction directory."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

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
