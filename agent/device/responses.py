"""What a device's failed mobilebackup2 `Response` means to a user: the cause and the fix.

A device ends a Backup, Restore or ChangePassword with `Response {ErrorCode, ErrorDescription}`;
pymobiledevice3 turns a non-zero code into an exception whose text is the raw dictionary. The codes
the field reports (MBErrorDomain, collected from libimobiledevice and pymobiledevice3 issue threads;
docs/troubleshooting.md lists each message) get a sentence a user can act on here. Any other code is
reported with the device's own words.
"""

from __future__ import annotations

from typing import Any

from agent.errors import CofferError, DeviceError, DeviceLockedError, WrongSecretError

SNAPSHOT_FAILED = 3  # "Failed to create snapshot: File exists (17) at path /private/var"
HOST_DISK_FULL = 105
DEVICE_DISK_FULL = 106
BACKUP_PROPERTIES = 205
INVALID_PASSWORD = 207
DEVICE_LOCKED = 208


class HostSpaceError(CofferError):
    """The device refused the backup because this computer reported too little free space (MBErrorDomain 105)."""


def response_error(udid: str, response: dict[str, Any]) -> CofferError:
    """The CofferError of a Response whose ErrorCode is not 0."""
    code = response.get("ErrorCode")
    said = str(response.get("ErrorDescription") or "").strip()
    quoted = f" ({said})" if said else ""
    if code == SNAPSHOT_FAILED and ("snapshot" in said.lower() or not said):
        return DeviceError(
            f"device {udid} could not start the backup: a snapshot left by an earlier, interrupted backup is still "
            f"on it (MBErrorDomain 3{quoted}): restart the device, then run the backup again"
        )
    if code == HOST_DISK_FULL:
        return HostSpaceError(
            f"device {udid} refused the backup: this computer reported too little free space for it (MBErrorDomain "
            f"105{quoted}): free space where the repository and COFFER_STAGING_DIR live, then run again"
        )
    if code == DEVICE_DISK_FULL:
        return DeviceError(
            f"device {udid} has too little free space to make its backup snapshot (MBErrorDomain 106{quoted}): "
            "free a few GB on the device (Settings > General > iPhone Storage), then run again"
        )
    if code == BACKUP_PROPERTIES:
        return DeviceError(
            f"device {udid} could not read the backup properties this computer holds for it (MBErrorDomain "
            f"205{quoted}): run `coffer backup --full` so the device sends everything afresh"
        )
    if code == INVALID_PASSWORD:
        return WrongSecretError(
            f"device {udid} rejected the backup password (MBErrorDomain 207{quoted}): give the one set on the "
            "device with --backup-password-file (or reset it on the device: Settings > General > Transfer or "
            "Reset > Reset > Reset All Settings)"
        )
    if code == DEVICE_LOCKED:
        return DeviceLockedError(
            f"device {udid} was locked when the backup needed it (MBErrorDomain 208{quoted}): unlock it, keep it "
            "unlocked until the transfer starts, and run again"
        )
    return DeviceError(f"device {udid} ended the operation with error {code}{quoted}: run again; if it persists, "
                       "restart the device")
