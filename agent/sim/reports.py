"""What a simulated device did during a backup or a restore, kept so tests and demos can check the protocol.

Keys are `"<domain>/<relative_path>"`, as in `DeviceFilesystem.snapshot_digest()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BackupReport:
    """One backup as the device ran it."""

    mode: str = "full"  # "full" or "incremental"
    encrypted: bool = False
    uploaded: list[str] = field(default_factory=list)  # files whose content was sent
    uploaded_bytes: int = 0  # bytes on the wire (ciphertext for an encrypted backup)
    upload_seconds: float = 0.0  # time spent streaming file contents to the host
    unchanged: int = 0  # files the host already held
    removed: list[str] = field(default_factory=list)  # files dropped from the host's backup
    error_code: int | None = None  # None while running, 0 on success, the MBError code otherwise
    error_description: str = ""


@dataclass
class RestoreReport:
    """One restore as the device applied it."""

    source_udid: str = ""
    encrypted: bool = False
    restored_files: int = 0
    restored_bytes: int = 0
    skipped_system: int = 0  # entries left out because RestoreSystemFiles was false
    error_code: int | None = None
    error_description: str = ""
