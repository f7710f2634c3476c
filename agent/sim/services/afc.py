"""com.apple.afc, device side: the media area hosts see through AFC (ios-protocol.md section 3.3).

Backups use it for the sync lock file and the iTunes files of Info.plist; restores write
`/iTunesRestore/RestoreApplications.plist`. The media area lives in memory, one per device.
"""

from __future__ import annotations

import asyncio
import posixpath
import struct
import time
from dataclasses import dataclass, field
from enum import IntEnum

AFC_MAGIC = b"CFA6LPAA"
_HEADER = struct.Struct("<8sQQQQ")
_U64 = struct.Struct("<Q")
_U64_PAIR = struct.Struct("<QQ")
MAX_READ_SIZE = 4 * 1024 * 1024
LOCK_SHARED, LOCK_EXCLUSIVE, LOCK_UNLOCK = 1, 2, 8  # low bits of FILE_LOCK's op; 4 (non-blocking) is implied
_READ_ONLY, _READ_WRITE, _WRITE_ONLY, _WRITE_READ, _APPEND, _APPEND_READ = 1, 2, 3, 4, 5, 6


class Opcode(IntEnum):
    STATUS = 0x01
    DATA = 0x02
    READ_DIR = 0x03
    REMOVE_PATH = 0x08
    MAKE_DIR = 0x09
    GET_FILE_INFO = 0x0A
    GET_DEVINFO = 0x0B
    FILE_OPEN = 0x0D
    FILE_OPEN_RES = 0x0E
    READ = 0x0F
    WRITE = 0x10
    FILE_CLOSE = 0x14
    FILE_LOCK = 0x1B


class Status(IntEnum):
    SUCCESS = 0
    INVALID_ARG = 7
    OBJECT_NOT_FOUND = 8
    OBJECT_IS_DIR = 9
    PERM_DENIED = 10
    OP_NOT_SUPPORTED = 15
    OP_WOULD_BLOCK = 19
    DIR_NOT_EMPTY = 33


class AfcFailure(Exception):
    """An operation fails with an AFC status; the connection goes on."""

    def __init__(self, status: Status) -> None:
        super().__init__(status.name)
        self.status = status


@dataclass
class MediaNode:
    """A file (`data` is not None) or a directory of the media area."""

    data: bytearray | None
    mtime_ns: int = field(default_factory=time.time_ns)
    birth_ns: int = field(default_factory=time.time_ns)


@dataclass
class _Lock:
    exclusive: bool
    holders: set[object]


