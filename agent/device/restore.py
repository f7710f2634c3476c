"""`coffer restore`: put a snapshot back onto a device — the same one or a replacement.

The backup the device reads is never written to the host's disk: the mirror serves the
snapshot's plists and Manifest.db, and each `xx/<fileID>` the device asks for streams from
the repository, verified, and for a device-encrypted snapshot re-encrypted with its
original per-file key, so Keychain and Health migrate. `SourceIdentifier` names the
snapshot's device, which is how a backup of A restores onto B.

Selective restore (`--categories`): a mobilebackup2 restore replaces the device's data,
so Coffer first backs up the target (a snapshot of its own, nothing is lost), then restores
a merged backup — the chosen categories from the snapshot, everything else from the target's
fresh backup — keyed with the target's own backup keybag.
"""

from __future__ import annotations

import asyncio
import errno
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.archive.damage import damaged_entry, report_damage
from agent.archive.exporter import class_keys_for
from agent.archive.progress import Progress
from agent.archive.view import SnapshotView, open_view, read_manifest_part
from agent.device import trace as tracing
from agent.device.backup import BackupOptions, DeviceBackup
from agent.device.connect import lockdown_session, translate, usbmux_device_id
from agent.device.link import UploadTarget
from agent.device.mirror import BackupMirror
from agent.device.session import MirrorBackupService
from agent.errors import CofferError, DeviceError, RepositoryDamagedError, UsageError
from agent.ios.encryption import (
    ClassKeys,
    encrypt_manifest_db,
    encrypt_stream,
    new_file_key,
    unwrap_file_key,
    wrap_file_key,
)
from agent.ios.manifest_db import manifest_db_bytes
from agent.ios.mbfile import decode_mbfile, encode_mbfile
from agent.ios.plists import load_plist_dict
from agent.ios.records import FileRecord
from agent.keys.keyset import MANIFEST_SPACE
from agent.pipeline.reader import BlobReader
from agent.repository.device_secrets import record_password
from agent.repository.repository import Repository
from agent.repository.snapshot import FileRow

RESTORE_HEADROOM = 1 << 30  # keep 1 GiB free on the device beyond the backup's size
REBOOT_WAIT_SECONDS = 180.0  # an iPhone takes about a minute to restart
REBOOT_POLL_SECONDS = 0.2


@dataclass
class RestoreOptions:
    """A full restore makes the target what the snapshot was, as Finder does: system files and settings
    included, the target's other items removed, then a reboot. `--categories` merges instead."""

    categories: list[str] | None = None
    system: bool = True  # system files and settings (keychain, Wi-Fi, the device name, backup encryption)
    keep_existing: bool = False  # a full restore keeps the target's items the snapshot does not hold
    reboot: bool = True
    yes: bool = False
    force: bool = False
    progress: bool = False


@dataclass
class RestoreResult:
    snapshot_id: str
    target: str
    source: str
    files: int
    bytes: int
    categories: list[str]
    safety_snapshot: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class PlannedFile:
    category: str
    row: FileRow
    record: FileRecord  # as the device will see it (possibly re-keyed)
    source_keys: ClassKeys | None  # to unwrap the key of the stored row, when re-keying
    target_key: bytes | None  # per-file key to encrypt with (None: plaintext)


@dataclass
class RestorePlan:
    source: str
    info_plist: bytes
    status_plist: bytes
    manifest_plist: bytes
    manifest_db: bytes
    files: dict[str, PlannedFile]  # fileID -> file
    password: str | None
    applications: dict[str, Any] | None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _file_key(keys: ClassKeys | None, record: FileRecord) -> bytes | None:
    if keys is None or record.wrapped_key is None:
        return None
    return unwrap_file_key(keys, record.wrapped_key)


