"""Finding devices through usbmux and opening lockdown sessions, with errors a user can act on.

pymobiledevice3 raises a zoo of exceptions for what, to a user, are four situations: no such
device, the device waits for Trust, the device is locked, the cable went away. This module
turns them into `DeviceError` subclasses (exit code 5) with the message to show.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from pymobiledevice3 import usbmux
from pymobiledevice3.exceptions import (
    ConnectionFailedError,
    ConnectionFailedToUsbmuxdError,
    ConnectionTerminatedError,
    DeviceNotFoundError,
    MuxException,
    NoDeviceConnectedError,
    NotPairedError,
    NotTrustedError,
    PairingDialogResponsePendingError,
    PairingError,
    PasscodeRequiredError,
    PasswordRequiredError,
    UserDeniedPairingError,
)
from pymobiledevice3.lockdown import UsbmuxLockdownClient, create_using_usbmux

from agent.device import trace as tracing
from agent.errors import DeviceDisconnectedError, DeviceError, DeviceLockedError, DeviceNotTrustedError

PAIR_TIMEOUT_SECONDS = 2.0  # scripts and daemons: report "tap Trust" quickly and move on
INTERACTIVE_PAIR_TIMEOUT_SECONDS = 60.0  # someone at a terminal has time to unlock the phone and tap Trust


def pair_timeout() -> float:
    configured = os.environ.get("COFFER_TRUST_TIMEOUT")
    if configured:
        try:
            return max(0.0, float(configured))
        except ValueError:
            pass
    return INTERACTIVE_PAIR_TIMEOUT_SECONDS if sys.stdin.isatty() and sys.stderr.isatty() else PAIR_TIMEOUT_SECONDS


def usbmux_address() -> str | None:
    """The usbmuxd socket: USBMUXD_SOCKET_ADDRESS (e.g. `127.0.0.1:27015`, or a simulator), else the default."""
    return os.environ.get("USBMUXD_SOCKET_ADDRESS") or None


def pair_records_folder() -> Path | None:
    """Where pymobiledevice3 keeps host-side pair records: COFFER_PAIR_RECORDS_DIR, else its default."""
    configured = os.environ.get("COFFER_PAIR_RECORDS_DIR")
    return Path(configured) if configured else None


@dataclass(frozen=True)
class AttachedDevice:
    udid: str
    connection_type: str


async def attached_devices() -> list[AttachedDevice]:
    trace = tracing.active()
    try:
        devices = await usbmux.list_devices(usbmux_address=usbmux_address())
    except (ConnectionFailedToUsbmuxdError, ConnectionRefusedError, FileNotFoundError) as exc:
        if trace is not None:
            trace.event("usbmux", "ListDevices", error=type(exc).__name__)
        raise DeviceError(
            "cannot reach usbmuxd: is the usbmuxd service running (Linux: apt install usbmuxd) "
            "or USBMUXD_SOCKET_ADDRESS right?"
        ) from exc
    if trace is not None:
        for device in devices:
            trace.identify(device.serial)
        trace.event("usbmux", "ListDevices", devices=[d.connection_type for d in devices])
    return [AttachedDevice(d.serial, d.connection_type) for d in devices if d.is_usb]


async def usbmux_device_id(udid: str) -> int | None:
    """The usbmux DeviceID of `udid` while plugged in: a new one after each reconnection (e.g. a reboot)."""
    try:
        devices = await usbmux.list_devices(usbmux_address=usbmux_address())
    except (ConnectionFailedToUsbmuxdError, ConnectionRefusedError, FileNotFoundError):
        return None
    return next((d.devid for d in devices if d.serial == udid and d.is_usb), None)


def translate(exc: BaseException, udid: str) -> DeviceError:
    """The DeviceError that says what happened to `udid`, in words a user can act on."""
    if isinstance(exc, DeviceError):
        return exc
    if isinstance(exc, PasswordRequiredError | PasscodeRequiredError):
        return DeviceLockedError(f"device {udid} is locked: unlock it with its passcode and try again")
    if isinstance(exc, PairingDialogResponsePendingError | NotTrustedError | NotPairedError):
        return DeviceNotTrustedError(f"device {udid} does not trust this computer yet: unlock it and tap Trust")
    if isinstance(exc, UserDeniedPairingError):
        return DeviceNotTrustedError(f"device {udid}: the user tapped Don't Trust; unplug, replug and tap Trust")
    if isinstance(exc, PairingError):
        return DeviceNotTrustedError(f"device {udid} could not be paired: {exc}")
    if isinstance(exc, DeviceNotFoundError | NoDeviceConnectedError):
        return DeviceDisconnectedError(f"device {udid} is not connected")
    if isinstance(exc, ConnectionTerminatedError | ConnectionFailedError | MuxException | ConnectionError | EOFError):
        return DeviceDisconnectedError(f"device {udid} went away (unplugged?): plug it back in and run again")
    if isinstance(exc, OSError):
        return DeviceDisconnectedError(f"lost the connection to device {udid}: {exc.strerror or exc}")
    return DeviceError(f"device {udid}: {type(exc).__name__}: {exc}")


@contextlib.asynccontextmanager
async def lockdown_session(
    udid: str, *, autopair: bool = True, trust_timeout: float | None = None
) -> AsyncIterator[UsbmuxLockdownClient]:
    """A paired lockdown client for `udid`; DeviceError subclasses on failure. A device waiting for Trust
    is given `trust_timeout` seconds (default: a minute at a terminal, two seconds otherwise).
    Under `--trace` the session's outcome and every later request are recorded."""
    trace = tracing.active()
    if trace is not None:
        trace.identify(udid)
    try:
        client = await create_using_usbmux(
            serial=udid,
            autopair=autopair,
            pair_timeout=pair_timeout() if trust_timeout is None else trust_timeout,
            usbmux_address=usbmux_address(),
            pairing_records_cache_folder=pair_records_folder(),
        )
    except Exception as exc:
        if trace is not None:
            trace.event("lockdown", "session", error=type(exc).__name__, text=trace.text(str(exc)))
        raise translate(exc, udid) from exc
    if trace is not None:
        trace.identify(udid, client.all_values)
        trace.event("lockdown", "session", values=trace.values(client.all_values))
        client.service = tracing.LockdownRecorder(client.service, trace)  # type: ignore[assignment]
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await client.close()
