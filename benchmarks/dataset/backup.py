"""Writing a benchmark data set as a real, unencrypted iOS backup folder, and changing it as a day of use does.

The folder is written with the agent's own `BackupWriter` (Manifest.db rows, `xx/<fileID>` blobs, the three
plists), so `coffer import` takes it as it would take a Finder backup. It is not encrypted on purpose: the
other tools in the benchmark back up the folder's files as they are, and they must see the same plaintext
Coffer decrypts. Everything in it is a function of the seed, except the keybag in Manifest.plist, which
`Keybag.create` makes from fresh randomness (a few hundred bytes).

Texts and databases are made in a staging directory next to the folder, since their size is only known once
written and Manifest.db, which records every size, is handed to the writer first. Media and bitmaps have a
planned size and stream from the keystream straight into the folder.
"""

from __future__ import annotations

import itertools
import plistlib
import random
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

from agent.errors import UsageError
from agent.ios.encryption import Keybag
from agent.ios.folder import PIECE_SIZE, BackupFolder, BackupWriter
from agent.ios.identity import DeviceIdentity
from agent.ios.manifest_db import manifest_db_bytes
from agent.ios.plists import build_manifest_plist, build_status_plist
from agent.ios.records import FLAG_DIRECTORY, FLAG_FILE, FileRecord
from benchmarks.dataset.content import (
    TextSource,
    bitmap_pieces,
    json_document,
    log_lines,
    plist_document,
    random_pieces,
)
from benchmarks.dataset.plan import (
    KIB,
    MIB,
    FileSpec,
    Kind,
    Planner,
    camera_number,
    database_at,
    fill_budget,
    kind_of,
    plan_backup,
)
from benchmarks.dataset.sqlite_db import apply_day, create_database

DEVICE = DeviceIdentity(
    udid="00008110-000C4D2E3A6B801E",
    name="Benchmark iPhone",
    product_type="iPhone14,5",
    product_version="17.5.1",
    serial="G6TZ1BENCH01",
    build="21F90",
)
FIRST_BACKUP_DATE = datetime(2024, 6, 1, 21, 0, 0, tzinfo=UTC)
_FAST_KEYBAG = {"dpic": 1000, "iterations": 100}  # the keybag of an unencrypted backup protects nothing
_OLDEST_FILE_AGE = 2 * 365 * 24 * 3600
_PROTECTION_CLASS = 3

PieceSource = Callable[[], Iterable[bytes]]


@dataclass
class DatasetSummary:
    """What a data set holds: files and bytes, by kind."""

    files: int = 0
    bytes: int = 0
    files_by_kind: dict[str, int] = field(default_factory=dict)
    bytes_by_kind: dict[str, int] = field(default_factory=dict)

    def count(self, record: FileRecord) -> None:
        kind = kind_of(record.domain, record.relative_path).value
        self.files += 1
        self.bytes += record.size
        self.files_by_kind[kind] = self.files_by_kind.get(kind, 0) + 1
        self.bytes_by_kind[kind] = self.bytes_by_kind.get(kind, 0) + record.size


@dataclass
class DaySummary:
    """What a day of use changed."""

    day: int
    added_files: int = 0
    added_bytes: int = 0
    changed_files: int = 0
    deleted_files: int = 0
    deleted_bytes: int = 0
    dataset: DatasetSummary = field(default_factory=DatasetSummary)


def _pieces_of(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(PIECE_SIZE), b"")


class _Materialiser:
    """Makes the content of planned files: staged on disk for text and databases, streamed for the rest."""

    def __init__(self, seed: int, staging: Path, moment: int) -> None:
        self.seed = seed
        self.text = TextSource(str(seed))
        self.staging = staging
        self.moment = moment  # Unix time of "now": new log lines and rows are dated from it
        self._serial = itertools.count()

    def __call__(self, spec: FileSpec, version: int) -> tuple[int, PieceSource]:
        """Size and content of `spec` in its `version` (0 when first made, the day number when rewritten)."""
        seed = f"{self.seed}:{version}:{spec.domain}/{spec.relative_path}"
        kind = spec.kind
        if kind is Kind.MEDIA:
            return spec.size, lambda: random_pieces(seed, spec.size)
        if kind is Kind.BITMAP:
            return spec.size, lambda: bitmap_pieces(seed, spec.size)
        rng = random.Random(seed)
        staged = self.staging / f"{next(self._serial)}{PurePosixPath(spec.relative_path).suffix}"
        if kind is Kind.SQLITE:
            database = database_at(spec.domain, spec.relative_path)
            create_database(staged, database.shape, spec.size, rng, self.text, self.moment - _OLDEST_FILE_AGE)
        elif kind is Kind.PLIST:
            staged.write_bytes(plist_document(rng, self.text, spec.size))
        elif kind is Kind.JSON:
            staged.write_bytes(json_document(rng, self.text, spec.size))
        else:
            staged.write_bytes(log_lines(rng, self.text, spec.size, self.moment - _OLDEST_FILE_AGE))
        return staged.stat().st_size, lambda: _pieces_of(staged)


