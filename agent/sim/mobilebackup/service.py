"""com.apple.mobilebackup2, device side: DeviceLink handshake, then one host message after another.

`Hello` negotiates the protocol version, `Backup` and `Restore` run their engines, `ChangePassword`
turns the device's backup encryption on, off or to another password. Each ends with a `Response`
whose `ErrorCode` is 0 or an MBErrorDomain code.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agent.sim.device import SimulatedDevice
from agent.sim.faults import BACKUP_ERROR_TEXTS, STALE_SNAPSHOT_CODE, STALE_SNAPSHOT_TEXT
from agent.sim.mobilebackup import errors
from agent.sim.mobilebackup.backup_engine import BackupEngine
from agent.sim.mobilebackup.device_link import DeviceLinkChannel, DeviceLinkError
from agent.sim.mobilebackup.restore_engine import RestoreEngine
from agent.sim.mobilebackup.versions import version_tuple

logger = logging.getLogger(__name__)

PROTOCOL_VERSIONS = (2.0, 2.1)
LOCAL_AUTH_PRESENTED = "com.apple.LocalAuthentication.ui.presented"
LOCAL_AUTH_DISMISSED = "com.apple.LocalAuthentication.ui.dismissed"
PASSCODE_PROMPT_SINCE = (16, 1)  # iOS asks for the passcode to start a backup or change its password
# The sheet comes up a moment after the request, by when the host's ObserveNotification requests (sent on
# another connection just before) have arrived.
PROMPT_DELAY_SECONDS = 0.2


async def serve_mobilebackup2(
    device: SimulatedDevice, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serve one mobilebackup2 connection until the host disconnects."""
    try:
        await _serve(device, DeviceLinkChannel(reader, writer, device.throttle))
    finally:
        device.reboot_if_pending()  # after a restore: the host has let go of the service


async def _serve(device: SimulatedDevice, link: DeviceLinkChannel) -> None:
    await link.version_exchange()
    while (request := await link.receive_request()) is not None:
        name = request.get("MessageName")
        try:
            extra = await _handle(device, link, name, request)
        except errors.MobileBackupFailure as failure:
            logger.info("%s on %s failed: %s (%d)", name, device.udid, failure.description, failure.code)
            _record_outcome(device, name, failure.code, failure.description)
            await link.send_response(failure.code, failure.description)
        except DeviceLinkError as error:
            logger.info("%s on %s failed: %s", name, device.udid, error)
            _record_outcome(device, name, errors.GENERIC, str(error))
            await link.send_response(errors.GENERIC, str(error))
        else:
            _record_outcome(device, name, 0, "")
            await link.send_response(0, extra=extra)


async def _handle(
    device: SimulatedDevice, link: DeviceLinkChannel, name: Any, request: dict[str, Any]
) -> dict[str, Any]:
    """Run one host message; extra fields of its successful Response."""
    if name == "Hello":
        return {"ProtocolVersion": _hello(request)}
    target = request.get("TargetIdentifier")
    if name in ("Backup", "Restore") and target and target != device.udid:
        raise errors.MobileBackupFailure(errors.GENERIC, f"TargetIdentifier {target} is not this device")
    if name in ("Backup", "ChangePassword"):
        await _passcode_prompt(device, link)
    if name in ("Backup", "Restore"):
        _injected_failure(device, name)
    if name == "Backup":
        await BackupEngine(device, link, request).run()
    elif name == "Restore":
        await RestoreEngine(device, link, request).run()
    elif name == "ChangePassword":
        change_password(device, request.get("OldPassword"), request.get("NewPassword"))
    else:
        raise errors.MobileBackupFailure(errors.GENERIC, f"{name} is not supported by this device")
    return {}


async def _passcode_prompt(device: SimulatedDevice, link: DeviceLinkChannel) -> None:
    """iOS >= 16.1: the passcode sheet, relayed to observing hosts through notification_proxy."""
    wait = device.faults.passcode_prompt
    if wait is None or version_tuple(device.product_version) < PASSCODE_PROMPT_SINCE:
        return
    await asyncio.sleep(PROMPT_DELAY_SECONDS)
    device.post_notification(LOCAL_AUTH_PRESENTED)
    if wait < 0:  # nobody enters it: the device waits until the host gives up and leaves
        await link.reader.read()
        raise DeviceLinkError("the host left while the device asked for its passcode")
    await asyncio.sleep(wait)
    device.post_notification(LOCAL_AUTH_DISMISSED)


def _injected_failure(device: SimulatedDevice, name: str) -> None:
    """The field failures a Backup or Restore ends with at once (agent.sim.faults)."""
    if name == "Backup" and device.faults.stale_snapshot:
        raise errors.MobileBackupFailure(STALE_SNAPSHOT_CODE, STALE_SNAPSHOT_TEXT)
    code = device.faults.backup_error
    if code is not None:
        raise errors.MobileBackupFailure(code, BACKUP_ERROR_TEXTS[code])


def _hello(request: dict[str, Any]) -> float:
    """The protocol version both sides speak (a real: libimobiledevice checks the plist type)."""
    offered = request.get("SupportedProtocolVersions")
    offered = offered if isinstance(offered, list) else []
    common = {version for version in offered if isinstance(version, (int, float))} & set(PROTOCOL_VERSIONS)
    if not common:
        raise errors.MobileBackupFailure(errors.GENERIC, "No common supported protocol version")
    return float(max(common))


def change_password(device: SimulatedDevice, old: Any, new: Any) -> None:
    """Turn backup encryption on (`new` only), change the password (both) or turn it off (`old` only)."""
    if device.backup_password is None:
        if not isinstance(new, str) or not new:
            raise errors.MobileBackupFailure(
                errors.GENERIC, "backup encryption is off: a new password is needed"
            )
        device.set_backup_password(new)
        return
    if old != device.backup_password:
        raise errors.MobileBackupFailure(errors.INVALID_PASSWORD, "Invalid password")
    device.set_backup_password(new if isinstance(new, str) and new else None)


def _record_outcome(device: SimulatedDevice, name: Any, code: int, description: str) -> None:
    """Close the report the engine opened (the last one of its kind) with the Response's code."""
    reports = {"Backup": device.backups, "Restore": device.restores}.get(name)
    if reports and reports[-1].error_code is None:
        reports[-1].error_code = code
        reports[-1].error_description = description
