"""The `file` column of Manifest.db: a binary NSKeyedArchiver plist holding one MBFile object
(ios-protocol.md section 6.2). Encoding follows the layout of a real iOS 14 device; decoding is tolerant of
missing optional keys and strict about structure."""

from __future__ import annotations

from plistlib import UID
from typing import Any

from agent.errors import BackupFormatError
from agent.ios.plists import dump_binary, load_plist_dict

MODE_FILE = 0o100644
MODE_DIRECTORY = 0o40755
MODE_SYMLINK = 0o120755
WRAPPED_KEY_SIZE = 44  # u32 LE protection class || 40-byte RFC 3394 wrap of a 32-byte key

_MBFILE_CLASS = {"$classname": "MBFile", "$classes": ["MBFile", "NSObject"]}
_MUTABLE_DATA_CLASS = {"$classname": "NSMutableData", "$classes": ["NSMutableData", "NSData", "NSObject"]}


def encode_mbfile(
    *,
    relative_path: str,
    mode: int,
    size: int = 0,
    mtime: int = 0,
    ctime: int | None = None,
    birth: int | None = None,
    uid: int = 501,
    gid: int = 501,
    inode: int = 0,
    protection_class: int = 0,
    flags: int = 0,
    wrapped_key: bytes | None = None,
    target: str | None = None,
    extended_attributes: bytes | None = None,
    digest: bytes | None = None,
) -> bytes:
    """One MBFile archive. Times are Unix seconds; `ctime`/`birth` default to `mtime`. `wrapped_key` (encrypted
    backups only) is the 44-byte EncryptionKey, `target` the symlink target, `extended_attributes` the bplist of
    xattrs and `digest` the 20-byte SHA-1 some InstallDomain rows carry.

    Object order is that of the real sample: $null, the MBFile, RelativePath, [EncryptionKey, its NSMutableData
    class], then the optional objects in key order, and the MBFile class last."""
    if wrapped_key is not None and len(wrapped_key) != WRAPPED_KEY_SIZE:
        raise ValueError(f"an EncryptionKey is {WRAPPED_KEY_SIZE} bytes, got {len(wrapped_key)}")
    objects: list[Any] = ["$null", None, relative_path]
    record: dict[str, Any] = {
        "$class": None,  # filled in last: the class object follows every member object
        "RelativePath": UID(2),
        "LastModified": mtime,
        "LastStatusChange": mtime if ctime is None else ctime,
        "Birth": mtime if birth is None else birth,
        "Size": size,
        "Mode": mode,
        "UserID": uid,
        "GroupID": gid,
        "InodeNumber": inode,
        "Flags": flags,
        "ProtectionClass": protection_class,
    }
    if wrapped_key is not None:
        record["EncryptionKey"] = UID(len(objects))
        objects.append({"NS.data": wrapped_key, "$class": UID(len(objects) + 1)})
        objects.append(_MUTABLE_DATA_CLASS)
    for key, value in (("ExtendedAttributes", extended_attributes), ("Digest", digest), ("Target", target)):
        if value is not None:
            record[key] = UID(len(objects))
            objects.append(value)
    record["$class"] = UID(len(objects))
    objects.append(_MBFILE_CLASS)
    objects[1] = record
    return dump_binary(
        {"$version": 100000, "$archiver": "NSKeyedArchiver", "$top": {"root": UID(1)}, "$objects": objects}
    )


def decode_mbfile(blob: bytes) -> dict[str, Any]:
    """Decode an MBFile archive into the keyword arguments of `encode_mbfile` (so
    `encode_mbfile(**decode_mbfile(b))` rebuilds an equivalent record). Missing optional keys decode to their
    defaults; anything structurally wrong raises BackupFormatError."""
    archive = load_plist_dict(blob, "an MBFile record of Manifest.db")
    objects = archive.get("$objects")
    top = archive.get("$top")
    if not isinstance(objects, list) or not isinstance(top, dict):
        raise BackupFormatError("an MBFile record of Manifest.db is not an NSKeyedArchiver archive")
    record = _resolve(objects, top.get("root"), dict, "root")
    relative_path = _resolve(objects, record.get("RelativePath"), str, "RelativePath")
    mtime = _integer(record, "LastModified", 0)
    wrapped_key = None
    if "EncryptionKey" in record:
        key_object = _resolve(objects, record["EncryptionKey"], dict, "EncryptionKey")
        wrapped_key = key_object.get("NS.data")
        if not isinstance(wrapped_key, bytes) or len(wrapped_key) != WRAPPED_KEY_SIZE:
            raise BackupFormatError(f"an MBFile EncryptionKey is not {WRAPPED_KEY_SIZE} bytes of data")
    return {
        "relative_path": relative_path,
        "mode": _integer(record, "Mode", 0),
        "size": _integer(record, "Size", 0),
        "mtime": mtime,
        "ctime": _integer(record, "LastStatusChange", mtime),
        "birth": _integer(record, "Birth", mtime),
        "uid": _integer(record, "UserID", 0),
        "gid": _integer(record, "GroupID", 0),
        "inode": _integer(record, "InodeNumber", 0),
        "protection_class": _integer(record, "ProtectionClass", 0),
        "flags": _integer(record, "Flags", 0),
        "wrapped_key": wrapped_key,
        "target": _optional(objects, record, "Target", str),
        "extended_attributes": _optional(objects, record, "ExtendedAttributes", bytes),
        "digest": _optional(objects, record, "Digest", bytes),
    }


def _resolve(objects: list[Any], reference: Any, kind: type, name: str) -> Any:
    if not isinstance(reference, UID) or not 0 < reference.data < len(objects):
        raise BackupFormatError(f"an MBFile record has a dangling {name} reference")
    value = objects[reference.data]
    if not isinstance(value, kind):
        raise BackupFormatError(f"an MBFile {name} is a {type(value).__name__}, expected {kind.__name__}")
    return value


def _optional(objects: list[Any], record: dict[str, Any], key: str, kind: type) -> Any:
    return _resolve(objects, record[key], kind, key) if key in record else None


# What a binary plist integer can hold when written back (plistlib writes -2^63 .. 2^64 - 1): a record decoded here
# is re-encoded on the re-keyed restore path, so anything wider would only fail there, after the import.
_INTEGER_RANGE = range(-(1 << 63), 1 << 64)


def _integer(record: dict[str, Any], key: str, default: int) -> int:
    value = record.get(key, default)
    # bool is an int subclass but never a valid field value here
    if not isinstance(value, int) or isinstance(value, bool):
        raise BackupFormatError(f"an MBFile {key} is not an integer")
    if value not in _INTEGER_RANGE:
        raise BackupFormatError(f"an MBFile {key} ({value}) does not fit in 64 bits")
    return value
