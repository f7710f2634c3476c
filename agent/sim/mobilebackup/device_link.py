"""The device end of a DeviceLink conversation (ios-protocol.md sections 3.1, 4.1-4.3).

The device drives: it sends a command array, the host acts on its backup folder and answers with
one `DLMessageStatusResponse`. Uploads and downloads interleave raw file streams with the plist
frames. Every helper here is one request/response exchange.
"""

from __future__ import annotations

import asyncio
import io
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from agent.sim.framing import FrameError, read_plist, write_plist
from agent.sim.throttle import TransferThrottle

DL_VERSION_MAJOR = 400
DL_VERSION_MINOR = 0
EMPTY_PARAMETER = "___EmptyParameterString___"
CODE_SUCCESS = 0x00
CODE_ERROR_LOCAL = 0x06
CODE_ERROR_REMOTE = 0x0B
CODE_FILE_DATA = 0x0C
HOST_EEXIST = -7  # CreateDirectory on an existing directory (libimobiledevice)
_U32 = struct.Struct(">I")
_BLOCK_HEADER = struct.Struct(">IB")
_WRITE_BUFFER_HIGH_WATER = 8 * 1024 * 1024


class DeviceLinkError(Exception):
    """The host broke the protocol or answered a command with an error status."""


@dataclass(frozen=True)
class StatusResponse:
    """A host's answer to one command."""

    code: int
    text: str
    value: Any

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True)
class Upload:
    """One file sent to the host: its device path (informational), its path in the backup folder,
    and its bytes as they will be stored (ciphertext for an encrypted backup)."""

    device_name: str
    file_name: str
    pieces: Iterable[bytes]


@dataclass
class UploadResult:
    """What an upload put on the wire, and the device paths it could not read."""

    sent_bytes: int = 0
    failed: list[str] = field(default_factory=list)