def _rekeyed(record: FileRecord, target_keys: ClassKeys | None, file_key: bytes | None) -> tuple[FileRecord, bytes | None]:
    """The record as a backup keyed with `target_keys` lists it, and the per-file key to encrypt with."""
    fields = decode_mbfile(record.blob)
    if target_keys is None:
        fields["wrapped_key"] = None
        key = None
    else:
        key = file_key or new_file_key()
        protection = record.protection_class or 3
        fields["protection_class"] = protection
        fields["wrapped_key"] = wrap_file_key(target_keys, protection, key)
    blob = encode_mbfile(**fields)
    return FileRecord.from_row(record.file_id, record.domain, record.relative_path, record.flags, blob), key


class RestoreHost:
    """HostFiles for a restore: metadata from the plan, blobs streamed from the repository."""

    def __init__(self, plan: RestorePlan, reader: BlobReader, on_bytes: Any) -> None:
        self.plan = plan
        self.reader = reader
        self.on_bytes = on_bytes
        self.mirror = BackupMirror()
        source = plan.source
        for name, data in (
            ("Info.plist", plan.info_plist),
            ("Status.plist", plan.status_plist),
            ("Manifest.plist", plan.manifest_plist),
            ("Manifest.db", plan.manifest_db),
        ):
            self.mirror.put_data(f"{source}/{name}", data)
        self.sent_files = 0
        self.damaged: list[dict[str, str]] = []

    async def begin_upload(self, file_name: str, device_name: str) -> UploadTarget:
        return _Discard()

    def _plaintext(self, planned: PlannedFile) -> Iterator[bytes]:
        pieces = self.reader.read_stream(planned.category, planned.row.chunks)
        if planned.target_key is not None:
            return encrypt_stream(planned.target_key, pieces)
        return pieces

    async def download(self, path: str) -> AsyncIterator[bytes]:
        entry = self.mirror.get(path)
        if entry is not None and entry.data is not None:
            yield entry.data
            return
        parts = path.split("/")
        planned = self.plan.files.get(parts[-1]) if len(parts) >= 2 and parts[0] == self.plan.source else None
        if planned is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        iterator = self._plaintext(planned)
        while True:
            try:
                piece = await asyncio.to_thread(next, iterator, None)
            except RepositoryDamagedError as exc:  # the device gets a per-file error; the list is reported at the end
                self.damaged.append(damaged_entry(planned.category, planned.record, exc))
                raise OSError(errno.EIO, f"damaged in the repository: {exc}") from exc
            if piece is None:
                break
            self.on_bytes(len(piece))
            yield piece
        self.sent_files += 1

    def free_space(self) -> int:
        return 1 << 50


class _Discard:
    async def write(self, data: bytes) -> None:
        return None

    async def finish(self) -> None:
        return None

    def abort(self, reason: str) -> None:
        return None


def _plan_from(
    repository: Repository,
    views: list[tuple[SnapshotView, set[str]]],
    base: SnapshotView,
    *,
    target_keys: ClassKeys | None,
    password: str | None,
    keep_original_db: bool,
) -> RestorePlan:
    """Merge rows of several snapshots (each with the categories it contributes), keyed for the target."""
    header = base.entry.header
    files: dict[str, PlannedFile] = {}
    records: list[FileRecord] = []
    for view, categories in views:
        source_keys = _snapshot_keys(repository, view)
        for category, row, record in view.records():
            if category not in categories:
                continue
            if keep_original_db:
                device_record, key = record, _file_key(source_keys, record)
            else:
                device_record, key = _rekeyed(record, target_keys, _file_key(source_keys, record))
            records.append(device_record)
            if record.is_file:
                files[record.file_id] = PlannedFile(category, row, device_record, source_keys, key)
    manifest = load_plist_dict(header.manifest_plist, "Manifest.plist")
    if keep_original_db:
        part = read_manifest_part(repository, base.entry.snapshot_id)
        with BlobReader(repository, repository.load_index()) as reader:
            manifest_db = b"".join(reader.read_stream(MANIFEST_SPACE, part.manifest_db.chunks))
    else:
        manifest_db = manifest_db_bytes(records)
        if target_keys is not None:
            manifest_db = encrypt_manifest_db(target_keys, manifest["ManifestKey"], manifest_db)
    info = load_plist_dict(header.info_plist, "Info.plist")
    applications = info.get("Applications") if isinstance(info.get("Applications"), dict) else None
    return RestorePlan(
        source=header.device.get("udid", ""),
        info_plist=header.info_plist,
        status_plist=header.status_plist,
        manifest_plist=header.manifest_plist,
        manifest_db=manifest_db,
        files=files,
        password=password,
        applications=applications,
    )


