"""`coffer devices`: what usbmux reports, with each device's trust state, backup encryption and USB speed.

Lockdown's `PasswordProtected` is read two ways in the field: "locked now" or "has a passcode" (true
while unlocked too). Coffer trusts it only when it is false (no passcode, so not locked, under either
reading). When it is true, the device's answer to starting com.apple.mobilebackup2, the service a backup
needs, decides: a locked device refuses it with `PasswordProtected`. Whether a passcode is set comes from
`PasswordConfigured` where the device reports it (docs/design-notes.md, "PasswordProtected").
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

from pymobiledevice3.exceptions import PasscodeRequiredError, PasswordRequiredError
from pymobiledevice3.lockdown import UsbmuxLockdownClient

from agent.device.connect import PAIR_TIMEOUT_SECONDS, attached_devices, lockdown_session
from agent.errors import DeviceError, DeviceLockedError, DeviceNotTrustedError

TRUSTED = "trusted"
WAITING_FOR_TRUST = "waiting for trust"
LOCKED = "locked"
UNREACHABLE = "unreachable"


@dataclass
class DeviceInfo:
    udid: str
    connection: str
    state: str
    name: str = ""
    model: str = ""
    ios_version: str = ""
    build: str = ""
    backup_encryption: bool | None = None
    passcode: bool | None = None  # a passcode is set (None: the device does not say)
    usb_speed: int | None = None  # negotiated USB speed in bits per second, from usbmuxd
    message: str = ""

    @property
    def usb(self) -> str:
        """"USB 2" / "USB 3" (from the negotiated speed), or "?" when usbmuxd does not report it."""
        return usb_generation(self.usb_speed)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def usb_generation(speed: int | None) -> str:
    """The USB generation a negotiated speed in bits per second means (USB 2: 480 Mbit/s, USB 3: 5 Gbit/s and up)."""
    if not speed:
        return "?"
    if speed >= 5_000_000_000:
        return "USB 3"
    if speed >= 480_000_000:
        return "USB 2"
    return "USB 1"


async def _locked_now(lockdown: UsbmuxLockdownClient) -> bool:
    """Whether the device refuses the backup service for want of its passcode (the one unambiguous test)."""
    try:
        service = await lockdown.start_lockdown_service("com.apple.mobilebackup2", include_escrow_bag=True)
    except (PasswordRequiredError, PasscodeRequiredError):
        return True
    await service.close()
    return False


async def describe(udid: str, connection: str, usb_speed: int | None = None) -> DeviceInfo:
    info = DeviceInfo(udid=udid, connection=connection, state=TRUSTED, usb_speed=usb_speed)
    try:
        async with lockdown_session(udid, trust_timeout=PAIR_TIMEOUT_SECONDS) as lockdown:
            values = lockdown.all_values
            info.name = str(values.get("DeviceName", ""))
            info.model = str(values.get("ProductType", ""))
            info.ios_version = str(values.get("ProductVersion", ""))
            info.build = str(values.get("BuildVersion", ""))
            protected = values.get("PasswordProtected")
            configured = values.get("PasswordConfigured")
            if isinstance(configured, bool):
                info.passcode = configured
            if protected and await _locked_now(lockdown):
                info.state = LOCKED
                info.message = f"device {udid} is locked: unlock it with its passcode"
            elif protected:
                info.passcode = True  # true while unlocked: this device means "has a passcode"
            elif protected is False and info.passcode is None:
                info.passcode = False
            info.backup_encryption = bool(await lockdown.get_value("com.apple.mobile.backup", "WillEncrypt"))
    except DeviceNotTrustedError as exc:
        info.state, info.message = WAITING_FOR_TRUST, str(exc)
    except DeviceLockedError as exc:
        info.state, info.message = LOCKED, str(exc)
    except DeviceError as exc:
        info.state, info.message = UNREACHABLE, str(exc)
    return info


async def _list_all() -> list[DeviceInfo]:
    devices = await attached_devices()
    return list(await asyncio.gather(*(describe(d.udid, d.connection_type, d.usb_speed) for d in devices)))


def list_devices() -> list[DeviceInfo]:
    return asyncio.run(_list_all())


def connected_udids() -> list[str]:
    return [d.udid for d in asyncio.run(attached_devices())]