class MediaStore:
    """The device's AFC-visible filesystem (`/private/var/mobile/Media` on a phone)."""

    def __init__(self) -> None:
        self.nodes: dict[str, MediaNode] = {"/": MediaNode(None)}
        self._locks: dict[str, _Lock] = {}
        for directory in ("/Books", "/DCIM", "/Downloads", "/Recordings", "/iTunes_Control/iTunes"):
            self.make_dirs(directory)
        self.nodes["/iTunes_Control/iTunes/iTunesPrefs"] = MediaNode(
            bytearray(b"iTunesPrefs\x00" + bytes(52))
        )

    @staticmethod
    def normalise(path: str) -> str:
        return posixpath.normpath("/" + path.lstrip("/"))

    def node(self, path: str) -> MediaNode:
        node = self.nodes.get(self.normalise(path))
        if node is None:
            raise AfcFailure(Status.OBJECT_NOT_FOUND)
        return node

    def children(self, path: str) -> list[str]:
        directory = self.normalise(path)
        prefix = directory.rstrip("/") + "/"
        return sorted(
            name[len(prefix) :]
            for name in self.nodes
            if name.startswith(prefix) and name != directory and "/" not in name[len(prefix) :]
        )

    def make_dirs(self, path: str) -> None:
        current = ""
        for part in self.normalise(path).strip("/").split("/"):
            current += "/" + part
            node = self.nodes.setdefault(current, MediaNode(None))
            if node.data is not None:
                raise AfcFailure(Status.INVALID_ARG)

    def open_file(self, path: str, create: bool, truncate: bool) -> MediaNode:
        path = self.normalise(path)
        node = self.nodes.get(path)
        if node is None:
            parent = self.nodes.get(posixpath.dirname(path))
            if not create or parent is None or parent.data is not None:
                raise AfcFailure(Status.OBJECT_NOT_FOUND)
            node = self.nodes[path] = MediaNode(bytearray())
        if node.data is None:
            raise AfcFailure(Status.OBJECT_IS_DIR)
        if truncate:
            del node.data[:]
            node.mtime_ns = time.time_ns()
        return node

    def remove(self, path: str) -> None:
        path = self.normalise(path)
        self.node(path)
        if path == "/" or self.children(path):
            raise AfcFailure(Status.DIR_NOT_EMPTY)
        del self.nodes[path]

    def lock(self, path: str, holder: object, operation: int) -> None:
        """flock(2) on `path` for `holder`; a conflicting lock gives OP_WOULD_BLOCK (always non-blocking)."""
        current = self._locks.get(path)
        if operation & LOCK_UNLOCK:
            if current is not None:
                current.holders.discard(holder)
                if not current.holders:
                    del self._locks[path]
            return
        exclusive = bool(operation & LOCK_EXCLUSIVE)
        if current is not None and current.holders - {holder} and (exclusive or current.exclusive):
            raise AfcFailure(Status.OP_WOULD_BLOCK)
        if current is None or current.holders <= {holder}:
            self._locks[path] = _Lock(exclusive, {holder})
        else:
            current.holders.add(holder)

    def release_all(self, holders: set[object]) -> None:
        """Drop every lock a closed file or connection held."""
        for path in list(self._locks):
            lock = self._locks[path]
            lock.holders -= holders
            if not lock.holders:
                del self._locks[path]


@dataclass
class _OpenFile:
    path: str
    node: MediaNode
    writable: bool
    readable: bool
    append: bool
    position: int = 0


