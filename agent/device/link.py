"""pymobiledevice3's DeviceLink, answered from Coffer's mirror instead of a backup folder.

The DeviceLink framing, version exchange and loop stay pymobiledevice3's own; only the
host-side file operations are replaced: uploads stream into a `HostFiles` target (the chunk
pipeline or staging), downloads are served from the mirror or the repository, and moves,
removals and listings act on the mirror. Paths are checked with pymobiledevice3's own
`resolve_device_path` rules, so a hostile path is refused exactly as it would be on disk.
Under `--trace` every message both ways, and every file streamed, is recorded (agent.device.trace).
"""

from __future__ import annotations

import ctypes
import errno
import re
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol, cast

from pymobiledevice3.safe_paths import resolve_device_path
from pymobiledevice3.service_connection import ServiceConnection
from pymobiledevice3.services.device_link import (
    BULK_OPERATION_ERROR,
    CODE_ERROR_LOCAL,
    CODE_ERROR_REMOTE,
    CODE_FILE_DATA,
    CODE_FORMAT,
    CODE_SUCCESS,
    ERRNO_TO_DEVICE_ERROR,
    FILE_TRANSFER_TERMINATOR,
    SIZE_FORMAT,
    DeviceLink,
    DLMessage,
)

from agent.device import trace as tracing
from agent.device.mirror import BackupMirror, MirrorError, modification_date
from agent.device.responses import response_error

FRAME_HEADER = struct.calcsize(SIZE_FORMAT) + struct.calcsize(CODE_FORMAT)
DOWNLOAD_FRAME = 32 * 1024  # Apple's DeviceLink BufferSize default, as pymobiledevice3 uses
_FILE_ID = re.compile(r"[0-9a-f]{40}")


class UploadTarget(Protocol):
    async def write(self, data: bytes) -> None: ...
    async def finish(self) -> None: ...
    def abort(self, reason: str) -> None: ...


class HostFiles(Protocol):
    mirror: BackupMirror

    async def begin_upload(self, file_name: str, device_name: str) -> UploadTarget: ...
    def download(self, path: str) -> AsyncIterator[bytes]: ...
    def free_space(self) -> int: ...


