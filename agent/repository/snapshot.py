"""Snapshots: one backup of one device, split so each key reads only its own part.

`snapshots/<sha256>` is one object, sealed under the index key (which every key set holds
and the storage provider never does) and padded to a size class, so the provider sees neither
the pieces nor their lengths. Inside:
* `chain`: a keyed device tag, the ID of that device's previous snapshot, the time, and the
  SHA-256 of the sealed header and of every sealed part. It lets a put-only station extend a
  device's hash chain without reading any header, lets `check` find rolled-back or missing
  snapshots, and commits to the pieces: readers check every piece against it before use.
* `header`: sealed to the `_header` public key: device identity, time, the backup's plists,
  skipped entries — but not the per-category counts and sizes: those (`stats`) are sealed to
  each category's own key, so a category-key holder learns nothing of the other categories.
* `parts`: one per category of the repository (empty ones too, so the set of parts says
  nothing), each sealed to that category's public key: the file rows with their chunk lists.
  The `_manifest` part holds the original Manifest.db's chunks and the device backup password.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field

import zstandard

from agent.errors import RepositoryDamagedError
from agent.keys import primitives

SNAPSHOT_PREFIX = "snapshots/"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(slots=True)  # one per file of a backup: no per-instance dict
class FileRow:
    """One Manifest.db entry and where its content lives."""

    file_id: str
    domain: str
    relative_path: str
    flags: int  # 1 file, 2 directory, 4 symlink
    mbfile: bytes  # the entry's MBFile plist, byte-exact
    size: int
    chunks: list[bytes] = field(default_factory=list)

    def to_json(self) -> list[object]:
        return [self.file_id, self.domain, self.relative_path, self.flags, _b64(self.mbfile), self.size,
                [c.hex() for c in self.chunks]]

    @classmethod
    def from_json(cls, item: list[object]) -> FileRow:
        file_id, domain, path, flags, mbfile, size, chunks = item
        return cls(str(file_id), str(domain), str(path), int(flags), base64.b64decode(str(mbfile)), int(size),  # type: ignore[call-overload]
                   [bytes.fromhex(c) for c in chunks])  # type: ignore[union-attr]


@dataclass
class StoredFile:
    """A whole file stored as chunks in one space (Manifest.db, extra top-level files)."""

    size: int
    chunks: list[bytes]

    def to_json(self) -> dict[str, object]:
        return {"size": self.size, "chunks": [c.hex() for c in self.chunks]}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> StoredFile:
        return cls(int(doc["size"]), [bytes.fromhex(c) for c in doc["chunks"]])  # type: ignore[arg-type, union-attr]


@dataclass
class CategoryStats:
    files: int = 0
    bytes: int = 0
    new_bytes: int = 0  # stored bytes this snapshot added (after dedup and compression)


@dataclass
class SnapshotHeader:
    time: float
    device: dict[str, str]  # udid, name, product_type, product_version, build_version, serial
    source: str  # "import" or "usb"
    host: str
    info_plist: bytes
    status_plist: bytes
    manifest_plist: bytes
    is_encrypted: bool
    categories: dict[str, CategoryStats]
    skipped: list[dict[str, str]] = field(default_factory=list)
    complete: bool = True  # False when health, keychain... are missing for lack of device encryption, or partial
    partial: bool = False  # holds only a chosen subset of categories (`backup --categories`, a partial export)
    role: str = "backup"  # "backup" (USB), "import", "safety" (the target's own data, taken before a restore)
    recorded: float = 0.0  # when the snapshot was written: orders snapshots of the same backup date

    @property
    def lists_unstored_rows(self) -> bool:
        """Whether the Manifest.db stored with this snapshot lists rows the snapshot does not hold: rows skipped
        as unsafe or unreadable (what a hostile folder or device forged), files the device did not send, files
        `repair` found lost. Exports and restores then rebuild Manifest.db from the rows held, so that no folder
        or device is handed a row without its file, nor a forged row at all."""
        return bool(self.skipped)

    def to_json(self) -> dict[str, object]:
        return {
            "time": self.time, "device": self.device, "source": self.source, "host": self.host,
            "info_plist": _b64(self.info_plist), "status_plist": _b64(self.status_plist),
            "manifest_plist": _b64(self.manifest_plist), "is_encrypted": self.is_encrypted,
            "categories": {k: asdict(v) for k, v in self.categories.items()},
            "skipped": self.skipped, "complete": self.complete,
            "partial": self.partial, "role": self.role, "recorded": self.recorded,
        }

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> SnapshotHeader:
        return cls(
            time=float(doc["time"]),  # type: ignore[arg-type]
            device=dict(doc["device"]),  # type: ignore[call-overload]
            source=str(doc["source"]),
            host=str(doc["host"]),
            info_plist=base64.b64decode(str(doc["info_plist"])),
            status_plist=base64.b64decode(str(doc["status_plist"])),
            manifest_plist=base64.b64decode(str(doc["manifest_plist"])),
            is_encrypted=bool(doc["is_encrypted"]),
            categories={k: CategoryStats(**v) for k, v in doc["categories"].items()},  # type: ignore[union-attr]
            skipped=list(doc.get("skipped", [])),  # type: ignore[call-overload]
            complete=bool(doc.get("complete", True)),
            partial=bool(doc.get("partial", False)),
            role=str(doc.get("role", "import" if doc["source"] == "import" else "backup")),
            recorded=float(doc.get("recorded", 0.0)),  # type: ignore[arg-type]
        )


@dataclass
class ManifestPart:
    manifest_db: StoredFile
    backup_password: str | None = None
    other_files: dict[str, StoredFile] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "manifest_db": self.manifest_db.to_json(),
            "backup_password": self.backup_password,
            "other_files": {k: v.to_json() for k, v in self.other_files.items()},
        }

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> ManifestPart:
        return cls(
            manifest_db=StoredFile.from_json(doc["manifest_db"]),  # type: ignore[arg-type]
            backup_password=doc.get("backup_password"),  # type: ignore[arg-type]
            other_files={k: StoredFile.from_json(v) for k, v in doc.get("other_files", {}).items()},  # type: ignore[union-attr]
        )


@dataclass
class ChainRecord:
    device_tag: str  # keyed hash of the UDID: links one device's snapshots, names nothing
    previous: str | None  # ID of this device's previous snapshot
    time: float


@dataclass
class SealedSnapshot:
    """A snapshot as stored, its outer seal opened and its pieces checked against its chain record."""

    snapshot_id: str
    chain: ChainRecord
    header: bytes
    parts: dict[str, bytes]  # tag -> sealed part
    stats: dict[str, bytes]  # tag -> sealed per-category counts and sizes

    @classmethod
    def parse(cls, snapshot_id: str, data: bytes, index_keys: list[bytes]) -> SealedSnapshot:
        short = snapshot_id[:12]
        if primitives.sha256(data).hex() != snapshot_id:
            raise RepositoryDamagedError(f"snapshot {short} is damaged (content does not match its name)")
        try:
            doc = _decompress_json(primitives.open_object(index_keys, data, purpose=_PURPOSE))
        except (primitives.DecryptionError, zstandard.ZstdError, ValueError) as exc:
            raise RepositoryDamagedError(f"snapshot {short} fails authentication") from exc
        try:
            chain_doc = doc["chain"]  # type: ignore[index]
            header = base64.b64decode(doc["header"])  # type: ignore[index]
            parts = {str(tag): base64.b64decode(v) for tag, v in doc["parts"].items()}  # type: ignore[index]
            stats = {str(tag): base64.b64decode(v) for tag, v in doc["stats"].items()}  # type: ignore[index]
            chain = ChainRecord(
                device_tag=str(chain_doc["device_tag"]),
                previous=None if chain_doc["previous"] is None else str(chain_doc["previous"]),
                time=float(chain_doc["time"]),
            )
            commits = chain_doc["commits"]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RepositoryDamagedError(f"snapshot {short} is not a valid snapshot") from exc
        if commits != _commitments(header, {**parts, **_stats_names(stats)}):
            raise RepositoryDamagedError(f"snapshot {short}: its pieces do not match its chain record")
        return cls(snapshot_id=snapshot_id, chain=chain, header=header, parts=parts, stats=stats)


_PURPOSE = b"snapshot v2"


def _stats_names(sealed_stats: dict[str, bytes]) -> dict[str, bytes]:
    """Stats pieces under names of their own in the commitments (a tag has a part and a stats piece)."""
    return {f"stats:{tag}": sealed for tag, sealed in sealed_stats.items()}


def _commitments(header: bytes, parts: dict[str, bytes]) -> dict[str, object]:
    return {
        "header": primitives.sha256(header).hex(),
        "parts": {tag: primitives.sha256(sealed).hex() for tag, sealed in sorted(parts.items())},
    }


_JSON_LEVEL = 3


# One encoder for every call: `json.dumps` with separators builds a new one each time (once per file's row).
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _json_bytes(doc: object) -> bytes:
    return _ENCODER.encode(doc).encode("utf-8")


def _compress_json(doc: object) -> bytes:
    return zstandard.compress(_json_bytes(doc), _JSON_LEVEL)


def _decompress_json(data: bytes) -> object:
    # A streamed part is several frames (`PartEncoder`), which one-shot `zstandard.decompress` stops after.
    return json.loads(zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(data))


@dataclass(frozen=True)
class EncodedPart:
    """A part's content already serialized: compressed JSON, as `PartEncoder` streams it."""

    data: bytes