class AfcSession:
    """One AFC connection: its open files, answering one packet at a time."""

    def __init__(self, store: MediaStore, model: str, capacity_bytes: int) -> None:
        self.store = store
        self.model = model
        self.capacity_bytes = capacity_bytes
        self.files: dict[int, _OpenFile] = {}
        self._next_handle = 1

    def handle(self, operation: int, payload: bytes) -> tuple[Opcode, bytes]:
        """The reply (opcode, payload) to one request."""
        try:
            return self._dispatch(operation, payload)
        except AfcFailure as failure:
            return Opcode.STATUS, _U64.pack(failure.status)
        except (struct.error, UnicodeDecodeError, IndexError):
            return Opcode.STATUS, _U64.pack(Status.INVALID_ARG)

    def close(self) -> None:
        """The connection ended: its files close and their locks go."""
        self.store.release_all({(id(self), handle) for handle in self.files})
        self.files.clear()

    def _dispatch(self, operation: int, payload: bytes) -> tuple[Opcode, bytes]:
        if operation == Opcode.GET_FILE_INFO:
            return Opcode.DATA, self._file_info(_path(payload))
        if operation == Opcode.FILE_OPEN:
            return Opcode.FILE_OPEN_RES, _U64.pack(
                self._open(_U64.unpack_from(payload)[0], _path(payload[8:]))
            )
        if operation == Opcode.READ:
            handle, size = _U64_PAIR.unpack_from(payload)
            return Opcode.DATA, self._read(handle, min(size, MAX_READ_SIZE))
        if operation == Opcode.WRITE:
            self._write(_U64.unpack_from(payload)[0], payload[8:])
        elif operation == Opcode.FILE_CLOSE:
            self._close(_U64.unpack_from(payload)[0])
        elif operation == Opcode.FILE_LOCK:
            handle, lock_operation = _U64_PAIR.unpack_from(payload)
            self.store.lock(self._file(handle).path, (id(self), handle), lock_operation)
        elif operation == Opcode.MAKE_DIR:
            self.store.make_dirs(_path(payload))
        elif operation == Opcode.REMOVE_PATH:
            self.store.remove(_path(payload))
        elif operation == Opcode.READ_DIR:
            if self.store.node(_path(payload)).data is not None:
                raise AfcFailure(Status.INVALID_ARG)
            return Opcode.DATA, _nul_list([".", "..", *self.store.children(_path(payload))])
        elif operation == Opcode.GET_DEVINFO:
            free = self.capacity_bytes // 3
            return Opcode.DATA, _nul_list([
                "Model", self.model, "FSTotalBytes", str(self.capacity_bytes),
                "FSFreeBytes", str(free), "FSBlockSize", "4096",
            ])  # fmt: skip
        else:
            raise AfcFailure(Status.OP_NOT_SUPPORTED)
        return Opcode.STATUS, _U64.pack(Status.SUCCESS)

    def _file_info(self, path: str) -> bytes:
        node = self.store.node(path)
        if node.data is None:
            kind, size, links = "S_IFDIR", 64, 2 + len(self.store.children(path))
        else:
            kind, size, links = "S_IFREG", len(node.data), 1
        return _nul_list([
            "st_size", str(size), "st_blocks", str((size + 511) // 512), "st_nlink", str(links),
            "st_ifmt", kind, "st_mtime", str(node.mtime_ns), "st_birthtime", str(node.birth_ns),
        ])  # fmt: skip

    def _open(self, mode: int, path: str) -> int:
        if mode not in range(_READ_ONLY, _APPEND_READ + 1):
            raise AfcFailure(Status.INVALID_ARG)
        node = self.store.open_file(
            path, create=mode != _READ_ONLY, truncate=mode in (_WRITE_ONLY, _WRITE_READ)
        )
        handle = self._next_handle
        self._next_handle += 1
        self.files[handle] = _OpenFile(
            path=self.store.normalise(path),
            node=node,
            writable=mode != _READ_ONLY,
            readable=mode in (_READ_ONLY, _READ_WRITE, _WRITE_READ, _APPEND_READ),
            append=mode in (_APPEND, _APPEND_READ),
        )
        return handle

    def _file(self, handle: int) -> _OpenFile:
        open_file = self.files.get(handle)
        if open_file is None:
            raise AfcFailure(Status.INVALID_ARG)
        return open_file

    def _read(self, handle: int, size: int) -> bytes:
        open_file = self._file(handle)
        if not open_file.readable:
            raise AfcFailure(Status.PERM_DENIED)
        assert open_file.node.data is not None
        chunk = bytes(open_file.node.data[open_file.position : open_file.position + size])
        open_file.position += len(chunk)
        return chunk

    def _write(self, handle: int, data: bytes) -> None:
        open_file = self._file(handle)
        if not open_file.writable:
            raise AfcFailure(Status.PERM_DENIED)
        content = open_file.node.data
        assert content is not None
        if open_file.append:
            open_file.position = len(content)
        content[open_file.position : open_file.position + len(data)] = data
        open_file.position += len(data)
        open_file.node.mtime_ns = time.time_ns()

    def _close(self, handle: int) -> None:
        self._file(handle)
        self.store.release_all({(id(self), handle)})
        del self.files[handle]


def _path(payload: bytes) -> str:
    return payload.split(b"\x00", 1)[0].decode("utf-8")


def _nul_list(items: list[str]) -> bytes:
    return b"".join(item.encode("utf-8") + b"\x00" for item in items)


async def serve_afc(session: AfcSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer AFC packets for `session` until the host closes the connection."""
    try:
        while True:
            try:
                header = await reader.readexactly(_HEADER.size)
            except asyncio.IncompleteReadError:
                return
            magic, entire_length, _this_length, packet_num, operation = _HEADER.unpack(header)
            if magic != AFC_MAGIC or entire_length < _HEADER.size:
                return
            payload = await reader.readexactly(entire_length - _HEADER.size)
            reply_op, reply = session.handle(operation, payload)
            length = _HEADER.size + len(reply)
            # DATA replies carry their payload after the header; the others count it in this_length.
            this_length = _HEADER.size if reply_op == Opcode.DATA else length
            writer.write(_HEADER.pack(AFC_MAGIC, length, this_length, packet_num, reply_op) + reply)
            await writer.drain()
    finally:
        session.close()