class MirrorDeviceLink(DeviceLink):
    def __init__(self, service: ServiceConnection, scratch: Path, host: HostFiles, udid: str) -> None:
        super().__init__(service, scratch)
        self.host = host
        self.mirror = host.mirror
        self.udid = udid
        self._checked_directories: set[str] = set()

    def _checked(self, path: str) -> str:
        # Same refusal rules as pymobiledevice3 on disk: absolute, '..', NUL, reserved names, escaping the root.
        # Its check resolves the path on disk (43 µs): a backup names each of its files three or four times, and
        # a full iPhone has hundreds of thousands. So each directory is checked once, and a file ID (40 hex
        # digits: none of those rules can apply) in a checked directory needs nothing more.
        directory, separator, name = path.rpartition("/")
        if (separator and not directory) or not _FILE_ID.fullmatch(name):
            resolve_device_path(self.root_path, path)  # "/<file ID>" is absolute; other names get the whole check
        elif directory not in self._checked_directories:
            resolve_device_path(self.root_path, path)
            self._checked_directories.add(directory)
        return path

    async def create_directory(self, message: DLMessage) -> None:
        await self._answer(lambda: self.mirror.mkdir(self._checked(cast(str, message[1]))))

    async def _answer(self, change: Callable[[], object]) -> None:
        """Apply a change to the mirror and answer the device: success, or the error a disk would give."""
        try:
            change()
        except MirrorError as exc:
            await self._error_status(exc)
            return
        await self.status_response(0)

    # --- the conversation, as a trace records it ------------------------------------------------
    async def receive_message(self) -> DLMessage:
        # No time-out here, as in every real client: a device may take minutes between two messages (a
        # large file, a locked screen, a passcode prompt). A failed Response becomes the error that says
        # what to do (pymobiledevice3 would raise its raw dictionary).
        message = await super().receive_message()
        if (trace := tracing.active()) is not None and message:
            trace.event("dl", str(message[0]), **{"from": "device"}, **tracing.device_message(trace, message))
        if (
            message
            and message[0] == "DLMessageProcessMessage"
            and isinstance(message[1], dict)
            and message[1].get("MessageName") == "Response"
            and message[1].get("ErrorCode")
        ):
            raise response_error(self.udid, message[1])
        return message

    async def send_process_message(self, message: Any) -> None:
        if (trace := tracing.active()) is not None:
            trace.event("dl", "DLMessageProcessMessage", **{"from": "host"},
                        message=tracing.process_message(trace, dict(message)))
        await super().send_process_message(message)

    async def status_response(self, status_code: int, status_str: str = "", status_dict: Any = None) -> None:
        if (trace := tracing.active()) is not None:
            trace.event("dl", "DLMessageStatusResponse", **{"from": "host"}, code=status_code,
                        text=trace.text(status_str), **tracing.status_value(status_dict))
        await super().status_response(status_code, status_str, status_dict)

    async def disconnect(self) -> None:
        if (trace := tracing.active()) is not None:
            trace.event("dl", "DLMessageDisconnect", **{"from": "host"})
        await super().disconnect()

    def _trace_file(self, side: str, path: str, size: int, started: float, error: str = "", **extra: Any) -> None:
        if (trace := tracing.active()) is not None:
            trace.event("dl", "file", **{"from": side}, name=trace.path(path), size=size,
                        seconds=round(time.monotonic() - started, 4), error=trace.text(error), **extra)

    # --- host-side file operations ----------------------------------------------------------------
    async def upload_files(self, _message: DLMessage) -> None:
        while True:
            device_name = await self._prefixed_recv()
            if not device_name:
                break
            file_name = self._checked(await self._prefixed_recv())
            started, received = time.monotonic(), 0
            target = await self.host.begin_upload(file_name, device_name)
            (size,) = struct.unpack(SIZE_FORMAT, await self._recvall(struct.calcsize(SIZE_FORMAT)))
            (code,) = struct.unpack(CODE_FORMAT, await self._recvall(struct.calcsize(CODE_FORMAT)))
            size -= struct.calcsize(CODE_FORMAT)
            while size and code == CODE_FILE_DATA:
                await target.write(await self._recvall(size))
                received += size
                (size,) = struct.unpack(SIZE_FORMAT, await self._recvall(struct.calcsize(SIZE_FORMAT)))
                (code,) = struct.unpack(CODE_FORMAT, await self._recvall(struct.calcsize(CODE_FORMAT)))
                size -= struct.calcsize(CODE_FORMAT)
            trace = tracing.active()
            device_token = trace.token(device_name) if trace is not None else ""
            if code == CODE_ERROR_REMOTE:
                reason = (await self._recvall(size)).decode(errors="replace")
                self._trace_file("device", file_name, received, started, reason, end=code, device_name=device_token)
                target.abort(f"the device could not send it: {reason}")  # iOS 17+: FileProvider's backup_manifest.db
                continue
            self._trace_file("device", file_name, received, started, end=code, device_name=device_token)
            if code != CODE_SUCCESS:
                target.abort(f"unexpected end code {code}")
                continue
            await target.finish()
        await self.status_response(0)

    async def download_files(self, message: DLMessage) -> None:
        status: dict[str, Any] = {}
        for path in cast(list[str], message[1]):
            encoded = path.encode()
            await self._sendall(struct.pack(SIZE_FORMAT, len(encoded)) + encoded)
            started, sent = time.monotonic(), 0
            try:
                self._checked(path)
                async for piece in self.host.download(path):
                    sent += len(piece)
                    for start in range(0, len(piece), DOWNLOAD_FRAME):
                        frame = piece[start : start + DOWNLOAD_FRAME]
                        header = struct.pack(SIZE_FORMAT, len(frame) + 1) + struct.pack(CODE_FORMAT, CODE_FILE_DATA)
                        await self._sendall(b"".join((header, frame)))  # a piece may be a view (of a chunk read)
                await self._sendall(struct.pack(SIZE_FORMAT, 1) + struct.pack(CODE_FORMAT, CODE_SUCCESS))
                self._trace_file("host", path, sent, started)
            except OSError as exc:
                code = exc.errno if exc.errno is not None else errno.EIO
                text = (exc.strerror or str(exc)).encode()
                self._trace_file("host", path, sent, started, text.decode())
                status[path] = {
                    "DLFileErrorString": text.decode(),
                    "DLFileErrorCode": ctypes.c_uint64(ERRNO_TO_DEVICE_ERROR.get(code, -1)).value,
                }
                await self._sendall(
                    struct.pack(SIZE_FORMAT, len(text) + 1) + struct.pack(CODE_FORMAT, CODE_ERROR_LOCAL) + text
                )
        await self._sendall(FILE_TRANSFER_TERMINATOR)
        if status:
            await self.status_response(BULK_OPERATION_ERROR, "Multi status", status)
        else:
            await self.status_response(0)

    async def contents_of_directory(self, message: DLMessage) -> None:
        try:
            listing = self.mirror.listdir(self._checked(cast(str, message[1])))
        except MirrorError as exc:
            await self._error_status(exc)
            return
        data = {
            name: {
                "DLFileType": "DLFileTypeDirectory" if entry.is_dir else "DLFileTypeRegular",
                "DLFileSize": entry.size,
                "DLFileModificationDate": modification_date(entry),
            }
            for name, entry in listing.items()
        }
        await self.status_response(0, status_dict=data)

    async def get_free_disk_space(self, _message: DLMessage) -> None:
        free = self.host.free_space()
        self._reported_free_space = free
        await self.status_response(0, status_dict=free)

    async def move_items(self, message: DLMessage) -> None:
        def move_all() -> None:
            for source, destination in cast(dict[str, str], message[1]).items():
                self.mirror.move(self._checked(source), self._checked(destination))

        await self._answer(move_all)

    async def copy_item(self, message: DLMessage) -> None:
        await self._answer(
            lambda: self.mirror.copy(self._checked(cast(str, message[1])), self._checked(cast(str, message[2])))
        )

    async def remove_items(self, message: DLMessage) -> None:
        def remove_all() -> None:
            for path in cast(list[str], message[1]):
                self.mirror.remove(self._checked(path))

        await self._answer(remove_all)

    async def _error_status(self, exc: MirrorError) -> None:
        code = ERRNO_TO_DEVICE_ERROR.get(exc.errno or errno.EIO, -1)
        await self.status_response(code, exc.strerror or "error")