class DeviceLinkChannel:
    """DeviceLink over one mobilebackup2 connection."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, throttle: TransferThrottle
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.throttle = throttle
        writer.transport.set_write_buffer_limits(high=_WRITE_BUFFER_HIGH_WATER)

    # --- session ---------------------------------------------------------------------------------

    async def version_exchange(self) -> None:
        """Announce DL 400; the host must accept before anything else happens."""
        await self._send(["DLMessageVersionExchange", DL_VERSION_MAJOR, DL_VERSION_MINOR])
        reply = await self._receive()
        if reply is None or reply[:2] != ["DLMessageVersionExchange", "DLVersionsOk"]:
            raise DeviceLinkError(f"the host refused DeviceLink version {DL_VERSION_MAJOR}: {reply!r}")
        await self._send(["DLMessageDeviceReady"])

    async def receive_request(self) -> dict[str, Any] | None:
        """The host's next mobilebackup2 message, None once it disconnects."""
        message = await self._receive()
        if message is None or message[0] == "DLMessageDisconnect":
            return None
        if message[0] != "DLMessageProcessMessage" or len(message) < 2 or not isinstance(message[1], dict):
            raise DeviceLinkError(f"expected a DLMessageProcessMessage, got {message[0]!r}")
        return message[1]

    async def send_response(
        self, error_code: int = 0, description: str = "", extra: dict[str, Any] | None = None
    ) -> None:
        """The final answer to the host's message; it ends the host's DL loop."""
        response: dict[str, Any] = {"MessageName": "Response", "ErrorCode": error_code}
        if description:
            response["ErrorDescription"] = description
        response.update(extra or {})
        await self._send(["DLMessageProcessMessage", response])

    # --- host commands ---------------------------------------------------------------------------

    async def create_directory(self, path: str, progress: float) -> None:
        status = await self._call(["DLMessageCreateDirectory", path, {}, progress])
        if not status.ok and status.code != HOST_EEXIST:
            raise DeviceLinkError(f"the host could not create {path}: {status.text} ({status.code})")

    async def free_disk_space(self) -> int:
        status = await self._call(["DLMessageGetFreeDiskSpace"])
        if not status.ok or not isinstance(status.value, int):
            raise DeviceLinkError(f"the host did not report its free space: {status.text} ({status.code})")
        return status.value

    async def purge_disk_space(self, amount: int, urgency: int) -> bool:
        """Ask the host to free `amount` bytes; whether it says it did."""
        return (await self._call(["DLMessagePurgeDiskSpace", amount, urgency])).ok

    async def move_items(self, moves: Mapping[str, str], progress: float) -> None:
        await self._expect_ok(["DLMessageMoveItems", dict(moves), {}, progress], "move files")

    async def remove_items(self, paths: list[str], progress: float) -> None:
        await self._expect_ok(["DLMessageRemoveItems", paths, {}, progress], "remove files")

    async def copy_item(self, source: str, destination: str, progress: float) -> None:
        await self._expect_ok(["DLMessageCopyItem", source, destination, {}, progress, 0], f"copy {source}")

    async def contents_of_directory(self, path: str, progress: float) -> dict[str, Any]:
        status = await self._call(["DLContentsOfDirectory", path, {}, progress])
        if not status.ok or not isinstance(status.value, dict):
            raise DeviceLinkError(f"the host could not list {path}: {status.text} ({status.code})")
        return status.value

    async def command(self, message: list[Any]) -> StatusResponse:
        """Any command array and the host's status, whatever it is (a replayed trace checks nothing)."""
        return await self._call(message)

    async def upload(self, files: Iterable[Upload], progress: float, total_bytes: int) -> UploadResult:
        """Stream `files` to the host (section 4.3). A file whose bytes cannot be read is ended with
        an error block, as a device does, and reported in the result."""
        await self._send(["DLMessageUploadFiles", {}, progress, total_bytes])
        result = UploadResult()
        for upload in files:
            for name in (upload.device_name, upload.file_name):
                encoded = name.encode()
                self.writer.write(_U32.pack(len(encoded)) + encoded)
            try:
                for piece in upload.pieces:
                    if not piece:
                        continue  # an empty data block would read as the end of the file
                    self.writer.write(_BLOCK_HEADER.pack(len(piece) + 1, CODE_FILE_DATA))
                    self.writer.write(piece)
                    result.sent_bytes += len(piece)
                    await self.writer.drain()
                    await self.throttle.pace(len(piece))
            except (OSError, ValueError) as error:
                # BackupAgent2's wording: "Input/output error (5)"
                text = f"{error.strerror} ({error.errno})" if isinstance(error, OSError) and error.errno else str(error)
                message = text.encode()
                self.writer.write(_BLOCK_HEADER.pack(len(message) + 1, CODE_ERROR_REMOTE) + message)
                result.failed.append(upload.device_name)
                continue
            self.writer.write(_BLOCK_HEADER.pack(1, CODE_SUCCESS))
        self.writer.write(_U32.pack(0))
        status = await self._status()
        if not status.ok:
            raise DeviceLinkError(f"the host failed to store uploaded files: {status.text} ({status.code})")
        return result

    async def fetch(self, path: str, progress: float) -> bytes | None:
        """One (small) file from the host, None if it has none."""
        target = io.BytesIO()
        failures = await self.download([path], {path: target}, progress)
        return None if path in failures else target.getvalue()

    async def download(
        self, paths: list[str], targets: Mapping[str, BinaryIO], progress: float
    ) -> dict[str, str]:
        """Have the host send `paths`, each written into `targets[path]`; the paths it could not
        send, with its error text (a missing file is an answer, not a failure)."""
        await self._send(["DLMessageDownloadFiles", paths, {}, progress, 0])
        failures: dict[str, str] = {}
        while True:
            (length,) = _U32.unpack(await self.reader.readexactly(_U32.size))
            if length == 0:
                break
            path = (await self.reader.readexactly(length)).decode()
            target = targets.get(path)
            if target is None:
                raise DeviceLinkError(f"the host sent {path!r}, which was not requested")
            error = await self._receive_file(target)
            if error is not None:
                failures[path] = error
        status = await self._status()
        if not status.ok and not failures:
            raise DeviceLinkError(f"the host failed to send files: {status.text} ({status.code})")
        return failures

    # --- plumbing --------------------------------------------------------------------------------

    async def _receive_file(self, target: BinaryIO) -> str | None:
        """Read data blocks into `target` up to the end marker; the host's error text, if any."""
        while True:
            size, code = _BLOCK_HEADER.unpack(await self.reader.readexactly(_BLOCK_HEADER.size))
            data = await self.reader.readexactly(size - 1) if size > 1 else b""
            if code == CODE_FILE_DATA:
                target.write(data)
                await self.throttle.pace(len(data))
            elif code == CODE_SUCCESS:
                return None
            elif code in (CODE_ERROR_LOCAL, CODE_ERROR_REMOTE):
                return data.decode(errors="replace") or "error"
            else:
                raise DeviceLinkError(f"unknown file-stream code {code:#x}")

    async def _expect_ok(self, message: list[Any], what: str) -> None:
        status = await self._call(message)
        if not status.ok:
            raise DeviceLinkError(f"the host could not {what}: {status.text} ({status.code})")

    async def _call(self, message: list[Any]) -> StatusResponse:
        await self._send(message)
        return await self._status()

    async def _status(self) -> StatusResponse:
        message = await self._receive()
        if message is None or message[0] != "DLMessageStatusResponse" or len(message) != 4:
            raise DeviceLinkError(f"expected a DLMessageStatusResponse, got {message!r}")
        code = message[1]
        if not isinstance(code, int):
            raise DeviceLinkError(f"a status response carries a non-integer code {code!r}")
        # Hosts encode negative codes as uint64 two's complement.
        code = code - (1 << 64) if code >= 1 << 63 else code
        text = message[2] if message[2] != EMPTY_PARAMETER else ""
        return StatusResponse(code, str(text), message[3])

    async def _send(self, message: list[Any]) -> None:
        await write_plist(self.writer, message, binary=True)

    async def _receive(self) -> list[Any] | None:
        message = await read_plist(self.reader)
        if message is None:
            return None
        if not isinstance(message, list) or not message:
            raise FrameError(f"a DeviceLink message is not an array: {message!r}")
        return message
