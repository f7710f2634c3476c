"""A usbmuxd on TCP loopback (ios-protocol.md section 1): device list, plug events, tunnels, pair records.

Speaks the plist protocol both pymobiledevice3 and libusbmuxd use; a binary-protocol request gets
BADVERSION. After a successful `Connect` the client connection becomes a raw tunnel to a device
port, handed to whatever the `DeviceHub` routes that port to.
"""

from __future__ import annotations

import asyncio
import contextlib
import plistlib
import re
import struct
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

_HEADER = struct.Struct("<IIII")  # length (header included), version, message, tag
PLIST_VERSION = 1
MESSAGE_RESULT = 1
MESSAGE_PLIST = 8
RESULT_OK = 0
RESULT_BADCOMMAND = 1
RESULT_BADDEV = 2
RESULT_CONNREFUSED = 3
RESULT_BADVERSION = 6
RESULT_ENOENT = 2  # real usbmuxd answers a missing pair record with errno ENOENT
APPLE_PRODUCT_ID = 0x12A8
_PAIR_RECORD_ID = re.compile(r"[0-9A-Za-z-]{1,64}")

ConnectionHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class DeviceHub(Protocol):
    """What usbmuxd needs from the simulator: attached devices, port routing and plug events."""

    def attached_devices(self) -> list[tuple[int, str, int]]:
        """(DeviceID, UDID, USB speed in bits per second) of every plugged device."""
        ...

    def route(self, device_id: int, port: int) -> ConnectionHandler | int:
        """The handler of a device port, or a usbmuxd result code (BADDEV, CONNREFUSED)."""
        ...

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue that receives Attached/Detached/Paired messages from now on."""
        ...

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None: ...


def attached_message(device_id: int, udid: str, speed: int = 480_000_000) -> dict[str, Any]:
    """The Attached message (and ListDevices entry) of a USB device, as usbmuxd builds it; `speed` is
    the negotiated USB speed in bits per second (480000000 on USB 2, 5000000000 on USB 3)."""
    return {
        "MessageType": "Attached",
        "DeviceID": device_id,
        "Properties": {
            "ConnectionSpeed": speed,
            "ConnectionType": "USB",
            "DeviceID": device_id,
            "LocationID": 0x01100000 + device_id,
            "ProductID": APPLE_PRODUCT_ID,
            "SerialNumber": udid,
            "USBSerialNumber": udid.replace("-", ""),
        },
    }


class PairRecordStore:
    """usbmuxd's pair records (`/var/lib/lockdown` on Linux) and its SystemBUID, kept in a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "SystemConfiguration.plist"
        if config.exists():
            self.buid = plistlib.loads(config.read_bytes())["SystemBUID"]
        else:
            self.buid = str(uuid.uuid4()).upper()
            config.write_bytes(plistlib.dumps({"SystemBUID": self.buid}))

    def _path(self, record_id: str) -> Path | None:
        return self.folder / f"{record_id}.plist" if _PAIR_RECORD_ID.fullmatch(record_id) else None

    def read(self, record_id: str) -> bytes | None:
        path = self._path(record_id)
        return path.read_bytes() if path is not None and path.exists() else None

    def save(self, record_id: str, data: bytes) -> bool:
        path = self._path(record_id)
        if path is None:
            return False
        path.write_bytes(data)
        return True

    def delete(self, record_id: str) -> None:
        path = self._path(record_id)
        if path is not None:
            path.unlink(missing_ok=True)


class UsbmuxServer:
    """Serves usbmuxd clients; every client connection is one request/reply conversation, a Listen
    subscription, or (after Connect) a tunnel."""

    def __init__(self, hub: DeviceHub, pair_records: PairRecordStore) -> None:
        self.hub = hub
        self.pair_records = pair_records

    async def handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            # The device was unplugged or the simulator stops: the connection just ends. (Python
            # 3.11's start_server logs a traceback for a client task that ends cancelled.)
            pass
        finally:
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                header = await reader.readexactly(_HEADER.size)
            except asyncio.IncompleteReadError:
                return
            length, version, message, tag = _HEADER.unpack(header)
            payload = await reader.readexactly(max(length - _HEADER.size, 0))
            if version != PLIST_VERSION or message != MESSAGE_PLIST:
                writer.write(
                    _HEADER.pack(_HEADER.size + 4, 0, MESSAGE_RESULT, tag)
                    + struct.pack("<I", RESULT_BADVERSION)
                )
                await writer.drain()
                return
            try:
                request = plistlib.loads(payload)
            except Exception:  # plistlib raises many types for malformed input
                await self._send(writer, tag, _result(RESULT_BADCOMMAND))
                continue
            kind = request.get("MessageType") if isinstance(request, dict) else None
            if kind == "Connect":
                handler = self._route(request)
                if isinstance(handler, int):
                    await self._send(writer, tag, _result(handler))
                    continue
                await self._send(writer, tag, _result(RESULT_OK))
                await handler(reader, writer)
                return
            if kind == "Listen":
                await self._send(writer, tag, _result(RESULT_OK))
                await self._listen(reader, writer)
                return
            await self._send(writer, tag, self._answer(kind, request))

    def _route(self, request: dict[str, Any]) -> ConnectionHandler | int:
        device_id, port = request.get("DeviceID"), request.get("PortNumber")
        if not isinstance(device_id, int) or not isinstance(port, int):
            return RESULT_BADCOMMAND
        # PortNumber arrives in network byte order read as a host integer: 62078 comes as 32498.
        return self.hub.route(device_id, ((port & 0xFF) << 8) | (port >> 8 & 0xFF))

    def _answer(self, kind: Any, request: dict[str, Any]) -> dict[str, Any]:
        if kind == "ReadBUID":
            return {"BUID": self.pair_records.buid}
        if kind == "ListDevices":
            return {
                "DeviceList": [
                    attached_message(*device) for device in self.hub.attached_devices()
                ]
            }
        record_id = str(request.get("PairRecordID", ""))
        if kind == "ReadPairRecord":
            data = self.pair_records.read(record_id)
            return {"PairRecordData": data} if data is not None else _result(RESULT_ENOENT)
        if kind == "SavePairRecord":
            data = request.get("PairRecordData")
            if not isinstance(data, bytes) or not self.pair_records.save(record_id, data):
                return _result(RESULT_BADCOMMAND)
            return _result(RESULT_OK)
        if kind == "DeletePairRecord":
            self.pair_records.delete(record_id)
            return _result(RESULT_OK)
        return _result(RESULT_BADCOMMAND)

    async def _listen(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Send Attached for every plugged device, then every plug event, until the client leaves."""
        queue = self.hub.subscribe()
        client_gone = asyncio.ensure_future(reader.read())
        try:
            for device in self.hub.attached_devices():
                await self._send(writer, 0, attached_message(*device))
            while True:
                next_event = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({next_event, client_gone}, return_when=asyncio.FIRST_COMPLETED)
                if client_gone in done:
                    next_event.cancel()
                    return
                await self._send(writer, 0, next_event.result())
        finally:
            self.hub.unsubscribe(queue)
            client_gone.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await client_gone

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, tag: int, message: dict[str, Any]) -> None:
        payload = plistlib.dumps(message)
        writer.write(_HEADER.pack(_HEADER.size + len(payload), PLIST_VERSION, MESSAGE_PLIST, tag) + payload)
        await writer.drain()


def _result(number: int) -> dict[str, Any]:
    return {"MessageType": "Result", "Number": number}
