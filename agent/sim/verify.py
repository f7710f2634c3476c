"""Compare a backup folder with a simulated device: both reduced to the same digest map.

`backup_digest(folder)` has the keys and values of `DeviceFilesystem.snapshot_digest()`
(`"<domain>/<relative_path>"` -> SHA-256 hex, `"dir"` or `"symlink:<target>"`), so "the backup
holds exactly what the device holds" is one dictionary comparison.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from agent.errors import BackupFormatError
from agent.ios.folder import BackupFolder


def backup_digest(folder: Path, password: str | None = None) -> dict[str, str]:
    """Every row of the backup at `folder` (`<root>/<UDID>`), its files decrypted with `password`
    when the backup is encrypted; unusable rows raise BackupFormatError."""
    backup = BackupFolder.open(folder, password)
    if backup.skipped:
        first = backup.skipped[0]
        raise BackupFormatError(
            f"{len(backup.skipped)} unusable rows, e.g. {first.domain}/{first.relative_path}: {first.reason}"
        )
    digests: dict[str, str] = {}
    for record in backup.records:
        key = f"{record.domain}/{record.relative_path}"
        if record.is_directory:
            digests[key] = "dir"
        elif record.is_symlink:
            digests[key] = f"symlink:{record.target}"
        else:
            hasher = hashlib.sha256()
            for piece in backup.open_plaintext(record):
                hasher.update(piece)
            digests[key] = hasher.hexdigest()
    return digests
