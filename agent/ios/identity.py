"""Who a backup belongs to: the device identity read from Info.plist and Manifest.plist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeviceIdentity:
    """The device a backup was made from (UDID, name, model, iOS version and build, serial number)."""

    udid: str
    name: str
    product_type: str
    product_version: str
    serial: str
    build: str

    @classmethod
    def from_plists(cls, info: dict[str, Any], manifest: dict[str, Any]) -> DeviceIdentity:
        """Prefer Manifest.plist `Lockdown` (written by the device); fill gaps from Info.plist (written by the
        host). Missing values become empty strings: a backup without a device name is still a backup."""
        lockdown = manifest.get("Lockdown")
        lockdown = lockdown if isinstance(lockdown, dict) else {}

        def pick(lockdown_key: str, info_key: str) -> str:
            for value in (lockdown.get(lockdown_key), info.get(info_key)):
                # a number is written as text; a container or data is not an identity, so it counts as missing
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return str(value)
                if isinstance(value, str) and value:
                    return value
            return ""

        return cls(
            udid=pick("UniqueDeviceID", "Unique Identifier"),
            name=pick("DeviceName", "Device Name"),
            product_type=pick("ProductType", "Product Type"),
            product_version=pick("ProductVersion", "Product Version"),
            serial=pick("SerialNumber", "Serial Number"),
            build=pick("BuildVersion", "Build Version"),
        )
