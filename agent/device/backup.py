"""`coffer backup`: back up one device over USB into the repository, incrementally.

Flow: open a trusted lockdown session → rebuild the mirror from this host's metadata of the
device's previous backup → run pymobiledevice3's mobilebackup2 backup with the mirror as the
host side, streaming file contents into the pipeline as they arrive → when the device is
done, read the new Manifest.db (decrypting it for a device-encrypted backup), store what
waited in staging, and commit one snapshot → remember the new metadata for next time.
A device-encrypted backup opens with the password sealed in the repository for this key set
(agent.repository.device_secrets), so any host with the full key, or the station that set it,
goes on backing the device up; none keeps it on disk.
A failure at any point leaves the repository consistent (packs already uploaded are indexed,
so the next run reuses them) and this host's previous metadata untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import plistlib
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.archive.builder import CommitResult, SnapshotBuilder
from agent.archive.parallel import SMALL_INGEST_FILE, bounded_map
from agent.archive.passwords import known_passwords
from agent.archive.progress import Progress, estimate_device_total
from agent.device.connect import lockdown_session, translate
from agent.device.encryption import device_encrypts, turn_on_encryption
from agent.device.mirror import BackupMirror, BlobRef, MirrorEntry
from agent.device.session import MirrorBackupService
from agent.device.staging import StagingArea
from agent.device.state import DeviceState, DeviceStateStore
from agent.device.uploads import DeviceHost, UploadStats
from agent.errors import CofferError, WrongSecretError
from agent.ios.categories import Category, classify
from agent.ios.encryption import (
    ClassKeys,
    Keybag,
    decrypt_manifest_db,
    decrypt_stream,
    encrypt_manifest_db,
    unwrap_file_key,
)
from agent.ios.folder import MANIFEST_DB
from agent.ios.identity import DeviceIdentity
from agent.ios.manifest_db import (
    iter_manifest_rows,
    manifest_db_bytes,
    read_manifest_rows,
    records_from_bytes,
)
from agent.ios.plists import load_plist_dict
from agent.ios.records import FileRecord, PackedRecords
from agent.ios.safety import CheckedRows, SkippedEntry, iter_checked_rows
from agent.paths import staging_root
from agent.pipeline.chunker import is_sqlite_name
from agent.pipeline.writer import BlobWriter, StoredStream, WriterStats
from agent.repository.device_secrets import candidate_passwords, record_password
from agent.repository.fossils import index_for_backup
from agent.repository.index import Index
from agent.repository.locks import running_backup
from agent.repository.repository import Repository
from agent.storage.local import LocalStorage

INGEST_WORKERS = 2
RECEIVE_TICK_SECONDS = 0.25


@dataclass
class DeviceBackupResult:
    udid: str
    commit: CommitResult
    writer: WriterStats
    uploads: UploadStats
    transfer_seconds: float
    peak_staging_bytes: int
    complete: bool
    notes: list[str] = field(default_factory=list)
    not_sent: list[SkippedEntry] = field(default_factory=list)  # files the device failed to send, and why


@dataclass
class BackupOptions:
    full: bool = False
    backup_password: str | None = None
    enable_device_encryption: bool = False
    progress: bool = False
    categories: list[str] | None = None  # store only these (the device still sends everything)
    role: str = "backup"  # "safety" for the target's own backup taken before a restore


def _small_file(item: tuple[FileRecord, BlobRef]) -> bool:
    return item[0].size < SMALL_INGEST_FILE


def _seed_mirror(udid: str, state: DeviceState | None) -> BackupMirror:
    mirror = BackupMirror()
    mirror.mkdir(udid)
    if state is None:
        return mirror
    mirror.put_data(f"{udid}/Status.plist", state.status_plist)
    mirror.put_data(f"{udid}/Manifest.plist", state.manifest_plist)
    mirror.put_data(f"{udid}/Manifest.db", state.manifest_db)
    for file_id, ref in state.blobs.items():
        directory = f"{udid}/{file_id[:2]}"
        mirror.mkdir(directory)
        mirror.put(f"{directory}/{file_id}", MirrorEntry(is_dir=False, size=ref.stored_size, blob=ref))
    return mirror


def _references_lost_data(repository: Repository, state: DeviceState, usable: Index) -> bool:
    """Whether the files the host says it still holds reference chunks no index lists (lost, e.g. after
    `coffer repair`). A chunk only in a prune fossil is not lost, so the full index decides."""
    held = {(ref.category, chunk) for ref in state.blobs.values() if ref.category and not ref.excluded for chunk in ref.chunks}
    missing = [key for key in held if key not in usable]
    if not missing:
        return False
    index = repository.load_index()
    return any(key not in index for key in missing)


def _known_domains(state: DeviceState | None) -> set[str]:
    if state is None:
        return set()
    try:
        manifest = load_plist_dict(state.manifest_plist, "Manifest.plist")
        if manifest.get("IsEncrypted"):
            return set()
        return {row.domain for row in read_manifest_rows(state.manifest_db)}
    except CofferError:
        return set()


def _without_rows(manifest_db: bytes, file_ids: set[str], class_keys: ClassKeys | None, manifest_key: Any) -> bytes:
    """`manifest_db` (encrypted with the backup's keys when `class_keys` is given) without the rows of `file_ids`."""
    plain = decrypt_manifest_db(class_keys, manifest_key, manifest_db) if class_keys is not None else manifest_db
    image = manifest_db_bytes(r for r in records_from_bytes(plain) if r.file_id not in file_ids)
    return encrypt_manifest_db(class_keys, manifest_key, image) if class_keys is not None else image


class DeviceBackup:
    def __init__(self, repository: Repository, udid: str, options: BackupOptions) -> None:
        self.repository = repository
        self.udid = udid
        self.options = options
        self.store = DeviceStateStore(repository.config.repository_id)
        self.notes: list[str] = []
        self.phase = "connecting"  # connecting, transferring, committing
        self.device_percent: float | None = None  # the device's own progress figure, once it sends one
        self._started_at = time.time()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._host: DeviceHost | None = None
        self._cancelled = False
        self.passwords: list[str] = []  # device backup passwords to try, newest first
        self.recorded: str | None = None  # the newest one sealed in the repository for this key set

    # --- control from other threads (the fleet daemon) --------------------------------------
    def cancel(self) -> None:
        """Stop the device transfer; the run raises asyncio.CancelledError. No effect once committing."""
        with self._lock:
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)

    def received(self) -> tuple[int, int]:
        """(bytes, files) received from the device so far."""
        host = self._host
        return (host.stats.bytes, host.stats.files) if host is not None else (0, 0)

    # --- the device part (async) ---------------------------------------------------------
    async def _transfer(self, host: DeviceHost) -> tuple[dict[str, Any], dict[str, Any]]:
        with self._lock:
            if self._cancelled:
                raise asyncio.CancelledError
            self._loop, self._task, self._host = asyncio.get_running_loop(), asyncio.current_task(), host
            self.phase = "transferring"
        try:
            return await self._talk_to_device(host)
        finally:
            with self._lock:
                self._loop = self._task = None
                self.phase = "committing"

    async def _talk_to_device(self, host: DeviceHost) -> tuple[dict[str, Any], dict[str, Any]]:
        async with lockdown_session(self.udid) as lockdown:
            values = dict(lockdown.all_values)
            will_encrypt = await device_encrypts(lockdown)
            with tempfile.TemporaryDirectory(prefix="coffer-link-") as scratch:
                if not will_encrypt and self.options.enable_device_encryption:
                    self.passwords = [await turn_on_encryption(self.repository, lockdown, Path(scratch))]
                    self.recorded = self.passwords[0]
                    will_encrypt = True
                    self.notes.append("device backup encryption turned on with a random password sealed in the repository")
                if will_encrypt and not self.passwords:
                    raise WrongSecretError(
                        f"device {self.udid} encrypts its backups with a password this key does not know (it is "
                        "sealed for the full key and the station that set it): give it with --backup-password-file"
                    )
                host.encrypted = will_encrypt
                host.bind_loop(asyncio.get_running_loop())
                with Progress("receive", None, enabled=self.options.progress) as receive_bar:

                    def on_device_progress(percent: object) -> None:
                        if isinstance(percent, int | float):
                            self.device_percent = float(percent)
                        receive_bar.estimate_total(estimate_device_total(host.stats.bytes, self.device_percent))
                        receive_bar.set_to(host.stats.bytes)

                    def on_info(info: dict[str, Any]) -> None:
                        host.known_domains |= {f"AppDomain-{app}" for app in info.get("Installed Applications", [])}

                    async def tick() -> None:  # bytes move between the device's progress messages too
                        while True:
                            await asyncio.sleep(RECEIVE_TICK_SECONDS)
                            receive_bar.set_to(host.stats.bytes)

                    ticker = asyncio.create_task(tick())
                    try:
                        service = MirrorBackupService(lockdown, host, Path(scratch))
                        info = await service.run_backup(on_info=on_info, progress=on_device_progress, full=self.options.full)
                    finally:
                        ticker.cancel()
                    receive_bar.set_to(host.stats.bytes)
        return info, values

    # --- the repository part (sync) -------------------------------------------------------
    def run(self) -> DeviceBackupResult:
        self.repository.keys.require_write()
        # Announced before the index is read: prune then spares every pack this backup may reuse.
        with running_backup(self.repository):
            return self._run()

    def _run(self) -> DeviceBackupResult:
        state = None if self.options.full else self.store.load(self.udid)
        wanted = set(self.options.categories) if self.options.categories else None
        if state is not None and any(
            ref.excluded and (wanted is None or ref.category in wanted) for ref in state.blobs.values()
        ):
            # Files left out by an earlier `--categories` run are on the device but not in the repository,
            # and the device will not send unchanged files again: only a full backup brings them in.
            self.notes.append("a full backup was needed: an earlier run left some of these categories out")
            state = None
        known = self._known_passwords()
        self.passwords = [self.options.backup_password] if self.options.backup_password else known
        storage = self.repository.storage
        staging = StagingArea(staging_root())
        index = index_for_backup(self.repository)
        if state is not None and _references_lost_data(self.repository, state, index):
            # The device will not send unchanged files again, and some of them are gone from the repository.
            self.notes.append("a full backup was needed: the repository lost data of this device's last backup")
            state = None
        writer = BlobWriter(self.repository, index)
        host = DeviceHost(
            udid=self.udid,
            mirror=_seed_mirror(self.udid, state),
            writer=writer,
            staging=staging,
            encrypted=False,
            known_categories={fid: ref.category for fid, ref in (state.blobs if state else {}).items() if ref.category},
            known_domains=_known_domains(state),
            free_space_path=storage.root if isinstance(storage, LocalStorage) else None,
            wanted=wanted,
        )
        started = time.monotonic()
        self._started_at = time.time()
        # Packs go to storage during the transfer, the ingest after it and the final flush: one bar spans them.
        upload_bar = Progress("upload", None, enabled=self.options.progress)
        writer.on_uploaded = upload_bar.advance
        try:
            try:
                info, _values = asyncio.run(self._transfer(host))
                host.wait()
            except CofferError:
                raise
            except Exception as exc:
                raise translate(exc, self.udid) from exc
            transfer_seconds = time.monotonic() - started
            result = self._finish(host, writer, staging, info)
        except BaseException:
            host.close()
            with contextlib.suppress(Exception):
                writer.flush()  # index what reached the repository, so the next run reuses it
            raise
        finally:
            staging.close()
            upload_bar.close()
        host.close()
        result.transfer_seconds = transfer_seconds
        return result

    def _known_passwords(self) -> list[str]:
        """The passwords this key set finds for the device, newest first (the snapshots' copies only when no
        record has one), and `recorded` set to the newest record's. A clear one an earlier Coffer left in
        this host's state folder is sealed in the repository and removed from disk."""
        legacy = self.store.take_legacy_password(self.udid)
        records = candidate_passwords(self.repository, self.udid)
        if legacy is not None:
            if legacy not in records:
                record_password(self.repository, self.udid, legacy)
                records.insert(0, legacy)
            self.store.drop_legacy_password(self.udid)
        self.recorded = records[0] if records else None
        return records or list(known_passwords(self.repository, self.udid))

    def _unlock(self, manifest: dict[str, Any]) -> tuple[ClassKeys, str]:
        """The class keys and the password that opens the backup's keybag, trying what is known newest first."""
        keybag = Keybag.parse(manifest["BackupKeyBag"])
        for password in self.passwords:
            try:
                return keybag.unlock(password), password
            except WrongSecretError:
                continue
        raise WrongSecretError(f"no known backup password opens the backup of device {self.udid}: "
                               "give it with --backup-password-file")

    def _finish(self, host: DeviceHost, writer: BlobWriter, staging: StagingArea, info: dict[str, Any]) -> DeviceBackupResult:
        udid, mirror = self.udid, host.mirror
        status_plist = mirror.read(f"{udid}/Status.plist")
        manifest_plist = mirror.read(f"{udid}/Manifest.plist")
        manifest_db = mirror.read(f"{udid}/Manifest.db")
        manifest = load_plist_dict(manifest_plist, "Manifest.plist")
        encrypted = bool(manifest.get("IsEncrypted"))
        class_keys, password = self._unlock(manifest) if encrypted else (None, None)
        if password is not None and password != self.recorded:
            record_password(self.repository, self.udid, password)  # given or a fallback: from now on, the newest
        plaintext_db = decrypt_manifest_db(class_keys, manifest["ManifestKey"], manifest_db) if class_keys else manifest_db
        checked = CheckedRows()
        blobs = mirror.blobs(udid)
        builder = SnapshotBuilder(self.repository, writer, started=self._started_at)
        stored_manifest_db = builder.store_whole(manifest_db, MANIFEST_DB)
        # Files still to be stored, packed (a device can list hundreds of thousands); their refs beside them.
        waiting = PackedRecords()
        waiting_refs: list[BlobRef] = []
        waiting_bytes = 0
        kept: dict[str, BlobRef] = {}
        not_sent: list[SkippedEntry] = []
        for record in iter_checked_rows(iter_manifest_rows(plaintext_db), checked):
            if not record.is_file:
                if host.is_wanted(classify(record.domain, record.relative_path).value):
                    builder.add(record, None)
                continue
            ref = blobs.get(record.file_id)
            if ref is None:
                reason = host.unsent.get(record.file_id, "the device listed it but did not send it")
                not_sent.append(SkippedEntry(record.file_id, record.domain, record.relative_path, reason))
            elif ref.staged is not None:
                waiting.append(record)
                waiting_refs.append(ref)
                waiting_bytes += record.size
            else:
                if not ref.excluded and host.is_wanted(str(ref.category)):
                    builder.add(record, StoredStream(ref.chunks, ref.plain_size), ref.category)
                kept[record.file_id] = ref

        def ingest(item: tuple[FileRecord, BlobRef]) -> None:
            record, ref = item
            assert ref.staged is not None
            pieces = staging.read(ref.staged)
            if class_keys is not None:
                if record.wrapped_key is None:
                    raise CofferError(f"{record.domain}/{record.relative_path} has no per-file key")
                pieces = decrypt_stream(unwrap_file_key(class_keys, record.wrapped_key), pieces, record.size)
            category = classify(record.domain, record.relative_path).value
            if not host.is_wanted(category):
                staging.discard(ref.staged)
                ref.staged, ref.category, ref.excluded = None, category, True
                kept[record.file_id] = ref
                ingest_bar.advance(record.size)
                return
            stored = writer.store_file(category, ingest_bar.counted(pieces), relative_path=record.relative_path,
                                       sqlite_hint=is_sqlite_name(record.relative_path))
            staging.discard(ref.staged)
            ref.staged, ref.category, ref.chunks, ref.plain_size = None, category, stored.chunks, stored.size
            builder.add(record, stored, category)
            kept[record.file_id] = ref

        with Progress("ingest", waiting_bytes, enabled=self.options.progress) as ingest_bar:
            items = zip(waiting.drain(), waiting_refs, strict=True)
            for _ in bounded_map(
                ingest, items, workers=INGEST_WORKERS, in_flight=INGEST_WORKERS * 2, alone=_small_file
            ):
                pass
        if host.wanted is not None:
            self.notes.append(f"only these categories were stored: {', '.join(sorted(host.wanted))}")
        identity = DeviceIdentity.from_plists(info, manifest)
        complete = encrypted
        if not complete:
            self.notes.append(
                "not complete: device backup encryption is off, so Health, Keychain, Wi-Fi passwords and call "
                "history were not included (use --enable-device-encryption)"
            )
        commit = builder.commit(
            device=identity,
            source="usb",
            info_plist=plistlib.dumps(info),
            status_plist=status_plist,
            manifest_plist=manifest_plist,
            manifest_db=stored_manifest_db,
            is_encrypted=encrypted,
            skipped=checked.skipped + not_sent,
            backup_password=password if encrypted else None,
            other_files={},
            complete=complete,
            partial=host.wanted is not None and not {c.value for c in Category} <= host.wanted,
            role=self.options.role,
        )
        # The device compares the next backup against this Manifest.db: rows of files it did not send are
        # dropped from this host's copy, so it sends them again instead of thinking them unchanged.
        remembered = (
            _without_rows(manifest_db, {e.file_id for e in not_sent}, class_keys, manifest.get("ManifestKey"))
            if not_sent else manifest_db
        )
        self.store.save(
            DeviceState(udid, commit.snapshot_id, status_plist, manifest_plist, remembered, kept)
        )
        return DeviceBackupResult(udid, commit, writer.stats, host.stats, 0.0, staging.peak_bytes,
                                  commit.header.complete, self.notes, not_sent)  # a partial snapshot is not complete
