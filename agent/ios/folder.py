"""A backup folder on disk (the `<UDID>/` directory of ios-protocol.md section 6.1): opening one as Finder,
iTunes or pymobiledevice3 wrote it (encrypted or not) with every row checked, streaming file contents, and
writing folders back: byte-exact, decrypted, or a subset of the rows."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from agent.errors import BackupFormatError, WrongSecretError
from agent.ios.encryption import (
    ClassKeys,
    Keybag,
    decrypt_manifest_db,
    decrypt_stream,
    encrypt_manifest_db,
    encrypt_stream,
    encrypted_size,
    unwrap_file_key,
)
from agent.ios.identity import DeviceIdentity
from agent.ios.manifest_db import ManifestRow, iter_manifest_rows, manifest_db_bytes, write_atomically
from agent.ios.plists import PLIST_WRITE_ERRORS, dump_binary, load_plist_dict
from agent.ios.records import FileRecord, PackedRecords
from agent.ios.safety import CheckedRows, SkippedEntry, file_id_problem, iter_checked_rows
from agent.storage.direct_io import DirectWriter

INFO_PLIST = "Info.plist"
STATUS_PLIST = "Status.plist"
MANIFEST_PLIST = "Manifest.plist"
MANIFEST_DB = "Manifest.db"
METADATA_FILES = (INFO_PLIST, STATUS_PLIST, MANIFEST_PLIST, MANIFEST_DB)
PIECE_SIZE = 1 << 20  # larger pieces cost more CPU: a chunk is no longer in cache when it is hashed and compressed
_PARTIAL_SUFFIX = ".partial"
_HEX_DIGITS = frozenset("0123456789abcdef")


@dataclass
class BackupFolder:
    """An opened backup folder. The plists are kept as raw bytes for byte-exact export, next to their parsed
    dictionaries. Manifest.db is not kept (on a device of many files it is large): `read_manifest_db` reads it
    again, checked against the digest taken when the folder was opened. `records` are the usable rows,
    `skipped` the rows refused with a reason, `warnings` the oddities that did not stop a row. `other_files`
    are further top-level files to carry along on export."""

    path: Path
    info_plist: bytes
    status_plist: bytes
    manifest_plist: bytes
    info: dict[str, Any]
    status: dict[str, Any]
    manifest: dict[str, Any]
    manifest_db_digest: bytes  # SHA-256 of Manifest.db as stored (encrypted or not)
    class_keys: ClassKeys | None
    device: DeviceIdentity
    records: PackedRecords = field(default_factory=PackedRecords)
    skipped: list[SkippedEntry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    other_files: list[str] = field(default_factory=list)
    _blob_directories: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)
    _root: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._root = os.fspath(self.path)

    @property
    def is_encrypted(self) -> bool:
        return self.class_keys is not None

    def blob_path(self, record: FileRecord) -> str:
        """Where a record's blob lies, as a string: a Path join parses both sides, and an import asks three
        times per file (a tenth of its time per file went into pathlib)."""
        return f"{self._root}/{record.blob_name}"

    @classmethod
    def open(cls, path: Path, password: str | None = None) -> BackupFolder:
        """Open and check a backup folder. For an encrypted backup the password is checked first, before any
        other file is read: none given, or a wrong one, raises WrongSecretError. Damaged metadata raises
        BackupFormatError naming the file; unusable rows land in `skipped`."""
        if not path.is_dir():
            raise BackupFormatError(f"{path} is not a backup folder (not a directory)")
        manifest_plist = _read_metadata(path, MANIFEST_PLIST)
        manifest = load_plist_dict(manifest_plist, str(path / MANIFEST_PLIST))
        decrypted_manifest_plist(manifest_plist, str(path / MANIFEST_PLIST))  # what `export --decrypt` will need
        class_keys = _unlock(path, manifest, password)
        info_plist = _read_metadata(path, INFO_PLIST)
        status_plist = _read_metadata(path, STATUS_PLIST)
        info = load_plist_dict(info_plist, str(path / INFO_PLIST))
        status = load_plist_dict(status_plist, str(path / STATUS_PLIST))
        stored_db = _read_metadata(path, MANIFEST_DB)
        plaintext_db = stored_db
        if class_keys is not None:
            manifest_key = manifest.get("ManifestKey")
            if not isinstance(manifest_key, bytes):
                raise BackupFormatError(f"{path / MANIFEST_PLIST} is encrypted but has no ManifestKey")
            try:
                plaintext_db = decrypt_manifest_db(class_keys, manifest_key, stored_db)
            except BackupFormatError as error:
                raise BackupFormatError(f"{path / MANIFEST_DB} cannot be decrypted: {error}") from error
        folder = cls(
            path=path,
            info_plist=info_plist,
            status_plist=status_plist,
            manifest_plist=manifest_plist,
            info=info,
            status=status,
            manifest=manifest,
            manifest_db_digest=hashlib.sha256(stored_db).digest(),
            class_keys=class_keys,
            device=DeviceIdentity.from_plists(info, manifest),
        )
        if password is not None and class_keys is None:
            folder.warnings.append("a backup password was given, but this backup is not encrypted")
        folder._load_rows(iter_manifest_rows(plaintext_db, str(path / MANIFEST_DB)))
        folder._scan_top_level()
        return folder

    def take_records(self) -> Iterator[FileRecord]:
        """The usable rows, handed over one by one: the folder keeps none, so a caller that drops each row once
        it is stored holds only the rows still to store (on a device of many files, the bulk of import
        memory)."""
        return self.records.drain()

    def read_manifest_db(self) -> bytes:
        """Manifest.db as stored (encrypted or not), the same bytes the records were read from: a Manifest.db
        changed since `open` raises BackupFormatError instead of being paired with rows it does not hold."""
        data = _read_metadata(self.path, MANIFEST_DB)
        if hashlib.sha256(data).digest() != self.manifest_db_digest:
            raise BackupFormatError(
                f"{self.path / MANIFEST_DB} changed while Coffer was reading the backup: "
                "let the backup finish, then run the command again"
            )
        return data

    def open_plaintext(self, record: FileRecord, *, reuse_buffer: bool = False) -> Iterator[bytes | memoryview]:
        """A file's plaintext in pieces of up to PIECE_SIZE, decrypted if the backup is encrypted. Raises
        BackupFormatError if the blob no longer matches its recorded size.

        With `reuse_buffer`, the pieces of an unencrypted backup are views of one buffer that the next piece
        overwrites (no allocation per piece): a caller that keeps a piece past the next one must copy it."""
        if not record.is_file:
            raise ValueError(f"{record.domain}/{record.relative_path} is not a regular file")
        blob_path = self.blob_path(record)
        try:
            # O_NOFOLLOW: a blob swapped for a symlink after `open` checked it is refused, not followed.
            descriptor = os.open(blob_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as error:
            raise BackupFormatError(f"cannot read {blob_path}: {error.strerror}") from error
        with open(descriptor, "rb", buffering=0) as handle:
            pieces: Iterator[bytes | memoryview] = (
                _read_into_one_buffer(handle, record.size) if reuse_buffer else iter(lambda: handle.read(PIECE_SIZE), b"")
            )
            if self.class_keys is not None:
                if record.wrapped_key is None:
                    raise BackupFormatError(f"{record.domain}/{record.relative_path} has no per-file key")
                file_key = unwrap_file_key(self.class_keys, record.wrapped_key)
                yield from decrypt_stream(file_key, pieces, record.size)
                return
            produced = 0
            for piece in pieces:
                produced += len(piece)
                if produced > record.size:
                    break
                yield piece
            if produced != record.size:
                raise BackupFormatError(
                    f"{blob_path} changed: it no longer has its recorded size of {record.size} bytes"
                )

    def _load_rows(self, rows: Iterable[ManifestRow]) -> None:
        checked = CheckedRows()
        unusable: list[SkippedEntry] = []
        for record in iter_checked_rows(rows, checked):
            usable, reason = self._check_file(record) if record.is_file else (record, "")
            if usable is None:
                unusable.append(SkippedEntry(record.file_id, record.domain, record.relative_path, reason))
            else:
                self.records.append(usable)
        self.skipped.extend(checked.skipped + unusable)
        self.warnings.extend(checked.warnings)

    def _check_file(self, record: FileRecord) -> tuple[FileRecord | None, str]:
        expected = record.size
        if self.class_keys is not None:
            if record.wrapped_key is None:
                return None, "encrypted backup row without an EncryptionKey"
            try:
                unwrap_file_key(self.class_keys, record.wrapped_key)
            except BackupFormatError as error:
                return None, str(error)
            expected = encrypted_size(record.size)
        if not self._is_blob_directory(record.file_id[:2]):
            return None, "blob directory is missing or is not a real directory"
        try:
            status = os.lstat(self.blob_path(record))
        except FileNotFoundError:
            return None, "blob missing from the backup folder"
        except OSError as error:
            return None, f"blob unreadable: {error.strerror}"
        if not stat.S_ISREG(status.st_mode):
            return None, "blob is not a regular file"
        if status.st_size != expected:
            shape = "shorter" if status.st_size < expected else "longer"
            return (
                None,
                f"blob is {shape} than its recorded size ({status.st_size} bytes, expected {expected})",
            )
        return record, ""

    def _is_blob_directory(self, name: str) -> bool:
        """`xx/` must be a directory inside the folder, not a symlink leading elsewhere (checked once)."""
        if name not in self._blob_directories:
            try:
                self._blob_directories[name] = stat.S_ISDIR(os.lstat(self.path / name).st_mode)
            except OSError:
                self._blob_directories[name] = False
        return self._blob_directories[name]

    def _scan_top_level(self) -> None:
        for entry in sorted(self.path.iterdir()):
            name = entry.name
            if name in METADATA_FILES:
                continue
            if len(name) == 2 and set(name) <= _HEX_DIGITS and entry.is_dir() and not entry.is_symlink():
                continue
            if entry.is_file() and not entry.is_symlink():
                self.other_files.append(name)
            else:
                self.warnings.append(f"{entry}: not a regular file or blob directory; ignored")


class BackupWriter:
    """Writes a backup folder: blobs with `write_file` (each `xx/<fileID>` appears atomically), extra top-level
    files with `write_other_file`, then `finish` writes Manifest.db, Manifest.plist, Info.plist and Status.plist
    last, so a folder with a Status.plist is complete. With `class_keys`, each file is encrypted with its
    record's original per-file key, which reproduces the device's ciphertext byte for byte."""

    def __init__(
        self,
        path: Path,
        *,
        info_plist: bytes,
        status_plist: bytes,
        manifest_plist: bytes,
        manifest_db_bytes: bytes,
        class_keys: ClassKeys | None = None,
    ) -> None:
        self.path = path
        self._metadata = {
            MANIFEST_DB: manifest_db_bytes,
            MANIFEST_PLIST: manifest_plist,
            INFO_PLIST: info_plist,
            STATUS_PLIST: status_plist,
        }
        self._class_keys = class_keys
        self._made_folders: set[str] = set()  # the `xx/` folders made so far (one mkdir each, not one per file)
        path.mkdir(parents=True, exist_ok=True)

    @classmethod
    def decrypted(
        cls,
        path: Path,
        *,
        info_plist: bytes,
        status_plist: bytes,
        manifest_plist: bytes,
        plaintext_manifest_db: bytes,
    ) -> BackupWriter:
        """A writer for a decrypted copy: Manifest.plist says IsEncrypted false and has no ManifestKey,
        Manifest.db and every blob are plaintext."""
        return cls(
            path,
            info_plist=info_plist,
            status_plist=status_plist,
            manifest_plist=decrypted_manifest_plist(manifest_plist),
            manifest_db_bytes=plaintext_manifest_db,
        )

    @classmethod
    def subset(
        cls,
        path: Path,
        *,
        info_plist: bytes,
        status_plist: bytes,
        manifest_plist: bytes,
        records: Iterable[FileRecord],
        class_keys: ClassKeys | None = None,
        decrypt: bool = False,
    ) -> BackupWriter:
        """A writer for a folder holding only `records`: Manifest.db is rebuilt from them. If the source was
        encrypted, give its `class_keys`: the new Manifest.db is encrypted with the original ManifestKey and
        the blobs with their original keys, unless `decrypt` asks for a plaintext folder."""
        plaintext_db = manifest_db_bytes(records)
        if decrypt:
            return cls.decrypted(
                path,
                info_plist=info_plist,
                status_plist=status_plist,
                manifest_plist=manifest_plist,
                plaintext_manifest_db=plaintext_db,
            )
        manifest = load_plist_dict(manifest_plist, MANIFEST_PLIST)
        if not manifest.get("IsEncrypted"):
            return cls(
                path,
                info_plist=info_plist,
                status_plist=status_plist,
                manifest_plist=manifest_plist,
                manifest_db_bytes=plaintext_db,
            )
        manifest_key = manifest.get("ManifestKey")
        if class_keys is None or not isinstance(manifest_key, bytes):
            raise BackupFormatError("an encrypted subset needs the backup's class keys and its ManifestKey")
        return cls(
            path,
            info_plist=info_plist,
            status_plist=status_plist,
            manifest_plist=manifest_plist,
            manifest_db_bytes=encrypt_manifest_db(class_keys, manifest_key, plaintext_db),
            class_keys=class_keys,
        )

    def write_file(self, record: FileRecord, plaintext_pieces: Iterable[bytes]) -> None:
        """Write one regular file's blob from its plaintext; the plaintext must have the recorded size."""
        if not record.is_file:
            raise ValueError(f"{record.domain}/{record.relative_path} is not a regular file")
        problem = file_id_problem(record.file_id)
        if problem:
            raise BackupFormatError(f"cannot write {record.file_id!r}: {problem}")
        counted = _Counter(plaintext_pieces)
        pieces: Iterable[bytes] = counted
        if self._class_keys is not None:
            if record.wrapped_key is None:
                raise BackupFormatError(
                    f"{record.domain}/{record.relative_path} has no per-file key to encrypt with"
                )
            pieces = encrypt_stream(unwrap_file_key(self._class_keys, record.wrapped_key), counted)
        target = self.path / record.blob_name
        if record.file_id[:2] not in self._made_folders:
            target.parent.mkdir(exist_ok=True)  # two threads may both make it: exist_ok
            self._made_folders.add(record.file_id[:2])
        partial = target.with_name(target.name + _PARTIAL_SUFFIX)
        try:
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                # Restored files go past the page cache: written once, read later if ever (storage/direct_io.py).
                with DirectWriter(descriptor, record.size) as handle:
                    for piece in pieces:
                        handle.write(piece)
            finally:
                os.close(descriptor)
            if counted.total != record.size:
                raise BackupFormatError(
                    f"{record.domain}/{record.relative_path}: got {counted.total} bytes, "
                    f"the manifest records {record.size}"
                )
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def write_other_file(self, name: str, data: bytes) -> None:
        """Write an extra top-level file (one `BackupFolder.other_files` entry)."""
        if name in METADATA_FILES or "/" in name or "\x00" in name or name in ("", ".", ".."):
            raise BackupFormatError(f"refusing to write a top-level file named {name!r}")
        write_atomically(self.path / name, data)

    def finish(self) -> None:
        """Write the metadata files; Status.plist comes last."""
        for name, data in self._metadata.items():
            write_atomically(self.path / name, data)