class PartEncoder:
    """Serializes a part's list of items one at a time into compressed JSON, so a snapshot of many files never
    holds its rows as objects, nor their whole JSON text: only the compressed bytes so far and one block of
    text. Each block of `_BLOCK` bytes becomes a zstd frame of its own: a streaming context per part (one per
    category) would hold about 1.5 MiB of tables and window each. Not thread-safe. The result decodes to the
    same list as `_compress_json` of the whole list."""

    _BLOCK = 256 << 10

    def __init__(self) -> None:
        self._text = bytearray(b"[")
        # The frames so far, appended as made: python-zstandard's `compress` keeps a compress-bound-sized
        # allocation behind each frame it returns (256 KiB for a 12 KiB frame), so a list of frames held about
        # nine times the compressed size (13.9 MiB instead of 1.5 for the 14,000 rows of an 8 GB import).
        self._frames = bytearray()
        self._empty = True

    def add(self, encoded_item: bytes) -> None:
        """Append one item, given as the bytes of `encode_item`."""
        if not self._empty:
            self._text += b","
        self._text += encoded_item
        self._empty = False
        if len(self._text) >= self._BLOCK:
            self._frames += zstandard.compress(self._text, _JSON_LEVEL)
            self._text.clear()

    def finish(self) -> EncodedPart:
        self._text += b"]"
        self._frames += zstandard.compress(self._text, _JSON_LEVEL)
        return EncodedPart(bytes(self._frames))


