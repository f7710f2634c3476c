"""`coffer devices`: what usbmux reports, with each device's trust state and backup encryption."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

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
    message: str = ""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


async def describe(udid: str, connection: str) -> DeviceInfo:
    info = DeviceInfo(udid=udid, connection=connection, state=TRUSTED)
    try:
        async with lockdown_session(udid, trust_timeout=PAIR_TIMEOUT_SECONDS) as lockdown:
            values = lockdown.all_values
            info.name = str(values.get("DeviceName", ""))
            info.model = str(values.get("ProductType", ""))
            info.ios_version = str(values.get("ProductVersion", ""))
            info.build = str(values.get("BuildVersion", ""))
            if values.get("PasswordProtected"):
                info.state = LOCKED
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
    return list(await asyncio.gather(*(describe(d.udid, d.connection_type) for d in devices)))


def list_devices() -> list[DeviceInfo]:
    return asyncio.run(_list_all())


def connected_udids() -> list[str]:
    return [d.udid for d in asyncio.run(attached_devices())]
