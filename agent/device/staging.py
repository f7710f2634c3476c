"""Local staging for device files whose category or key is not known yet.

A file arrives named only by its fileID; its domain and path (hence its category) and, in a
device-encrypted backup, its per-file key come with the Manifest.db at the end. Until then
its bytes wait here, encrypted under a key that lives only in this process's memory (a
fresh one per run), so a staging folder left by a crash is unreadable noise and a stolen
host holds nothing. Staged files are deleted as soon as they are stored.

A staged file is a series of records `u32 header ‖ AES-GCM(piece)`, each bound to its position
by its nonce and to its header as associated data. `finish` appends a final record whose
header carries a flag and whose plaintext is the number of records before it, so a file cut
short — even exactly at a record boundary — or damaged is refused when read back, never taken
for a shorter file.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.errors import StorageError

RECORD_LENGTH = struct.Struct(">I")
FINAL_FLAG = 1 << 31  # in a record's header: the sealed record count that ends every finished file
RECORD_COUNT = struct.Struct(">Q")
PREFIX = "coffer-staging-"


@dataclass
class StagedFile:
    path: Path
    number: int
    size: int = 0  # plaintext bytes staged


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned(root: Path) -> int:
    """Delete staging folders of processes that died (kill -9, power loss): their key died with them."""
    removed = 0
    for folder in root.glob(f"{PREFIX}*-*"):
        pid = folder.name.removeprefix(PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


class StagingArea:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        remove_abandoned(root)
        self.directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root))
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._counter = 0
        self._lock = threading.Lock()
        self.peak_bytes = 0
        self._current_bytes = 0

    def new_file(self) -> StagedFile:
        with self._lock:
            self._counter += 1
            number = self._counter
        return StagedFile(self.directory / f"{number:08d}", number)

    def _nonce(self, staged: StagedFile, piece: int) -> bytes:
        return struct.pack(">IQ", staged.number, piece)

    def writer(self, staged: StagedFile) -> StagedWriter:
        return StagedWriter(self, staged)

    def _seal(self, staged: StagedFile, piece: int, data: bytes, *, final: bool = False) -> bytes:
        """One record: its header (length, final flag) is authenticated with the piece it frames."""
        header = RECORD_LENGTH.pack((len(data) + 16) | (FINAL_FLAG if final else 0))
        return header + self._aead.encrypt(self._nonce(staged, piece), data, header)

    def read(self, staged: StagedFile) -> Iterator[bytes]:
        """The staged pieces; a file that was cut short or altered raises StorageError naming it."""
        with open(staged.path, "rb") as handle:
            piece = 0
            while header := handle.read(RECORD_LENGTH.size):
                (word,) = RECORD_LENGTH.unpack(header.rjust(RECORD_LENGTH.size, b"\0"))
                try:
                    plain = self._aead.decrypt(self._nonce(staged, piece), handle.read(word & ~FINAL_FLAG), header)
                except InvalidTag:
                    break
                if word & FINAL_FLAG:
                    if RECORD_COUNT.unpack(plain) == (piece,) and not handle.read(1):
                        return
                    break
                yield plain
                piece += 1
        raise StorageError(
            f"the staged device file {staged.path} is truncated or damaged (the local disk lost data): "
            "run the backup again"
        )

    def discard(self, staged: StagedFile) -> None:
        try:
            size = staged.path.stat().st_size
            staged.path.unlink()
        except FileNotFoundError:
            return
        with self._lock:
            self._current_bytes -= size

    def _account(self, size: int) -> None:
        with self._lock:
            self._current_bytes += size
            self.peak_bytes = max(self.peak_bytes, self._current_bytes)

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class StagedWriter:
    def __init__(self, area: StagingArea, staged: StagedFile) -> None:
        self._area = area
        self._staged = staged
        self._piece = 0
        try:
            self._handle = open(staged.path, "wb")  # noqa: SIM115 - closed in finish()
        except OSError as exc:
            raise StorageError(f"cannot stage a device file in {area.directory}: {exc.strerror}") from exc

    def _append(self, record: bytes) -> None:
        self._piece += 1
        try:
            self._handle.write(record)
        except OSError as exc:
            raise StorageError(f"staging disk {self._area.directory} failed: {exc.strerror}") from exc
        self._area._account(len(record))

    def write(self, data: bytes) -> None:
        self._append(self._area._seal(self._staged, self._piece, data))
        self._staged.size += len(data)

    def finish(self) -> StagedFile:
        try:
            self._append(self._area._seal(self._staged, self._piece, RECORD_COUNT.pack(self._piece), final=True))
        finally:
            self._handle.close()
        return self._staged

    def abort(self) -> None:
        self._handle.close()
        self._area.discard(self._staged)