def decrypted_manifest_plist(manifest_plist: bytes, name: str = MANIFEST_PLIST) -> bytes:
    """Manifest.plist for a decrypted copy: IsEncrypted false, no ManifestKey, everything else unchanged."""
    manifest = load_plist_dict(manifest_plist, name)
    manifest["IsEncrypted"] = False
    manifest.pop("ManifestKey", None)
    try:
        return dump_binary(manifest)
    except PLIST_WRITE_ERRORS as error:
        # a binary plist can hold what plistlib cannot write back: non-string keys, integers beyond 64 bits
        raise BackupFormatError(f"{name} holds a value that cannot be written back into a property list ({error})") from error


class _ReadBuffers(threading.local):
    def __init__(self) -> None:
        self.free: bytearray | None = None


_read_buffers = _ReadBuffers()


def _read_into_one_buffer(handle: BinaryIO, expected_size: int) -> Iterator[memoryview]:
    # One piece-sized buffer per thread, reused file after file: a fresh megabyte per large file went through
    # mmap (fresh pages) or grew malloc's arenas. A second file read in the same thread at the same time gets
    # a buffer of its own. Reads stop at one byte more than expected, so a file that grew still ends in one read.
    buffer = _read_buffers.free or bytearray(PIECE_SIZE)
    _read_buffers.free = None
    try:
        with memoryview(buffer)[: min(PIECE_SIZE, expected_size + 1)] as view:
            while count := handle.readinto(view):
                yield view[:count]
    finally:
        _read_buffers.free = buffer