def _snapshot_keys(repository: Repository, view: SnapshotView) -> ClassKeys | None:
    if not view.entry.header.is_encrypted:
        return None
    part = read_manifest_part(repository, view.entry.snapshot_id)
    return class_keys_for(view.entry.header.manifest_plist, part)


def _confirm(options: RestoreOptions, target: str, snapshot_id: str) -> None:
    if options.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("a restore replaces the data on the device: confirm with --yes")
    answer = input(f"Restore snapshot {snapshot_id[:8]} onto {target}, replacing its data? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("restore cancelled")


async def _preflight(target: str, needed_bytes: int, snapshot_version: str, force: bool) -> dict[str, Any]:
    async with lockdown_session(target) as lockdown:
        values = dict(lockdown.all_values)
        if values.get("PasswordProtected"):
            raise DeviceError(f"device {target} is locked: unlock it and try again")
        version = str(values.get("ProductVersion", ""))
        if snapshot_version and _version_tuple(version) < _version_tuple(snapshot_version) and not force:
            raise DeviceError(
                f"device {target} runs iOS {version}, older than the snapshot's iOS {snapshot_version}: "
                "update the device first (or --force)"
            )
        try:
            find_my = await lockdown.get_value("com.apple.fmip", "IsAssociated")
        except Exception:
            find_my = None
        if find_my:
            raise DeviceError(f"turn off Find My on device {target} before restoring (Settings › your name › Find My)")
        try:
            usage = await lockdown.get_value("com.apple.disk_usage")
        except Exception:
            usage = None
        # The restore replaces the user data, so what matters is the data partition's capacity.
        capacity = int(usage.get("TotalDataCapacity", 0)) if isinstance(usage, dict) else 0
        if capacity and needed_bytes + RESTORE_HEADROOM > capacity:
            raise DeviceError(f"device {target} has too little space for this snapshot ({needed_bytes} bytes)")
        return values


def _device_options(options: RestoreOptions) -> dict[str, Any]:
    """mobilebackup2's restore options: a full restore is complete, a selective one (`--categories`) merges
    into what the device keeps (its settings included)."""
    full = not options.categories
    return {
        "RestoreShouldReboot": options.reboot,
        "RestoreDontCopyBackup": True,
        "RestorePreserveSettings": not (full and options.system),
        "RestoreSystemFiles": options.system,
        "RemoveItemsNotRestored": full and not options.keep_existing,
    }


def _after_reboot(target: str, device_id: int | None) -> str:
    """Wait for the device to come back from its reboot (a new usbmux connection), so the next command finds it."""
    deadline = time.monotonic() + REBOOT_WAIT_SECONDS
    while time.monotonic() < deadline:
        current = asyncio.run(usbmux_device_id(target))
        if current is not None and current != device_id:
            return f"device {target} restarted and is back"
        time.sleep(REBOOT_POLL_SECONDS)
    return f"device {target} is restarting: wait until it shows its lock screen before using it again"


def restore_snapshot(repository: Repository, reference: str, target: str, options: RestoreOptions) -> RestoreResult:
    repository.keys.require_full()
    source_view = open_view(repository, reference, None)
    header = source_view.entry.header
    if (trace := tracing.active()) is not None:  # the snapshot's device may not be the target: hide it too
        device = header.device
        trace.identify(str(device.get("udid", "")), {"SerialNumber": device.get("serial"), "DeviceName": device.get("name")})
    chosen = set(options.categories or source_view.rows)
    needed = sum(row.size for rows in source_view.rows.values() for row in rows)
    try:
        asyncio.run(_preflight(target, needed, header.device.get("product_version", ""), options.force))
    except CofferError:
        raise
    except Exception as exc:
        raise translate(exc, target) from exc
    _confirm(options, target, source_view.entry.snapshot_id)
    notes: list[str] = []
    safety_snapshot = None
    if options.categories:
        backup = DeviceBackup(repository, target, BackupOptions(progress=options.progress, role="safety")).run()
        safety_snapshot = backup.commit.snapshot_id
        notes.append(f"the device's own data was backed up first as snapshot {safety_snapshot[:8]}")
        target_view = open_view(repository, safety_snapshot, None)
        target_keys = _snapshot_keys(repository, target_view)
        target_password = read_manifest_part(repository, safety_snapshot).backup_password
        others = set(target_view.rows) - chosen
        plan = _plan_from(
            repository,
            [(source_view, chosen), (target_view, others)],
            target_view,
            target_keys=target_keys,
            password=target_password,
            keep_original_db=False,
        )
    else:
        password = read_manifest_part(repository, source_view.entry.snapshot_id).backup_password
        # The original Manifest.db may list rows the snapshot lacks (skipped, not sent, lost): then rebuild it.
        rebuild_db = header.lists_unstored_rows
        plan = _plan_from(
            repository,
            [(source_view, chosen)],
            source_view,
            target_keys=_snapshot_keys(repository, source_view) if rebuild_db else None,
            password=password,
            keep_original_db=not rebuild_db,
        )
    restore_options = _device_options(options)
    if load_plist_dict(plan.manifest_plist, "Manifest.plist").get("IsEncrypted"):
        if not plan.password:
            raise CofferError("this snapshot's device backup password is not in the repository")
        restore_options["Password"] = plan.password
        if not restore_options["RestorePreserveSettings"]:
            # The target takes over the snapshot's backup encryption: sealed first, so its next backup opens.
            record_password(repository, target, plan.password)
    device_id = asyncio.run(usbmux_device_id(target)) if options.reboot else None
    total = sum(f.row.size for f in plan.files.values())
    with BlobReader(repository, repository.load_index()) as reader, Progress(
        "restore", total, enabled=options.progress, estimated=True  # the device may skip some (system files)
    ) as bar:
        host = RestoreHost(plan, reader, bar.advance)

        async def run() -> None:
            async with lockdown_session(target) as lockdown:
                with tempfile.TemporaryDirectory(prefix="coffer-link-") as scratch:
                    service = MirrorBackupService(lockdown, host, Path(scratch))
                    await service.run_restore(
                        source=plan.source, options=restore_options, applications=plan.applications, progress=lambda _p: None
                    )

        try:
            asyncio.run(run())
        except Exception as exc:
            if host.damaged:  # the device gave up on the damaged files: that, not the device, is the cause
                report_damage(host.damaged, "restored (the device stopped the restore)", lambda text: print(text, file=sys.stderr))
            if isinstance(exc, CofferError):
                raise
            raise translate(exc, target) from exc
    if options.reboot:
        notes.append(_after_reboot(target, device_id))
    report_damage(host.damaged, "restored", lambda text: print(text, file=sys.stderr))
    return RestoreResult(
        snapshot_id=source_view.entry.snapshot_id,
        target=target,
        source=header.device.get("udid", ""),  # the snapshot's device (a merge's plan is keyed as the target)
        files=len(plan.files),
        bytes=total,
        categories=sorted(chosen),
        safety_snapshot=safety_snapshot,
        notes=notes,
    )
