"""Commands that move backups in and out: import, export, extract."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.archive.damage import report_damage
from agent.archive.exporter import export_snapshot
from agent.archive.extractor import extract_snapshot
from agent.archive.importer import import_folder
from agent.archive.view import parse_categories
from agent.commands.context import Context
from agent.commands.format import plural, size, table
from agent.keys.sources import read_secret_file


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("import", parents=[common], help="ingest an existing Finder/iTunes backup folder")
    p.add_argument("directory", type=Path, help="the backup folder (the one holding Manifest.db)")
    p.add_argument("--backup-password-file", help="the device backup password of an encrypted backup")
    p.add_argument("--force", action="store_true", help="read every file, even those the files cache says are unchanged")
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("export", parents=[common], help="write a Finder/iTunes-compatible backup folder")
    p.add_argument("snapshot", help=SNAPSHOT_HELP)
    p.add_argument("--udid", help=UDID_HELP)
    p.add_argument("directory", type=Path, help="a new or empty folder to write the backup folder into")
    p.add_argument("--categories", help="only these categories, e.g. photos,messages (the folder is marked partial)")
    p.add_argument("--decrypt", action="store_true", help="write a plaintext backup (of an encrypted one)")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("extract", parents=[common], help="write the files themselves under DIR/<domain>/<path>")
    p.add_argument("snapshot", help=SNAPSHOT_HELP)
    p.add_argument("--udid", help=UDID_HELP)
    p.add_argument("directory", type=Path, help="the folder to write DOMAIN/PATH files under (created if needed)")
    p.add_argument("--categories", help="only these categories")
    p.add_argument("--path", dest="path_glob", help="only paths matching this glob (domain/path or path)")
    p.set_defaults(handler=cmd_extract)


SNAPSHOT_HELP = "snapshot ID (at least 8 hex digits) or 'latest' (the device's latest complete snapshot)"
UDID_HELP = "the device (UDID or device name) whose snapshot to take; needed for 'latest' when several are stored"


def backup_password(path: str | None) -> str | None:
    return read_secret_file(path, "backup password file") if path else None


def cmd_import(ctx: Context) -> int:
    password = backup_password(ctx.args.backup_password_file)
    repository = ctx.open_repository()
    result = import_folder(
        repository, ctx.args.directory, backup_password=password, progress=ctx.progress, use_files_cache=not ctx.args.force
    )
    header = result.commit.header
    stats = result.writer
    total = sum(s.bytes for s in stats.spaces.values()) + stats.unchanged_bytes
    new = sum(s.new_bytes for s in stats.spaces.values())
    stored = sum(s.stored_bytes for s in stats.spaces.values())
    document = {
        "id": result.commit.snapshot_id,
        "short_id": result.commit.snapshot_id[:8],
        "device": header.device,
        "categories": {k: {"files": v.files, "bytes": v.bytes, "new_bytes": v.new_bytes} for k, v in header.categories.items()},
        "bytes": total,
        "new_bytes": new,
        "stored_bytes": stored,
        "reused_bytes": total - new,
        "packs": stats.packs_uploaded,
        "files_unchanged": stats.files_unchanged,
        "skipped": header.skipped,
        "warnings": result.warnings,
        "seconds": round(result.commit.elapsed, 3),
    }
    rows = [[k, v.files, size(v.bytes), size(v.new_bytes)] for k, v in sorted(header.categories.items())]
    human = (
        table(["Category", "Files", "Size", "Stored"], rows)
        + f"\n\nsnapshot {result.commit.snapshot_id[:8]} of {header.device.get('name') or header.device.get('udid')}: "
        f"{size(total)} read, {size(total - new)} already in the repository, {size(stored)} stored "
        f"in {result.commit.elapsed:.1f} s"
    )
    for skipped in header.skipped:
        ctx.note(f"skipped {skipped['domain']}/{skipped['path']}: {skipped['reason']}")
    for warning in result.warnings:
        ctx.warn(f"warning: {warning}")
    ctx.emit(document, human)
    return 0


def cmd_export(ctx: Context) -> int:
    repository = ctx.open_repository()
    result = export_snapshot(
        repository,
        repository.find_snapshot(ctx.args.snapshot, ctx.args.udid),
        ctx.args.directory,
        categories=parse_categories(ctx.args.categories),
        decrypt=ctx.args.decrypt,
        progress=ctx.progress,
    )
    document = {
        "id": result.snapshot_id,
        "directory": str(ctx.args.directory),
        "files": result.files,
        "bytes": result.bytes,
        "categories": result.categories,
        "encrypted": result.encrypted,
        "damaged": result.damaged,
    }
    ctx.emit(document, f"exported snapshot {result.snapshot_id[:8]}: {plural(result.files, 'file')}, {size(result.bytes)} to {ctx.args.directory}")
    report_damage(result.damaged, "exported", ctx.warn)
    return 0


def cmd_extract(ctx: Context) -> int:
    repository = ctx.open_repository()
    result = extract_snapshot(
        repository,
        repository.find_snapshot(ctx.args.snapshot, ctx.args.udid),
        ctx.args.directory,
        categories=parse_categories(ctx.args.categories),
        path_glob=ctx.args.path_glob,
        progress=ctx.progress,
    )
    for skipped in result.skipped:
        ctx.note(f"skipped {skipped['domain']}/{skipped['path']}: {skipped['reason']}")
    document = {
        "id": result.snapshot_id,
        "files": result.files,
        "bytes": result.bytes,
        "skipped": result.skipped,
        "damaged": result.damaged,
    }
    ctx.emit(document, f"extracted {plural(result.files, 'file')}, {size(result.bytes)} to {ctx.args.directory}")
    report_damage(result.damaged, "extracted", ctx.warn)
    return 0