class _Counter:
    """Passes pieces through, counting their bytes."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = pieces
        self.total = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces:
            self.total += len(piece)
            yield piece


def _read_metadata(path: Path, name: str) -> bytes:
    file_path = path / name
    if file_path.is_symlink() or (file_path.exists() and not file_path.is_file()):
        raise BackupFormatError(f"{file_path} is not a regular file")
    try:
        return file_path.read_bytes()
    except FileNotFoundError:
        hint = (
            " (backups of iOS 9 and older use Manifest.mbdb, which Coffer does not read)"
            if name == MANIFEST_DB
            else ""
        )
        raise BackupFormatError(
            f"{file_path} is missing: {path} is not a complete backup folder{hint}"
        ) from None
    except OSError as error:
        raise BackupFormatError(f"cannot read {file_path}: {error.strerror}") from error


def _unlock(path: Path, manifest: dict[str, Any], password: str | None) -> ClassKeys | None:
    encrypted = manifest.get("IsEncrypted", False)
    if not isinstance(encrypted, bool):
        raise BackupFormatError(f"{path / MANIFEST_PLIST}: IsEncrypted is not a boolean")
    if not encrypted:
        return None
    if password is None:
        raise WrongSecretError("this backup is encrypted: give its password with --backup-password-file")
    keybag_data = manifest.get("BackupKeyBag")
    if not isinstance(keybag_data, bytes):
        raise BackupFormatError(f"{path / MANIFEST_PLIST} is encrypted but has no BackupKeyBag")
    return Keybag.parse(keybag_data).unlock(password)