def encode_item(item: object) -> bytes:
    """One item of a part as JSON bytes: the per-row work, which callers may do outside any lock."""
    return _json_bytes(item)


def encode_part(content: object) -> bytes:
    """A part's compressed JSON, from its content or from an `EncodedPart` already made."""
    return content.data if isinstance(content, EncodedPart) else _compress_json(content)


def seal_snapshot(
    *,
    index_key: bytes,
    chain: ChainRecord,
    header_public: bytes,
    header: SnapshotHeader,
    parts: dict[str, tuple[bytes, object]],  # tag -> (public key, JSON-able content or EncodedPart)
    stats_keys: dict[str, tuple[bytes, str]],  # tag -> (public key, space) of every category
) -> bytes:
    header_doc = header.to_json()
    stats = header_doc.pop("categories")
    sealed_header = primitives.seal_to(header_public, _compress_json(header_doc), purpose=b"snapshot header")
    sealed_parts = {
        tag: primitives.seal_to(public, encode_part(content), purpose=b"snapshot part", associated=tag.encode())
        for tag, (public, content) in sorted(parts.items())
    }
    sealed_stats = {
        tag: primitives.seal_to(public, _compress_json(stats.get(space)), purpose=b"snapshot stats", associated=tag.encode())
        for tag, (public, space) in sorted(stats_keys.items())
    }
    doc = {
        "chain": {**asdict(chain), "commits": _commitments(sealed_header, {**sealed_parts, **_stats_names(sealed_stats)})},
        "header": _b64(sealed_header),
        "parts": {tag: _b64(sealed) for tag, sealed in sealed_parts.items()},
        "stats": {tag: _b64(sealed) for tag, sealed in sealed_stats.items()},
    }
    return primitives.seal_object(index_key, _compress_json(doc), purpose=_PURPOSE)


def open_header(
    sealed: SealedSnapshot, header_privates: list[bytes], stats_privates: dict[str, tuple[str, list[bytes]]]
) -> SnapshotHeader:
    """The header, with the counts and sizes of the categories in `stats_privates` (tag -> (space, keys))."""
    short = sealed.snapshot_id[:12]
    try:
        doc = _decompress_json(primitives.open_sealed_any(header_privates, sealed.header, purpose=b"snapshot header"))
        categories = {}
        for tag, (space, privates) in stats_privates.items():
            if tag in sealed.stats:
                opened = primitives.open_sealed_any(privates, sealed.stats[tag], purpose=b"snapshot stats", associated=tag.encode())
                value = _decompress_json(opened)
                if value is not None:
                    categories[space] = value
    except (primitives.DecryptionError, zstandard.ZstdError) as exc:
        raise RepositoryDamagedError(f"snapshot {short}: header fails authentication") from exc
    doc["categories"] = categories  # type: ignore[index]
    try:
        return SnapshotHeader.from_json(doc)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as exc:
        raise RepositoryDamagedError(f"snapshot {short}: its header is not valid") from exc


def open_part(sealed: SealedSnapshot, tag: str, privates: list[bytes]) -> object:
    if tag not in sealed.parts:
        raise RepositoryDamagedError(f"snapshot {sealed.snapshot_id[:12]} lacks a part it should have")
    try:
        return _decompress_json(
            primitives.open_sealed_any(privates, sealed.parts[tag], purpose=b"snapshot part", associated=tag.encode())
        )
    except (primitives.DecryptionError, zstandard.ZstdError) as exc:
        raise RepositoryDamagedError(f"snapshot {sealed.snapshot_id[:12]}: a part fails authentication") from exc
