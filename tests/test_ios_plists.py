"""Plist loading with clear errors, the device-side plist builders and the device identity."""

from __future__ import annotations

import plistlib
from datetime import UTC, datetime

import pytest

from agent.errors import BackupFormatError
from agent.ios.identity import DeviceIdentity
from agent.ios.plists import (
    application_entry,
    build_manifest_plist,
    build_status_plist,
    load_plist,
    load_plist_dict,
)

DEVICE = DeviceIdentity("00008030-AB", "Ann's iPhone", "iPhone12,1", "17.5.1", "F2LXX", "21F90")
WHEN = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def test_status_plist_fields() -> None:
    data = build_status_plist(
        date=WHEN, backup_uuid="UUID-1", is_full_backup=False, snapshot_state="uploading"
    )
    assert data.startswith(b"bplist00")
    assert plistlib.loads(data) == {
        "BackupState": "new",
        "Date": datetime(2024, 5, 1, 12, 30),
        "IsFullBackup": False,
        "SnapshotState": "uploading",
        "UUID": "UUID-1",
        "Version": "3.3",
    }
    assert plistlib.loads(build_status_plist())["SnapshotState"] == "finished"


def test_manifest_plist_of_an_encrypted_backup() -> None:
    manifest_key = b"\x04\x00\x00\x00" + bytes(40)
    data = build_manifest_plist(
        device=DEVICE,
        backup_keybag=b"TLV",
        manifest_key=manifest_key,
        date=WHEN,
        applications={"com.example.app": application_entry("com.example.app", "2.1")},
        extra_lockdown={"com.apple.mobile.data_sync": {}},
    )
    manifest = plistlib.loads(data)
    assert list(manifest) == [
        "BackupKeyBag",
        "Version",
        "SystemDomainsVersion",
        "Date",
        "WasPasscodeSet",
        "IsEncrypted",
        "ManifestKey",
        "Lockdown",
        "Applications",
    ]
    assert manifest["IsEncrypted"] is True and manifest["ManifestKey"] == manifest_key
    assert manifest["Version"] == "10.0" and manifest["BackupKeyBag"] == b"TLV"
    assert manifest["Lockdown"]["ProductVersion"] == "17.5.1"
    assert manifest["Lockdown"]["UniqueDeviceID"] == DEVICE.udid
    assert manifest["Lockdown"]["com.apple.mobile.data_sync"] == {}
    app = manifest["Applications"]["com.example.app"]
    assert app["CFBundleVersion"] == "2.1" and app["Path"].startswith(
        "/private/var/containers/Bundle/Application/"
    )


def test_manifest_plist_of_an_unencrypted_backup() -> None:
    manifest = plistlib.loads(build_manifest_plist(device=DEVICE, backup_keybag=b"TLV"))
    assert manifest["IsEncrypted"] is False and "ManifestKey" not in manifest


def test_device_identity_prefers_lockdown_and_falls_back_to_info() -> None:
    manifest = plistlib.loads(build_manifest_plist(device=DEVICE, backup_keybag=b""))
    assert DeviceIdentity.from_plists({}, manifest) == DEVICE
    info = {
        "Unique Identifier": "UDID-FROM-INFO",
        "Device Name": "Info name",
        "Product Type": "iPhone9,3",
        "Product Version": "14.3",
        "Serial Number": "S",
        "Build Version": "18C66",
    }
    assert DeviceIdentity.from_plists(info, {}) == DeviceIdentity(
        "UDID-FROM-INFO", "Info name", "iPhone9,3", "14.3", "S", "18C66"
    )
    assert DeviceIdentity.from_plists({}, {"Lockdown": "junk"}).udid == ""


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"bplist00\x00\x01",
        plistlib.dumps({"a": 1})[:-10],
        b"<?xml version='1.0'?><plist><dict><key>a</key>",
    ],
    ids=["empty", "binary-truncated", "xml-truncated", "xml-unclosed"],
)
def test_damaged_plist_names_the_file(data: bytes) -> None:
    with pytest.raises(
        BackupFormatError, match=r"Status\.plist is truncated or is not a valid property list"
    ):
        load_plist(data, "Status.plist")


def test_top_level_must_be_a_dictionary() -> None:
    with pytest.raises(BackupFormatError, match=r"Info\.plist is not a dictionary"):
        load_plist_dict(plistlib.dumps([1, 2]), "Info.plist")
