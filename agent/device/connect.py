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
from typing import Any

from pymobiledevice3 import usbmux
from pymobiledevice3.exceptions import (
    ConnectionFailedError,
    ConnectionFailedToUsbmuxdError,
    ConnectionTerminatedError,
    DeviceNotFoundError,
    InvalidHostIDError,
    MuxException,
    NoDeviceConnectedError,
    NotPairedError,
    NotTrustedError,
    PairingDialogResponsePendingError,
    PairingError,
    PasscodeRequiredError,
    PasswordRequiredError,
    StartServiceError,
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


@dataclass(frozen=True)
class UsbmuxdEndpoint:
    """Where usbmuxd listens: a unix socket path, or a TCP (host, port)."""

    unix_path: str | None = None
    tcp: tuple[str, int] | None = None

    def __str__(self) -> str:
        return self.unix_path if self.unix_path is not None else f"{self.tcp[0]}:{self.tcp[1]}"  # type: ignore[index]


UNIX_SOCKET = "/var/run/usbmuxd"  # usbmuxd on Linux, Apple's on macOS
WINDOWS_TCP = ("127.0.0.1", 27015)  # Apple Mobile Device Service (iTunes / Apple Devices app) on Windows


def usbmuxd_endpoint(configured: str | None, platform: str = sys.platform, wsl: bool = False) -> UsbmuxdEndpoint:
    """The endpoint pymobiledevice3 connects to, chosen as it does: USBMUXD_SOCKET_ADDRESS `HOST:PORT` is TCP
    and anything else a unix socket path; without it, TCP 127.0.0.1:27015 on Windows, Cygwin and WSL (whose
    usbmuxd is the Windows one), else the unix socket /var/run/usbmuxd (macOS and Linux)."""
    if configured:
        if ":" in configured:
            host, _, port = configured.rpartition(":")
            return UsbmuxdEndpoint(tcp=(host, int(port)))
        return UsbmuxdEndpoint(unix_path=configured)
    if platform in ("win32", "cygwin") or wsl:
        return UsbmuxdEndpoint(tcp=WINDOWS_TCP)
    return UsbmuxdEndpoint(unix_path=UNIX_SOCKET)


def _is_wsl() -> bool:
    return sys.platform == "linux" and "microsoft" in os.uname().release.lower()


def usbmuxd_problem(exc: BaseException) -> DeviceError | None:
    """The one-line message for a usbmuxd that cannot be reached, or None if `exc` is something else."""
    endpoint = usbmuxd_endpoint(usbmux_address(), wsl=_is_wsl())
    if isinstance(exc, PermissionError):
        return DeviceError(
            f"no permission to open the usbmuxd socket {endpoint}: run Coffer as a user in the socket's group "
            "(`ls -l` shows it; usually plugdev or usbmux: `sudo usermod -aG plugdev $USER`, then log in again)"
        )
    if isinstance(exc, ConnectionFailedToUsbmuxdError | ConnectionRefusedError | FileNotFoundError):
        if endpoint.tcp is not None and not usbmux_address():
            fix = "start the Apple Mobile Device Service (install iTunes or the Apple Devices app)"
        elif sys.platform == "darwin" and not usbmux_address():
            fix = "macOS runs it itself: restart the Mac, or check USBMUXD_SOCKET_ADDRESS"
        else:
            fix = "start usbmuxd (Linux: `sudo apt install usbmuxd`, then plug the device in) or fix USBMUXD_SOCKET_ADDRESS"
        return DeviceError(f"cannot reach usbmuxd at {endpoint}: {fix}")
    return None


def pair_records_folder() -> Path | None:
    """Where pymobiledevice3 keeps host-side pair records: COFFER_PAIR_RECORDS_DIR, else its default."""
    configured = os.environ.get("COFFER_PAIR_RECORDS_DIR")
    return Path(configured) if configured else None


@dataclass(frozen=True)
class AttachedDevice:
    udid: str
    connection_type: str
    usb_speed: int | None = None  # negotiated speed in bits per second, when usbmuxd reports it


async def _list_with_properties() -> list[dict[str, Any]]:
    """usbmuxd's ListDevices entries with their Properties (pymobiledevice3's MuxDevice drops ConnectionSpeed)."""
    mux = await usbmux.create_mux(usbmux_address=usbmux_address())
    try:
        if not isinstance(mux, usbmux.PlistMuxConnection):
            await mux.get_device_list(0.1)  # a binary-protocol usbmuxd reports no speed
            return [{"DeviceID": d.devid, "Properties": {"SerialNumber": d.serial, "ConnectionType": d.connection_type}}
                    for d in mux.devices]
        await mux._send({"MessageType": "ListDevices"})
        reply = await mux._receive(mux._tag - 1)
    finally:
        await mux.close()
    entries = reply.get("DeviceList")
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("Properties"), dict)] if isinstance(entries, list) else []


async def attached_devices() -> list[AttachedDevice]:
    trace = tracing.active()
    try:
        entries = await _list_with_properties()
    except (ConnectionFailedToUsbmuxdError, ConnectionRefusedError, FileNotFoundError, PermissionError) as exc:
        if trace is not None:
            trace.event("usbmux", "ListDevices", error=type(exc).__name__)
        problem = usbmuxd_problem(exc)
        assert problem is not None
        raise problem from exc
    devices = []
    for entry in entries:
        properties = entry["Properties"]
        if trace is not None:
            trace.identify(str(properties.get("SerialNumber", "")))
        if properties.get("ConnectionType") != "USB":
            continue
        speed = properties.get("ConnectionSpeed")
        devices.append(AttachedDevice(str(properties.get("SerialNumber", "")), "USB",
                                      speed if isinstance(speed, int) and speed > 0 else None))
    if trace is not None:
        trace.event("usbmux", "ListDevices", devices=[str(e["Properties"].get("ConnectionType")) for e in entries])
    return devices


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
        return DeviceLockedError(
            f"device {udid} is locked: unlock it with its passcode and try again (after a restart it needs the "
            "passcode once, even with Face ID or Touch ID)"
        )
    if isinstance(exc, ConnectionFailedToUsbmuxdError):
        return usbmuxd_problem(exc) or DeviceError(str(exc))
    if isinstance(exc, StartServiceError):
        return DeviceError(
            f"device {udid} could not start service com.apple.mobilebackup2 ({exc}): unlock the device, unplug and "
            "replug it, and run again; if it persists, restart the device"
        )
    if isinstance(exc, InvalidHostIDError):
        return DeviceNotTrustedError(
            f"device {udid} does not know this computer's pairing record (InvalidHostID): run `coffer devices` to "
            "pair again and tap Trust on the device (if that fails, delete the pair record of this device and replug)"
        )
    if isinstance(exc, PairingDialogResponsePendingError | NotTrustedError | NotPairedError):
        return DeviceNotTrustedError(
            f"device {udid} does not trust this computer yet (the Trust dialog was not answered): unlock it and tap Trust"
        )
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
    except PermissionError as exc:  # opening usbmuxd's socket is the only file access here
        raise usbmuxd_problem(exc) or translate(exc, udid) from exc
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
