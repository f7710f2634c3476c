"""The device-side backup, in the order a real device runs it (ios-protocol.md section 4.4).

Mode detection from the host's Status.plist and previous Manifest.db: without a usable previous
backup (none, `ForceFullBackup`, corrupt, or another encryption state or keybag) the backup is
full; otherwise it is incremental and uploads only the files whose size, mtime or inode changed,
and removes the blobs of deleted files. An interrupted snapshot (SnapshotState uploading, moving
or removing) is resumed that way too, against the last complete Manifest.db on the host. Then a
free-space check, the Snapshot/ staging area with the Status.plist states, uploads and moves in
batches of 128, Manifest.plist and Manifest.db (encrypted with the device's backup password when
backup encryption is on; encrypted-only files only then), and a final check of what the host holds.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from agent.errors import BackupFormatError, WrongSecretError
from agent.ios.encryption import (
    ClassKeys,
    Keybag,
    decrypt_manifest_db,
    encrypt_manifest_db,
    encrypt_stream,
    encrypted_size,
    new_file_key,
    new_manifest_key,
    wrap_file_key,
)
from agent.ios.identity import DeviceIdentity
from agent.ios.manifest_db import manifest_db_bytes, records_from_bytes
from agent.ios.mbfile import encode_mbfile
from agent.ios.plists import application_entry, build_manifest_plist, build_status_plist, load_plist_dict
from agent.ios.records import FLAG_DIRECTORY, FLAG_FILE, FLAG_SYMLINK, FileRecord, file_id_for
from agent.sim.content import FileKind, SimFile
from agent.sim.device import SimulatedDevice
from agent.sim.device_paths import device_path
from agent.sim.faults import forged_rows
from agent.sim.mobilebackup import errors
from agent.sim.mobilebackup.device_link import DeviceLinkChannel, Upload
from agent.sim.mobilebackup.versions import version_tuple
from agent.sim.reports import BackupReport

logger = logging.getLogger(__name__)

BATCH_SIZE = 128  # files per UploadFiles / MoveItems / RemoveItems message, as BackupAgent2 does
FREE_SPACE_HEADROOM = 128 * 1024 * 1024  # the device wants this much beyond the upload size
PURGE_OVERSHOOT = 2 * 1024 * 1024 * 1024  # and asks the host to purge this much more than missing
PURGE_URGENCY = 4
MIN_STATUS_VERSION = (3, 3)
_FLAGS = {FileKind.FILE: FLAG_FILE, FileKind.DIRECTORY: FLAG_DIRECTORY, FileKind.SYMLINK: FLAG_SYMLINK}
MOBILE_UID = 501  # user "mobile" owns every backed-up file
_METADATA_DEVICE_DIR = "/private/var/mobile/Library/MobileBackup"


@dataclass(frozen=True)
class PreviousBackup:
    """What the host already holds, from its Status.plist and Manifest.db."""

    snapshot_uuid: str
    records: dict[str, FileRecord]  # fileID -> row


@dataclass(frozen=True)
class PlannedUpload:
    """A file to send, its new Manifest.db row and, in an encrypted backup, its fresh per-file key."""

    file: SimFile
    record: FileRecord
    file_key: bytes | None

    @property
    def wire_size(self) -> int:
        return encrypted_size(self.file.size) if self.file_key is not None else self.file.size


@dataclass
class BackupPlan:
    """The new Manifest.db rows, which files to send, and which old blobs to drop."""

    records: list[FileRecord] = field(default_factory=list)
    uploads: list[PlannedUpload] = field(default_factory=list)
    removed: list[FileRecord] = field(default_factory=list)
    unchanged: int = 0

    @property
    def upload_size(self) -> int:
        return sum(upload.wire_size for upload in self.uploads)


class BackupEngine:
    """One `Backup` request, run against the host through `link`."""

    def __init__(self, device: SimulatedDevice, link: DeviceLinkChannel, request: dict) -> None:
        self.device = device
        self.link = link
        self.options = request.get("Options") if isinstance(request.get("Options"), dict) else {}
        self.root = str(request.get("SourceIdentifier") or request.get("TargetIdentifier") or device.udid)
        self.encrypted = device.will_encrypt
        self.class_keys: ClassKeys | None = device.backup_class_keys() if self.encrypted else None
        self.report = BackupReport(encrypted=self.encrypted)
        self.unsent: set[str] = set()  # fileIDs the device failed to send but goes on without (iOS 17+)

    async def run(self) -> BackupReport:
        """Back the device up; raises MobileBackupFailure with the code the Response must carry."""
        self.device.backups.append(self.report)
        previous = await self._previous_backup()
        self.report.mode = "incremental" if previous else "full"
        snapshot_uuid = previous.snapshot_uuid if previous else str(uuid.uuid4()).upper()
        plan = self._plan(previous)
        await self._prepare_free_space(plan.upload_size)
        await self._prepare_snapshot()
        await self._upload_status("uploading", snapshot_uuid, 10.0)
        await self._upload_files(plan)
        manifest_db = await self._upload_manifests(plan)
        await self._upload_status("moving", snapshot_uuid, 90.0)
        await self._move_into_place(plan)
        await self._upload_status("removing", snapshot_uuid, 95.0)
        await self._remove_stale(plan)
        await self._upload_status("finished", snapshot_uuid, 98.0)
        await self._verify(plan, manifest_db)
        self.report.unchanged = plan.unchanged
        return self.report

    # --- 1. resume and mode detection -----------------------------------------------------------

    async def _previous_backup(self) -> PreviousBackup | None:
        """The host's previous backup if an incremental one can build on it, else None (full)."""
        status = await self.link.fetch(f"{self.root}/Status.plist", 1.0)
        if status is None or self.options.get("ForceFullBackup"):
            return None
        try:
            status_plist = load_plist_dict(status, "Status.plist")
            if version_tuple(status_plist.get("Version")) < MIN_STATUS_VERSION:
                return None
            if status_plist.get("SnapshotState") != "finished":
                logger.info("resuming an interrupted snapshot (%s)", status_plist.get("SnapshotState"))
            manifest_plist = await self.link.fetch(f"{self.root}/Manifest.plist", 2.0)
            manifest_db = await self.link.fetch(f"{self.root}/Manifest.db", 3.0)
            if manifest_plist is None or manifest_db is None:
                return None
            records = self._previous_records(load_plist_dict(manifest_plist, "Manifest.plist"), manifest_db)
        except (BackupFormatError, WrongSecretError) as error:
            logger.info("existing backup is corrupt, forcing a full backup: %s", error)
            return None
        if records is None:
            return None
        return PreviousBackup(str(status_plist.get("UUID") or uuid.uuid4()).upper(), records)

    def _previous_records(self, manifest: dict, manifest_db: bytes) -> dict[str, FileRecord] | None:
        """The old rows, or None when they cannot serve this backup (encryption state or keybag
        changed: the old blobs are not readable with the device's current keys)."""
        if bool(manifest.get("IsEncrypted")) != self.encrypted:
            return None
        if self.class_keys is not None:
            old_keybag = manifest.get("BackupKeyBag")
            manifest_key = manifest.get("ManifestKey")
            if not isinstance(old_keybag, bytes) or not isinstance(manifest_key, bytes):
                return None
            if Keybag.parse(old_keybag).root.get(b"UUID") != Keybag.parse(self.device.backup_keybag).root.get(
                b"UUID"
            ):
                return None
            manifest_db = decrypt_manifest_db(self.class_keys, manifest_key, manifest_db)
        return {record.file_id: record for record in records_from_bytes(manifest_db)}

    # --- 2. scan and compare --------------------------------------------------------------------

    def _plan(self, previous: PreviousBackup | None) -> BackupPlan:
        plan = BackupPlan()
        old = previous.records if previous else {}
        current_files: set[str] = set()
        for f in self.device.filesystem.files():
            if f.encrypted_only and not self.encrypted:
                continue  # "File excluded in unencrypted drive backups"
            file_id = file_id_for(f.domain, f.relative_path)
            if f.kind is FileKind.FILE:
                current_files.add(file_id)
                kept = old.get(file_id)
                if kept is not None and _unchanged(kept, f, self.encrypted):
                    plan.records.append(kept)
                    plan.unchanged += 1
                    continue
            file_key = wrapped_key = None
            if f.kind is FileKind.FILE and self.class_keys is not None:
                file_key = new_file_key()
                wrapped_key = wrap_file_key(self.class_keys, f.protection_class, file_key)
            record = _record_for(f, file_id, wrapped_key)
            plan.records.append(record)
            if f.kind is FileKind.FILE:
                plan.uploads.append(PlannedUpload(f, record, file_key))
        plan.removed = [r for file_id, r in old.items() if r.is_file and file_id not in current_files]
        return plan

    # --- 3. free space, 4. snapshot area --------------------------------------------------------

    async def _prepare_free_space(self, upload_size: int) -> None:
        required = upload_size + FREE_SPACE_HEADROOM
        free = await self.link.free_disk_space()
        if free > required:
            return
        if await self.link.purge_disk_space(required - free + PURGE_OVERSHOOT, PURGE_URGENCY):
            free = await self.link.free_disk_space()
            if free > required:
                return
        raise errors.MobileBackupFailure(
            errors.HOST_DISK_FULL,
            f"Insufficient free disk space on drive to back up: {required} bytes needed, {free} available",
        )

    async def _prepare_snapshot(self) -> None:
        prefixes = [f"{n:02x}" for n in range(256)]
        for path in [self.root, *(f"{self.root}/{p}" for p in prefixes), f"{self.root}/Snapshot"]:
            await self.link.create_directory(path, 5.0)
        for prefix in prefixes:
            await self.link.create_directory(f"{self.root}/Snapshot/{prefix}", 8.0)

    # --- 5-7. uploads ---------------------------------------------------------------------------

    async def _upload_status(self, state: str, snapshot_uuid: str, progress: float) -> None:
        data = build_status_plist(snapshot_state=state, is_full_backup=False, backup_uuid=snapshot_uuid)
        await self._upload_metadata("Status.plist", f"{self.root}/Status.plist", data, progress)

    async def _upload_metadata(self, name: str, file_name: str, data: bytes, progress: float) -> None:
        upload = Upload(f"{_METADATA_DEVICE_DIR}/{name}", file_name, [data])
        await self.link.upload([upload], progress, len(data))

    async def _upload_files(self, plan: BackupPlan) -> None:
        total = max(plan.upload_size, 1)
        done = 0
        started = time.monotonic()
        for start in range(0, len(plan.uploads), BATCH_SIZE):
            batch = plan.uploads[start : start + BATCH_SIZE]
            names = [device_path(self.device.udid, p.file.domain, p.file.relative_path) for p in batch]
            uploads = [
                Upload(name, f"{self.root}/Snapshot/{planned.record.blob_name}", self._content(planned, name))
                for planned, name in zip(batch, names, strict=True)
            ]
            size = sum(planned.wire_size for planned in batch)
            result = await self.link.upload(uploads, 10.0 + 80.0 * done / total, size)
            done += size
            self.report.uploaded_bytes += result.sent_bytes
            self.report.uploaded.extend(planned.file.key for planned in batch)
            self.report.upload_seconds = time.monotonic() - started
            # iOS 17+ fails single files (FileProvider's backup_manifest.db) and finishes the backup all the same.
            tolerated = {name for name in result.failed if self.device.faults.fails_upload(name)}
            self.unsent |= {u.record.file_id for u, wire in zip(batch, uploads, strict=True) if wire.device_name in tolerated}
            if failed := [name for name in result.failed if name not in tolerated]:
                raise errors.MobileBackupFailure(
                    errors.UPLOAD_FAILED, f"could not read {len(failed)} files: {failed[0]} ..."
                )
            if start == 0:
                await self._pause()

    async def _pause(self) -> None:
        """A slow device, or one whose screen locks mid-backup: silent for a while after its first batch."""
        faults = self.device.faults
        if faults.lock_during_pause:
            self.device.set_locked(True)
        if faults.pause:
            await asyncio.sleep(faults.pause)

    def _content(self, planned: PlannedUpload, device_name: str) -> Iterator[bytes]:
        if self.device.faults.fails_upload(device_name):
            return _unreadable()
        pieces = self.device.filesystem.read(planned.file)
        return encrypt_stream(planned.file_key, pieces) if planned.file_key is not None else pieces

    async def _upload_manifests(self, plan: BackupPlan) -> bytes:
        """Upload Snapshot/Manifest.plist and Snapshot/Manifest.db; the Manifest.db bytes sent."""
        manifest_key = new_manifest_key(self.class_keys) if self.class_keys is not None else None
        identity = DeviceIdentity(
            udid=self.device.udid,
            name=self.device.name,
            product_type=self.device.hardware.model.product_type,
            product_version=self.device.product_version,
            serial=self.device.hardware.serial_number,
            build=self.device.build_version,
        )
        manifest_plist = build_manifest_plist(
            device=identity,
            backup_keybag=self.device.backup_keybag,
            manifest_key=manifest_key,
            applications={app: application_entry(app) for app in self.device.installed_apps()},
        )
        listed = plan.records + forged_rows() if self.device.faults.hostile_rows else plan.records
        manifest_db = manifest_db_bytes(listed)
        if self.class_keys is not None and manifest_key is not None:
            manifest_db = encrypt_manifest_db(self.class_keys, manifest_key, manifest_db)
        await self._upload_metadata(
            "Manifest.plist", f"{self.root}/Snapshot/Manifest.plist", manifest_plist, 89.0
        )
        await self._upload_metadata("Manifest.db", f"{self.root}/Snapshot/Manifest.db", manifest_db, 89.5)
        return manifest_db

    # --- 8-9. moves and removals ----------------------------------------------------------------

    async def _move_into_place(self, plan: BackupPlan) -> None:
        names = [planned.record.blob_name for planned in plan.uploads]
        for start in range(0, len(names), BATCH_SIZE):
            batch = names[start : start + BATCH_SIZE]
            await self.link.move_items({f"{self.root}/Snapshot/{n}": f"{self.root}/{n}" for n in batch}, 91.0)
        for name in ("Manifest.plist", "Manifest.db"):
            await self.link.move_items({f"{self.root}/Snapshot/{name}": f"{self.root}/{name}"}, 94.0)

    async def _remove_stale(self, plan: BackupPlan) -> None:
        for start in range(0, len(plan.removed), BATCH_SIZE):
            batch = plan.removed[start : start + BATCH_SIZE]
            await self.link.remove_items([f"{self.root}/{record.blob_name}" for record in batch], 96.0)
            self.report.removed.extend(f"{record.domain}/{record.relative_path}" for record in batch)
        await self.link.remove_items([f"{self.root}/Snapshot"], 97.0)
        await self.link.remove_items([f"{self.root}/Manifest.mbdx"], 97.5)

    # --- 11. verification -----------------------------------------------------------------------

    async def _verify(self, plan: BackupPlan, manifest_db: bytes) -> None:
        """Re-read the metadata and check that every blob Manifest.db references is on the host.

        Only existence is checked: a host may keep a 0-byte placeholder for a file it streamed
        elsewhere (pymobiledevice3's backup filters do), which a real device accepts too."""
        for name in ("Status.plist", "Manifest.plist"):
            if await self.link.fetch(f"{self.root}/{name}", 99.0) is None:
                raise errors.MobileBackupFailure(errors.BACKUP_CORRUPT, f"the host lost {name}")
        if await self.link.fetch(f"{self.root}/Manifest.db", 99.0) != manifest_db:
            raise errors.MobileBackupFailure(
                errors.BACKUP_CORRUPT, "the host's Manifest.db differs from the one sent"
            )
        listing = await self.link.contents_of_directory(self.root, 99.0)
        expected: dict[str, set[str]] = {}
        for record in plan.records:
            if record.is_file and record.file_id not in self.unsent:
                expected.setdefault(record.file_id[:2], set()).add(record.file_id)
        missing = 0
        for prefix, file_ids in sorted(expected.items()):
            present = (
                set(await self.link.contents_of_directory(f"{self.root}/{prefix}", 99.5))
                if prefix in listing
                else set()
            )
            missing += len(file_ids - present)
        if missing:
            raise errors.MobileBackupFailure(
                errors.MISSING_BLOBS, f"Manifest references files not in backup ({missing} missing)"
            )


