"""`coffer export`: rebuild a Finder/iTunes-compatible backup folder from a snapshot.

A whole snapshot comes back byte for byte: the original plists and Manifest.db, and for a
device-encrypted backup every blob re-encrypted with its original per-file key (AES-CBC
with a zero IV is deterministic, so the ciphertext is the device's own). `--decrypt` writes
a plaintext folder instead. `--categories` writes a valid folder holding only those
categories, with Manifest.db rebuilt to match, and reads only those categories' packs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.archive.damage import damaged_entry
from agent.archive.parallel import SMALL_FILE, bounded_map
from agent.archive.partial_marker import mark_partial
from agent.archive.progress import Progress
from agent.archive.view import SnapshotView, open_view, read_manifest_part
from agent.errors import AccessDeniedError, CofferError, RepositoryDamagedError, UsageError
from agent.ios.encryption import ClassKeys, Keybag, decrypt_manifest_db
from agent.ios.folder import BackupWriter
from agent.ios.plists import load_plist_dict
from agent.ios.records import FileRecord
from agent.keys.keyset import MANIFEST_SPACE
from agent.pipeline.reader import BlobReader
from agent.repository.repository import Repository, SnapshotEntry
from agent.repository.snapshot import FileRow, ManifestPart


@dataclass
class ExportResult:
    snapshot_id: str
    files: int
    bytes: int
    categories: list[str]
    encrypted: bool
    damaged: list[dict[str, str]] = field(default_factory=list)  # files whose data is damaged: not written


def create_target(target: Path) -> None:
    """Create the output folder and its parents; a path that cannot be a folder is not an internal error."""
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CofferError(f"cannot create the folder {target}: {exc.strerror or exc}") from exc


def ensure_empty_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} exists and is not an empty folder: choose a new one")
    create_target(target)


def class_keys_for(manifest_plist: bytes, manifest: ManifestPart) -> ClassKeys:
    if not manifest.backup_password:
        raise AccessDeniedError("this snapshot's backup password is not in the repository; export with --decrypt")
    keybag = load_plist_dict(manifest_plist, "Manifest.plist")["BackupKeyBag"]
    return Keybag.parse(keybag).unlock(manifest.backup_password)


def _read_whole(reader: BlobReader, space: str, chunks: list[bytes]) -> bytes:
    return b"".join(reader.read_stream(space, chunks))


def _make_writer(
    repository: Repository, reader: BlobReader, view: SnapshotView, target: Path, *, whole: bool, decrypt: bool
) -> BackupWriter:
    header = view.entry.header
    info_plist = header.info_plist
    if not whole or header.partial:  # the folder holds only some categories: say so, for a later import
        info_plist = mark_partial(info_plist, view.rows if not whole else header.categories)
    common = {"info_plist": info_plist, "status_plist": header.status_plist}
    needs_keys = header.is_encrypted and (whole or not decrypt)
    manifest = None
    class_keys = None
    if whole or needs_keys:
        if not repository.keys.can_read(MANIFEST_SPACE):
            hint = "" if decrypt else "; a category key can export with --decrypt"
            raise AccessDeniedError(f"this needs the full key{hint}")
        manifest = read_manifest_part(repository, view.entry.snapshot_id)
        class_keys = class_keys_for(header.manifest_plist, manifest) if header.is_encrypted else None
    if not whole or header.lists_unstored_rows:  # the original Manifest.db would list rows this folder lacks
        records = [record for _, _, record in view.records()]
        writer = BackupWriter.subset(
            target, manifest_plist=header.manifest_plist, records=records, class_keys=class_keys, decrypt=decrypt, **common
        )
        if manifest is not None and whole:
            _write_other_files(writer, reader, manifest)
        return writer
    assert manifest is not None
    stored_db = _read_whole(reader, MANIFEST_SPACE, manifest.manifest_db.chunks)
    if header.is_encrypted and decrypt:
        assert class_keys is not None
        manifest_key = load_plist_dict(header.manifest_plist, "Manifest.plist")["ManifestKey"]
        plaintext_db = decrypt_manifest_db(class_keys, manifest_key, stored_db)
        return BackupWriter.decrypted(
            target, manifest_plist=header.manifest_plist, plaintext_manifest_db=plaintext_db, **common
        )
    writer = BackupWriter(
        target, manifest_plist=header.manifest_plist, manifest_db_bytes=stored_db, class_keys=class_keys, **common
    )
    _write_other_files(writer, reader, manifest)
    return writer


def _write_other_files(writer: BackupWriter, reader: BlobReader, manifest: ManifestPart) -> None:
    for name, stored in manifest.other_files.items():
        writer.write_other_file(name, _read_whole(reader, MANIFEST_SPACE, stored.chunks))


def _small_file(item: tuple[str, FileRow, FileRecord]) -> bool:
    return item[1].size < SMALL_FILE


def export_snapshot(
    repository: Repository,
    reference: str | SnapshotEntry,
    target: Path,
    *,
    categories: list[str] | None,
    decrypt: bool,
    progress: bool,
    workers: int = 4,
) -> ExportResult:
    whole = categories is None
    if whole:
        repository.keys.require_full()
    view = open_view(repository, reference, categories)
    ensure_empty_target(target)
    index = repository.load_index()
    files = [(category, row, record) for category, row, record in view.records() if record.is_file]
    with BlobReader(repository, index) as reader, Progress("export", sum(r.size for _, r, _ in files), enabled=progress) as bar:
        writer = _make_writer(repository, reader, view, target, whole=whole, decrypt=decrypt)

        def write(item: tuple[str, FileRow, FileRecord]) -> dict[str, str] | None:
            category, row, record = item
            pieces = reader.read_stream(category, row.chunks)
            try:
                writer.write_file(record, bar.counted(pieces))
            except RepositoryDamagedError as exc:  # left out (the writer removes its partial file); the rest goes on
                return damaged_entry(category, record, exc)
            return None

        damaged = [
            d for d in bounded_map(write, files, workers=workers, in_flight=workers * 2, alone=_small_file) if d
        ]
        writer.finish()
    lost = {(d["domain"], d["path"]) for d in damaged}
    written = [row for _, row, record in files if (record.domain, record.relative_path) not in lost]
    return ExportResult(
        snapshot_id=view.entry.snapshot_id,
        files=len(written),
        bytes=sum(row.size for row in written),
        categories=sorted(view.rows),
        encrypted=view.entry.header.is_encrypted and not decrypt,
        damaged=damaged,
    )
