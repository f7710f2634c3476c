"""Commands that talk to devices: devices, backup, restore."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.archive.view import parse_categories
from agent.commands.archive_commands import SNAPSHOT_HELP, UDID_HELP, backup_password
from agent.commands.context import Context
from agent.commands.format import plural, size, table, timestamp
from agent.errors import CofferError, DeviceError, UsageError
from agent.repository import selection
from agent.repository.repository import SnapshotEntry

if TYPE_CHECKING:
    from agent.device.backup import DeviceBackupResult

# pymobiledevice3 takes most of a second to import: only the commands that talk to devices pay for it.
TRACE_HELP = "record the device conversation's metadata here (JSON lines, no contents, names hashed) for a bug report"


def _traced(command: str, handler: Callable[[Context], int]) -> Callable[[Context], int]:
    """`handler` with `--trace FILE` honoured: the conversation and the result go into FILE."""

    def run(ctx: Context) -> int:
        from agent.device.trace import recording

        with recording(ctx.args.trace, command):
            return handler(ctx)

    return run


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("devices", parents=[common], help="list connected devices")
    p.add_argument("--trace", type=Path, metavar="FILE", help=TRACE_HELP)
    p.set_defaults(handler=_traced("devices", cmd_devices))

    p = sub.add_parser("backup", parents=[common], help="back up devices over USB")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--udid", action="append", help="a device to back up (repeatable)")
    who.add_argument("--all", action="store_true", help="every connected device")
    p.add_argument("--full", action="store_true", help="ignore this host's previous backup metadata")
    p.add_argument("--categories", help="only store these categories (default: all)")
    p.add_argument("--backup-password-file", help="the device's backup password, if it encrypts backups")
    p.add_argument("--enable-device-encryption", action="store_true",
                   help="turn on device backup encryption with a random password kept in the repository")
    p.add_argument("--trace", type=Path, metavar="FILE", help=TRACE_HELP)
    p.set_defaults(handler=_traced("backup", cmd_backup))

    p = sub.add_parser("restore", parents=[common], help="restore a snapshot onto a device (e.g. a replacement)")
    p.add_argument("snapshot", help=SNAPSHOT_HELP)
    p.add_argument("--udid", help=UDID_HELP)
    p.add_argument("--to-udid", required=True, help="the device to restore onto")
    p.add_argument("--categories", help="restore only these categories, merged: the device keeps its other data")
    p.add_argument("--no-system", dest="system", action="store_false",
                   help="leave system files and settings (keychain, Wi-Fi, device name) as they are on the device")
    p.add_argument("--keep-existing", action="store_true",
                   help="a full restore keeps the device's items the snapshot does not hold (default: removed)")
    p.add_argument("--no-reboot", dest="reboot", action="store_false", help="do not restart the device when done")
    # Accepted for scripts written before the full restore became complete by default; they change nothing.
    p.add_argument("--system", dest="legacy_system", action="store_true", help="accepted, no effect: the default")
    p.add_argument("--reboot", dest="legacy_reboot", action="store_true", help="accepted, no effect: the default")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--force", action="store_true", help="restore onto an older iOS than the snapshot's")
    p.add_argument("--trace", type=Path, metavar="FILE", help=TRACE_HELP)
    p.set_defaults(handler=_traced("restore", cmd_restore))


def cmd_devices(ctx: Context) -> int:
    from agent.device.inventory import list_devices

    devices = list_devices()
    rows = [[d.udid, d.name, d.model, d.ios_version, d.state,
             {True: "on", False: "off", None: "?"}[d.backup_encryption], d.usb] for d in devices]
    ctx.emit([{**d.to_json(), "usb": d.usb} for d in devices],
             table(["UDID", "Name", "Model", "iOS", "State", "Backup encryption", "USB"], rows) if rows else "no devices")
    return 0


def _summary(result: DeviceBackupResult) -> str:
    header = result.commit.header
    rows = [[name, s.files, size(s.bytes), size(s.new_bytes)] for name, s in sorted(header.categories.items()) if s.files]
    transferred = result.uploads.bytes
    lines = [
        table(["Category", "Files", "Size", "New (stored)"], rows),
        "",
        f"snapshot {result.commit.snapshot_id[:8]} of {header.device.get('name')} ({result.udid}): "
        f"{plural(result.uploads.files, 'file')} sent by the device, {result.commit.elapsed:.1f} s in all "
        f"({result.transfer_seconds:.1f} s of transfer)",
        f"peak staging disk use: {size(result.peak_staging_bytes)}",
    ]
    if transferred:
        lines.append(f"device transfer: {size(transferred)}")
    lines.extend(result.notes)
    return "\n".join(lines)


def _document(result: DeviceBackupResult) -> dict[str, object]:
    header = result.commit.header
    return {
        "udid": result.udid,
        "ok": True,
        "snapshot": result.commit.snapshot_id,
        "short_id": result.commit.snapshot_id[:8],
        "device": header.device,
        "complete": result.complete,
        "categories": {k: {"files": v.files, "bytes": v.bytes, "new_bytes": v.new_bytes} for k, v in header.categories.items()},
        "files_sent": result.uploads.files,
        "files_streamed": result.uploads.streamed_files,
        "files_staged": result.uploads.staged_files,
        "peak_staging_bytes": result.peak_staging_bytes,
        "seconds": round(result.commit.elapsed, 3),
        "notes": result.notes,
        "skipped": header.skipped,
        "not_sent": [{"domain": e.domain, "path": e.relative_path, "reason": e.reason} for e in result.not_sent],
    }


def _not_sent_warnings(result: DeviceBackupResult) -> list[str]:
    """One line per file the device failed to send (iOS 17+ does so for FileProvider's backup_manifest.db)."""
    return [
        f"coffer: warning: device {result.udid} did not send {e.domain}/{e.relative_path} ({e.reason}); snapshot "
        f"{result.commit.snapshot_id[:8]} records it as not sent and the next backup asks for it again"
        for e in result.not_sent
    ]


def cmd_backup(ctx: Context) -> int:
    from agent.device.backup import BackupOptions, DeviceBackup
    from agent.device.inventory import connected_udids

    args = ctx.args
    categories = parse_categories(args.categories)
    if args.all:
        udids = connected_udids()
        if not udids:
            raise DeviceError("no device is connected")
    elif args.udid:
        udids = args.udid
    else:
        udids = connected_udids()
        if len(udids) != 1:
            raise UsageError("several devices are connected: choose with --udid or --all" if udids else "no device is connected")
    repository = ctx.open_repository()
    options = BackupOptions(
        full=args.full,
        backup_password=backup_password(args.backup_password_file),
        enable_device_encryption=args.enable_device_encryption,
        progress=ctx.progress,
        categories=categories,
    )
    documents: list[dict[str, object]] = []
    failures: list[CofferError] = []
    for udid in udids:
        try:
            result = DeviceBackup(repository, udid, options).run()
        except CofferError as exc:
            failures.append(exc)
            documents.append({"udid": udid, "ok": False, "error": str(exc), "exit_code": exc.exit_code})
            if len(udids) > 1:
                ctx.warn(f"coffer: {udid}: {exc}")
            continue
        documents.append(_document(result))
        for line in _not_sent_warnings(result):
            ctx.warn(line)
        if not ctx.json:
            ctx.emit(None, _summary(result))
    if ctx.json:
        ctx.emit(documents if (args.all or len(udids) > 1) else documents[0])
    if len(udids) == 1 and failures:
        raise failures[0]
    if failures:
        summary = CofferError(f"{len(failures)} of {plural(len(udids), 'backup')} failed")
        codes = {f.exit_code for f in failures}
        summary.exit_code = codes.pop() if len(codes) == 1 else 1
        raise summary
    return 0


def _target_label(entries: list[SnapshotEntry], udid: str) -> str:
    """The restore target as `Name (UDID)` when the repository knows its name (from its own snapshots)."""
    named = [e for e in entries if selection.udid_of(e) == udid and e.header.device.get("name")]
    return selection.device_label(named[-1]) if named else udid


def cmd_restore(ctx: Context) -> int:
    from agent.device.restore import RestoreOptions, restore_snapshot

    args = ctx.args
    repository = ctx.open_repository()
    options = RestoreOptions(
        categories=parse_categories(args.categories),
        system=args.system,
        keep_existing=args.keep_existing,
        reboot=args.reboot,
        yes=args.yes,
        force=args.force,
        progress=ctx.progress,
    )
    everything = repository.snapshots()
    entry = selection.find(everything, args.snapshot, args.udid)
    result = restore_snapshot(repository, entry.snapshot_id, args.to_udid, options)
    document = {
        "snapshot": result.snapshot_id,
        "target": result.target,
        "source": result.source,
        "files": result.files,
        "bytes": result.bytes,
        "categories": result.categories,
        "safety_snapshot": result.safety_snapshot,
        "notes": result.notes,
    }
    text = "\n".join([
        *result.notes,
        f"restored snapshot {entry.short_id} of {selection.device_label(entry)} ({timestamp(entry.header.time)}) "
        f"→ {_target_label(everything, result.target)}: {plural(result.files, 'file')}, {size(result.bytes)}",
    ])
    ctx.emit(document, text)
    return 0