def _file_record(domain: str, relative_path: str, size: int, mtime: int, inode: int) -> FileRecord:
    return FileRecord.create(
        domain,
        relative_path,
        FLAG_FILE,
        size=size,
        mtime=mtime,
        inode=inode,
        protection_class=_PROTECTION_CLASS,
    )


def _missing_directories(
    records: Iterable[FileRecord], known: set[tuple[str, str]], mtime: int
) -> list[FileRecord]:
    """Directory rows for every ancestor of the records' paths not in `known` (which is updated)."""
    directories = []
    for record in records:
        parents = [str(parent) for parent in PurePosixPath(record.relative_path).parents]
        for parent in reversed(parents):
            relative = "" if parent == "." else parent
            if (record.domain, relative) not in known:
                known.add((record.domain, relative))
                directories.append(FileRecord.create(record.domain, relative, FLAG_DIRECTORY, mtime=mtime))
    return directories


def _info_plist(date: datetime) -> bytes:
    """Info.plist as a host writes it (XML)."""
    return plistlib.dumps(
        {
            "Build Version": DEVICE.build,
            "Device Name": DEVICE.name,
            "Display Name": DEVICE.name,
            "Last Backup Date": date.replace(tzinfo=None),
            "Product Type": DEVICE.product_type,
            "Product Version": DEVICE.product_version,
            "Serial Number": DEVICE.serial,
            "Target Identifier": DEVICE.udid,
            "Target Type": "Device",
            "Unique Identifier": DEVICE.udid.upper(),
        }
    )


def _status_plist(seed: int, day: int, date: datetime) -> bytes:
    backup_uuid = uuid.UUID(int=random.Random(f"{seed}:uuid:{day}").getrandbits(128), version=4)
    return build_status_plist(date=date, backup_uuid=str(backup_uuid).upper())


def generate(path: Path, total_size: int, seed: int) -> DatasetSummary:
    """Write a new backup folder of about `total_size` bytes of file contents at `path`."""
    if path.exists() and any(path.iterdir()):
        raise UsageError(f"{path} already exists and is not empty: remove it or choose another folder")
    path.mkdir(parents=True, exist_ok=True)
    specs = plan_backup(total_size, seed)
    moment = int(FIRST_BACKUP_DATE.timestamp())
    ages = random.Random(f"{seed}:ages")
    summary = DatasetSummary()
    with tempfile.TemporaryDirectory(prefix=".datagen-", dir=path.parent) as staging:
        materialise = _Materialiser(seed, Path(staging), moment)
        files: list[tuple[FileRecord, PieceSource]] = []
        for inode, spec in enumerate(specs, start=100_000):
            size, source = materialise(spec, 0)
            mtime = moment - ages.randrange(_OLDEST_FILE_AGE)
            files.append((_file_record(spec.domain, spec.relative_path, size, mtime, inode), source))
        records = [record for record, _ in files]
        records = _missing_directories(records, set(), moment - _OLDEST_FILE_AGE) + records
        keybag, _ = Keybag.create("unused", **_FAST_KEYBAG)
        writer = BackupWriter(
            path,
            info_plist=_info_plist(FIRST_BACKUP_DATE),
            status_plist=_status_plist(seed, 0, FIRST_BACKUP_DATE),
            manifest_plist=build_manifest_plist(
                device=DEVICE, backup_keybag=keybag.data, date=FIRST_BACKUP_DATE
            ),
            manifest_db_bytes=manifest_db_bytes(records),
        )
        for record, source in files:
            writer.write_file(record, source())
            summary.count(record)
        writer.finish()
    return summary


def _pick(rng: random.Random, records: list[FileRecord], fraction: float, least: int) -> list[FileRecord]:
    return rng.sample(records, min(len(records), max(least, round(fraction * len(records)))))


