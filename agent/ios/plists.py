"""Property-list helpers for backup folders: loading with clear errors for damaged files, and builders for the
plists a device writes (Status.plist, Manifest.plist; ios-protocol.md sections 4.5 and 6.3)."""

from __future__ import annotations

import plistlib
import uuid
from datetime import UTC, datetime
from typing import Any
from xml.parsers.expat import ExpatError

from agent._bplist import loads_measured as load_binary_plist
from agent.errors import BackupFormatError
from agent.ios.identity import DeviceIdentity

# plistlib raises these for damaged or hostile input (InvalidFileException and UnicodeDecodeError are ValueErrors;
# the XML reader raises ExpatError, LookupError for an unknown `encoding=` declaration and AttributeError for a
# <date> it cannot parse; absurd nesting or sizes surface as RecursionError / OverflowError / MemoryError; dangling
# references in a binary plist as IndexError or KeyError, both LookupErrors).
PLIST_ERRORS = (
    ValueError,
    ExpatError,
    RecursionError,
    OverflowError,
    MemoryError,
    TypeError,
    LookupError,
    AttributeError,
)

# What plistlib.dumps raises for values its reader accepted (non-string keys, integers beyond 64 bits).
PLIST_WRITE_ERRORS = (TypeError, OverflowError, ValueError)

BINARY_MAGIC = b"bplist00"  # what plistlib recognises a binary plist by
STATUS_PLIST_VERSION = "3.3"
MANIFEST_PLIST_VERSION = "10.0"
SYSTEM_DOMAINS_VERSION = "24.0"


# A binary plist names its objects by reference, so a few hundred bytes can describe a tree of 8**40 nodes (each
# array referring to the next one eight times) or a cycle. Loading it is cheap, but anything that walks the values
# (str(), JSON, the XML writer) would run out of memory. A plist a device or iTunes writes expands to about its own
# size (the writer shares equal strings, so keys repeated across dictionaries expand a few times); this bound leaves
# wide headroom and keeps any walk linear in the input.
EXPANSION_FACTOR = 64
EXPANSION_SLACK = 1 << 20


def load_plist(data: bytes, name: str) -> Any:
    """Parse a binary or XML plist; a truncated or malformed one, or one whose references expand into a cycle or
    a far larger tree than its bytes, raises BackupFormatError naming `name`. Binary plists (every MBFile record
    of a Manifest.db) go through the native reader, which gives what plistlib gives, six times faster, and
    measures the expansion as it reads (only the binary format has references; an XML tree is no larger than
    its text)."""
    expanded = 0
    try:
        if data.startswith(BINARY_MAGIC):
            value, expanded = load_binary_plist(data)
        else:
            value = plistlib.loads(data)
    except PLIST_ERRORS as error:
        # plistlib's only AttributeError is its date pattern failing to match
        detail = "a <date> that is not a date" if isinstance(error, AttributeError) else repr(error)
        raise BackupFormatError(f"{name} is truncated or is not a valid property list ({detail})") from error
    if expanded < 0:
        raise BackupFormatError(f"{name} holds a container that contains itself; it is not a property list a "
                                "device writes")
    limit = EXPANSION_FACTOR * len(data) + EXPANSION_SLACK
    if expanded > limit:
        raise BackupFormatError(f"{name} refers to its own objects so often that it would expand beyond "
                                f"{limit:,} bytes; it is not a property list a device writes")
    return value


def load_plist_dict(data: bytes, name: str) -> dict[str, Any]:
    """Parse a plist whose top level must be a dictionary (every plist of a backup folder)."""
    value = load_plist(data, name)
    if not isinstance(value, dict):
        raise BackupFormatError(f"{name} is not a dictionary property list (found {type(value).__name__})")
    return value


def dump_binary(value: Any) -> bytes:
    """Serialise as a binary plist, keeping dictionary key order (devices write binary plists)."""
    return plistlib.dumps(value, fmt=plistlib.FMT_BINARY, sort_keys=False)


def build_status_plist(
    *,
    snapshot_state: str = "finished",
    is_full_backup: bool = True,
    date: datetime | None = None,
    backup_uuid: str | None = None,
    backup_state: str = "new",
) -> bytes:
    """Status.plist as the device uploads it (section 4.5); restore needs snapshot_state "finished"."""
    return dump_binary(
        {
            "BackupState": backup_state,
            "Date": _naive_utc(date),
            "IsFullBackup": is_full_backup,
            "SnapshotState": snapshot_state,
            "UUID": backup_uuid or str(uuid.uuid4()).upper(),
            "Version": STATUS_PLIST_VERSION,
        }
    )


def build_manifest_plist(
    *,
    device: DeviceIdentity,
    backup_keybag: bytes,
    manifest_key: bytes | None = None,
    date: datetime | None = None,
    was_passcode_set: bool = True,
    applications: dict[str, dict[str, Any]] | None = None,
    extra_lockdown: dict[str, Any] | None = None,
) -> bytes:
    """Manifest.plist as the device uploads it (section 6.3). Giving `manifest_key` (the 44-byte wrapped
    Manifest.db key) marks the backup encrypted; `backup_keybag` is present in both kinds of backups."""
    lockdown: dict[str, Any] = {
        "ProductVersion": device.product_version,
        "ProductType": device.product_type,
        "BuildVersion": device.build,
        "UniqueDeviceID": device.udid,
        "SerialNumber": device.serial,
        "DeviceName": device.name,
    }
    lockdown.update(extra_lockdown or {})
    manifest: dict[str, Any] = {
        "BackupKeyBag": backup_keybag,
        "Version": MANIFEST_PLIST_VERSION,
        "SystemDomainsVersion": SYSTEM_DOMAINS_VERSION,
        "Date": _naive_utc(date),
        "WasPasscodeSet": was_passcode_set,
        "IsEncrypted": manifest_key is not None,
    }
    if manifest_key is not None:
        manifest["ManifestKey"] = manifest_key
    manifest["Lockdown"] = lockdown
    manifest["Applications"] = applications or {}
    return dump_binary(manifest)


def application_entry(bundle_id: str, version: str = "1") -> dict[str, Any]:
    """One `Applications` value of Manifest.plist for an installed app."""
    return {
        "CFBundleIdentifier": bundle_id,
        "CFBundleVersion": version,
        "ContainerContentClass": "Data/Application",
        "Path": f"/private/var/containers/Bundle/Application/{str(uuid.uuid5(uuid.NAMESPACE_DNS, bundle_id)).upper()}",
    }


def _naive_utc(moment: datetime | None) -> datetime:
    """plistlib stores naive datetimes as UTC."""
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0)
