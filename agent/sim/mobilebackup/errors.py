"""MBErrorDomain codes the device puts in a failed `Response` (ios-protocol.md section 4.2)."""

from __future__ import annotations

GENERIC = 1
UPLOAD_FAILED = 104  # "multiple upload errors"
HOST_DISK_FULL = 105  # pymobiledevice3 raises NotEnoughDiskSpaceError for it
BACKUP_MISSING = 202
BACKUP_CORRUPT = 203
BACKUP_INCOMPLETE = 204
MISSING_BLOBS = 205  # "Manifest references files not in backup"
INVALID_PASSWORD = 207


class MobileBackupFailure(Exception):
    """An operation ends with a `Response` carrying this error; the DeviceLink stays usable."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