def _unreadable() -> Iterator[bytes]:
    """The content of a file the device cannot read: an I/O error before the first byte."""
    raise OSError(errno.EIO, "Input/output error")
    yield b""  # a generator, as the readable files' content is


def _record_for(f: SimFile, file_id: str, wrapped_key: bytes | None) -> FileRecord:
    """The Manifest.db row of a device entry, built field by field (`FileRecord.create` would decode
    the blob it has just encoded, doubling the planning time of a large device)."""
    blob = encode_mbfile(
        relative_path=f.relative_path,
        mode=f.mode,
        size=f.size,
        mtime=f.mtime,
        birth=f.birth,
        uid=MOBILE_UID,
        gid=MOBILE_UID,
        inode=f.inode,
        protection_class=f.protection_class,
        wrapped_key=wrapped_key,
        target=f.target,
    )
    return FileRecord(
        file_id=file_id,
        domain=f.domain,
        relative_path=f.relative_path,
        flags=_FLAGS[f.kind],
        blob=blob,
        size=f.size,
        mode=f.mode,
        mtime=f.mtime,
        protection_class=f.protection_class,
        wrapped_key=wrapped_key,
        target=f.target,
        uid=MOBILE_UID,
        gid=MOBILE_UID,
        inode=f.inode,
        birth=f.birth,
        ctime=f.mtime,
    )


def _unchanged(old: FileRecord, f: SimFile, encrypted: bool) -> bool:
    """Whether the host's copy of a file is current: same size, mtime and inode, same encryption."""
    return (
        old.is_file
        and (old.size, old.mtime, old.inode) == (f.size, f.mtime, f.inode)
        and (old.wrapped_key is not None) == encrypted
    )
