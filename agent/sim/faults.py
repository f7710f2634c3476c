"""Field failures a simulated device can be told to show (control command `fault`, `coffer sim --fault`).

Each mode reproduces what users of pymobiledevice3 and libimobiledevice report from real iPhones, with
the device's own wording, so a host sees on the wire what it would see in the field:

| mode | value | what the device does |
| --- | --- | --- |
| `upload_error` | a device-path suffix (`backup_manifest.db`) | ends that file with an error block "Input/output error (5)" and finishes the backup with ErrorCode 0 (iOS 17+) |
| `stale_snapshot` | true | every Backup ends with ErrorCode 3 "Failed to create snapshot: File exists (17) at path /private/var" until the device restarts |
| `backup_error` | an MBErrorDomain code (105, 106, 205, 207, 208) | Backup and Restore end with that code and the device's text for it |
| `service_refusal` | a lockdown error (`PasswordProtected`, `InvalidHostID`) | StartService com.apple.mobilebackup2 is refused with it |
| `passcode_prompt` | seconds, or -1 for never | after Backup or ChangePassword (iOS >= 16.1) the device posts `com.apple.LocalAuthentication.ui.presented`, waits that long for the passcode, posts `...dismissed` and goes on |
| `pause` | seconds | the device goes silent that long after its first batch of uploads (a slow device, or one that locks mid-backup) |
| `lock_during_pause` | true | the screen locks while the device pauses (a running backup goes on, as on a real device) |
| `usb_speed` | bits per second | the `ConnectionSpeed` usbmuxd reports (480000000 USB 2, 5000000000 USB 3) |
| `password_protected` | `locked` or `passcode` | what lockdown's `PasswordProtected` value means on this device: "locked now" or "has a passcode" |
| `passcode_set` | true / false | whether the device has a passcode at all (lockdown `PasswordConfigured`) |
| `hostile_rows` | true | the Manifest.db it sends also lists rows a compromised device could forge (`forged_rows`): a path out of its domain, a fileID that is a path, a domain out of the backup, unknown flags, an unreadable MBFile record; no content is sent for them |

Faults are runtime state: a restarted simulator serves devices without them. `clear` lifts them all.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from agent.ios.mbfile import MODE_FILE, encode_mbfile
from agent.ios.records import FLAG_FILE, FileRecord, file_id_for

USB2_SPEED = 480_000_000
USB3_SPEED = 5_000_000_000
STALE_SNAPSHOT_CODE = 3
STALE_SNAPSHOT_TEXT = "Failed to create snapshot: File exists (17) at path /private/var"
UPLOAD_ERROR_TEXT = "Input/output error (5)"
# What BackupAgent2 puts in ErrorDescription for the codes the field reports (MBErrorDomain).
BACKUP_ERROR_TEXTS = {
    105: "Insufficient free disk space on drive to back up",
    106: "Not enough free space on device to back up",
    205: "Error reading backup properties",
    207: "Invalid password",
    208: "Device locked (MBErrorDomain/208)",
}
SERVICE_REFUSALS = frozenset({"PasswordProtected", "InvalidHostID", "PairingDialogResponsePending"})
MEANINGS = frozenset({"locked", "passcode"})


@dataclass
class DeviceFaults:
    """The fault modes switched on for one device (all off by default)."""

    upload_error: str | None = None
    stale_snapshot: bool = False
    backup_error: int | None = None
    service_refusal: str | None = None
    passcode_prompt: float | None = None
    pause: float = 0.0
    lock_during_pause: bool = False
    usb_speed: int = USB2_SPEED
    password_protected: str = "locked"
    passcode_set: bool = True
    hostile_rows: bool = False

    def update(self, values: dict[str, Any]) -> None:
        """Switch modes on or off from a control request; ValueError names a bad mode or value."""
        known = {f.name: f for f in dataclasses.fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; choose from {', '.join(sorted(known))}")
            setattr(self, name, _checked(name, value))

    def fails_upload(self, device_name: str) -> bool:
        return bool(self.upload_error) and device_name.endswith(str(self.upload_error))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _checked(name: str, value: Any) -> Any:
    if name in ("stale_snapshot", "lock_during_pause", "passcode_set", "hostile_rows"):
        if not isinstance(value, bool):
            raise ValueError(f"fault {name} is true or false")
        return value
    if name == "upload_error":
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError("fault upload_error is a device-path suffix or null")
        return value
    if name == "backup_error":
        if value is not None and value not in BACKUP_ERROR_TEXTS:
            raise ValueError(f"fault backup_error is one of {sorted(BACKUP_ERROR_TEXTS)} or null")
        return value
    if name == "service_refusal":
        if value is not None and value not in SERVICE_REFUSALS:
            raise ValueError(f"fault service_refusal is one of {', '.join(sorted(SERVICE_REFUSALS))} or null")
        return value
    if name == "password_protected":
        if value not in MEANINGS:
            raise ValueError("fault password_protected is 'locked' or 'passcode'")
        return value
    if name == "usb_speed":
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError("fault usb_speed is a positive number of bits per second")
        return value
    # passcode_prompt (None, -1 or seconds) and pause (seconds)
    if value is None and name == "passcode_prompt":
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or (value < 0 and value != -1):
        raise ValueError(f"fault {name} is a number of seconds" + (" (-1: never)" if name == "passcode_prompt" else ""))
    if name == "pause" and value < 0:
        raise ValueError("fault pause is a number of seconds")
    return float(value)


def parse_cli_fault(text: str) -> dict[str, Any]:
    """`NAME=VALUE` of `coffer sim --fault` as a control-request field (VALUE parsed as JSON, else a string)."""
    name, sep, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep:
        return {name: True}
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return {name: value}


FORGED_DOMAIN = "HomeDomain"


def forged_rows() -> list[FileRecord]:
    """The rows `hostile_rows` adds after the device's own: each names itself in its relativePath
    (`forged-...`), and none has content on the wire. (A second row with a real file's fileID cannot be
    sent: fileID is Manifest.db's primary key.)"""

    def blob(path: str) -> bytes:
        return encode_mbfile(relative_path=path, mode=MODE_FILE, size=5)

    return [
        FileRecord.create(FORGED_DOMAIN, "../../../../tmp/coffer-forged-escape", FLAG_FILE, size=5),
        FileRecord("../Manifest.db", FORGED_DOMAIN, "Library/forged-file-id", FLAG_FILE, blob("Library/forged-file-id")),
        FileRecord.create(FORGED_DOMAIN, "Library/forged-flags", 16, size=5),
        FileRecord.create("../" + FORGED_DOMAIN, "Library/forged-domain", FLAG_FILE, size=5),
        FileRecord(file_id_for(FORGED_DOMAIN, "Library/forged-record"), FORGED_DOMAIN, "Library/forged-record",
                   FLAG_FILE, b"not an MBFile record"),
    ]