class _Day:
    """One day of use, worked out on an opened folder and then written into it."""

    def __init__(self, folder: BackupFolder, seed: int, staging: Path) -> None:
        self.folder = folder
        self.seed = seed
        self.staging = staging
        self.day = (folder.status["Date"].replace(tzinfo=UTC) - FIRST_BACKUP_DATE).days + 1
        self.date = FIRST_BACKUP_DATE + timedelta(days=self.day)
        self.moment = int(self.date.timestamp())
        self.rng = random.Random(f"{seed}:day:{self.day}")
        self.materialise = _Materialiser(seed, staging, self.moment)
        self.files = [record for record in folder.records if record.is_file]
        self.by_kind: dict[Kind, list[FileRecord]] = {kind: [] for kind in Kind}
        for record in self.files:
            self.by_kind[kind_of(record.domain, record.relative_path)].append(record)
        self.camera = [r for r in self.by_kind[Kind.MEDIA] if r.relative_path.startswith("Media/DCIM/")]
        self.rewrites: dict[str, tuple[FileRecord, PieceSource]] = {}  # by fileID
        self.added: list[tuple[FileRecord, PieceSource]] = []
        self.deleted: list[FileRecord] = []

    def add_new_files(self) -> None:
        """About 1 % of the data set in new photos and a video, their thumbnails, attachments, cache entries."""
        total = sum(record.size for record in self.files)
        planner = Planner(
            self.rng,
            next_camera_number=max((camera_number(r.relative_path) for r in self.camera), default=0) + 1,
            next_serial=self.day * 1_000_000,
        )
        specs = fill_budget(0.008 * total, planner.camera_photo)
        specs.append(planner.camera_video(largest=max(MIB, int(0.01 * total))))
        specs += [planner.thumbnail() for _ in specs]
        specs += [planner.message_attachment() for _ in range(3)]
        specs += [planner.small_file() for _ in range(20)]
        for inode, spec in enumerate(specs, start=self.day * 1_000_000):
            size, source = self.materialise(spec, self.day)
            self.added.append(
                (_file_record(spec.domain, spec.relative_path, size, self.moment, inode), source)
            )

    def delete_some(self) -> None:
        photos = [r for r in self.camera if not r.relative_path.endswith(".MOV")]
        url_cache = [r for r in self.files if "/fsCachedData/" in r.relative_path]
        self.deleted = _pick(self.rng, photos, 0, 3) + _pick(self.rng, url_cache, 0.02, 5)

    def _rewrite(self, old: FileRecord, size: int, source: PieceSource) -> None:
        record = _file_record(old.domain, old.relative_path, size, self.moment, old.inode)
        self.rewrites[old.file_id] = (record, source)

    def edit_databases(self) -> None:
        """Every database gets its typical day of appended, updated and deleted rows, edited in place."""
        for old in self.by_kind[Kind.SQLITE]:
            staged = self.staging / f"{old.file_id}.sqlite"
            with open(staged, "wb") as handle:
                for piece in self.folder.open_plaintext(old):
                    handle.write(piece)
            database = database_at(old.domain, old.relative_path)
            apply_day(staged, database.shape, database.daily, self.rng, self.materialise.text, self.moment)
            self._rewrite(old, staged.stat().st_size, lambda staged=staged: _pieces_of(staged))

    def append_to_logs(self) -> None:
        for old in _pick(self.rng, self.by_kind[Kind.LOG], 0.3, 1):
            size = self.rng.randint(old.size // 200, old.size // 20) + KIB
            lines = log_lines(self.rng, self.materialise.text, size, self.moment)
            self._rewrite(
                old,
                old.size + len(lines),
                lambda old=old, lines=lines: itertools.chain(self.folder.open_plaintext(old), [lines]),
            )

    def rewrite_documents(self) -> None:
        deleted = {record.file_id for record in self.deleted}
        for kind, fraction, least in ((Kind.PLIST, 0.03, 3), (Kind.JSON, 0.02, 2)):
            candidates = [r for r in self.by_kind[kind] if r.file_id not in deleted]
            for old in _pick(self.rng, candidates, fraction, least):
                self._rewrite(
                    old, *self.materialise(FileSpec(old.domain, old.relative_path, old.size), self.day)
                )

    def write(self) -> list[FileRecord]:
        """Write the changed and new blobs, remove the deleted ones, then the metadata; returns every row."""
        deleted = {record.file_id for record in self.deleted}
        kept = [
            self.rewrites.get(r.file_id, (r, None))[0]
            for r in self.folder.records
            if r.file_id not in deleted
        ]
        known = {(r.domain, r.relative_path) for r in kept if r.is_directory}
        new_records = [record for record, _ in self.added]
        records = kept + _missing_directories(new_records, known, self.moment) + new_records
        writer = BackupWriter.subset(
            self.folder.path,
            info_plist=_info_plist(self.date),
            status_plist=_status_plist(self.seed, self.day, self.date),
            manifest_plist=build_manifest_plist(
                device=DEVICE, backup_keybag=self.folder.manifest["BackupKeyBag"], date=self.date
            ),
            records=records,
        )
        for record, source in [*self.rewrites.values(), *self.added]:
            writer.write_file(record, source())
        for record in self.deleted:
            (self.folder.path / record.blob_name).unlink()
        writer.finish()
        return records

    def summary(self, records: list[FileRecord]) -> DaySummary:
        summary = DaySummary(
            day=self.day,
            added_files=len(self.added),
            added_bytes=sum(record.size for record, _ in self.added),
            changed_files=len(self.rewrites),
            deleted_files=len(self.deleted),
            deleted_bytes=sum(record.size for record in self.deleted),
        )
        for record in records:
            if record.is_file:
                summary.dataset.count(record)
        return summary


def mutate(path: Path, seed: int) -> DaySummary:
    """Change the backup folder at `path` (made by `generate` with `seed`) as one more day of use would: new
    photos, a video and attachments, rows appended, updated and deleted in every database, lines appended to
    logs, rewritten plists and JSON, a few deleted photos and cache entries. Day N is the same for a seed."""
    folder = BackupFolder.open(path)
    if folder.skipped:
        raise UsageError(f"{path} has unusable rows; regenerate it with `datagen` before changing it")
    with tempfile.TemporaryDirectory(prefix=".datagen-", dir=path.parent) as staging:
        day = _Day(folder, seed, Path(staging))
        day.add_new_files()
        day.delete_some()
        day.edit_databases()
        day.append_to_logs()
        day.rewrite_documents()
        return day.summary(day.write())
