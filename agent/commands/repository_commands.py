"""Commands about the repository itself: init, snapshots, ls, check, tags."""

from __future__ import annotations

import argparse
from typing import Any

from agent.archive.view import open_view, parse_categories
from agent.commands.context import Context
from agent.commands.format import iso, size, table, timestamp
from agent.errors import RepositoryDamagedError, UsageError
from agent.ios.categories import Category
from agent.keys.sources import new_passphrase
from agent.repository.check import check_repository
from agent.repository.repository import Repository, SnapshotEntry


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("init", parents=[common], help="create a repository; prints the recovery key once")
    p.add_argument("--object-lock-days", type=int, default=0, help="S3 Object Lock retention for data objects")
    p.add_argument("--plain-category-tags", action="store_true", help="readable category names in storage (privacy trade-off)")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("snapshots", parents=[common], help="list snapshots")
    p.add_argument("--udid", help="only this device")
    p.add_argument("--category", help="only snapshots holding this category")
    p.set_defaults(handler=cmd_snapshots)

    p = sub.add_parser("ls", parents=[common], help="list the files of a snapshot")
    p.add_argument("snapshot", help="snapshot ID, prefix or 'latest'")
    p.add_argument("--category", help="only this category")
    p.set_defaults(handler=cmd_ls)

    p = sub.add_parser("check", parents=[common], help="verify the repository")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--read-data", action="store_true", help="read and verify every blob")
    group.add_argument("--read-data-subset", metavar="N%", help="read and verify a random N%% of the packs")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("tags", parents=[common], help="print the category → storage tag mapping")
    p.set_defaults(handler=cmd_tags)


def cmd_init(ctx: Context) -> int:
    passphrase = new_passphrase(ctx.secret_options)
    object_lock_days = ctx.args.object_lock_days
    if object_lock_days < 0:
        raise UsageError("--object-lock-days must be 0 or more")
    storage = ctx.storage()
    repository, recovery = Repository.init(
        storage,
        passphrase,
        [c.value for c in Category],
        plain_category_tags=ctx.args.plain_category_tags,
        object_lock_days=object_lock_days,
    )
    document = {
        "repository_id": repository.config.repository_id,
        "location": storage.location,
        "recovery_key": recovery,
    }
    ctx.emit(
        document,
        f"created repository {repository.config.repository_id[:8]} at {storage.location}\n\n"
        "RECOVERY KEY — write it down and keep it safe. It is shown only this once and unlocks\n"
        "everything if the passphrase is lost:\n\n"
        f"    {recovery}\n",
    )
    return 0


def snapshot_document(entry: SnapshotEntry) -> dict[str, Any]:
    header = entry.header
    return {
        "id": entry.snapshot_id,
        "short_id": entry.short_id,
        "time": iso(header.time),
        "device": header.device,
        "source": header.source,
        "host": header.host,
        "encrypted_backup": header.is_encrypted,
        "complete": header.complete,
        "parent": entry.chain.previous,
        "categories": {
            name: {"files": s.files, "bytes": s.bytes, "new_bytes": s.new_bytes} for name, s in header.categories.items()
        },
        "skipped": len(header.skipped),
    }


def cmd_snapshots(ctx: Context) -> int:
    repository = ctx.open_repository()
    entries = repository.snapshots()
    if ctx.args.udid:
        entries = [e for e in entries if e.header.device.get("udid") == ctx.args.udid]
    if ctx.args.category:
        parse_categories(ctx.args.category)
        entries = [e for e in entries if e.header.categories.get(ctx.args.category, None)]
    rows = [
        [
            e.short_id,
            timestamp(e.header.time),
            e.header.device.get("name", ""),
            e.header.device.get("udid", "")[:13],
            sum(s.files for s in e.header.categories.values()),
            size(sum(s.bytes for s in e.header.categories.values())),
            ", ".join(sorted(k for k, s in e.header.categories.items() if s.files)),
        ]
        for e in entries
    ]
    ctx.emit(
        [snapshot_document(e) for e in entries],
        table(["ID", "Time", "Device", "UDID", "Files", "Size", "Categories"], rows) if rows else "no snapshots",
    )
    return 0


def cmd_ls(ctx: Context) -> int:
    repository = ctx.open_repository()
    categories = parse_categories(ctx.args.category)
    view = open_view(repository, ctx.args.snapshot, categories)
    items = []
    for category, _row, record in view.records():
        kind = {1: "file", 2: "directory", 4: "symlink"}.get(record.flags, "unknown")
        items.append(
            {
                "domain": record.domain,
                "path": record.relative_path,
                "category": category,
                "size": record.size if record.is_file else 0,
                "type": kind,
                "mtime": iso(record.mtime),
                "file_id": record.file_id,
            }
        )
    items.sort(key=lambda i: (i["domain"], i["path"]))
    human = "\n".join(f"{i['category']:<14} {size(i['size']):>10}  {i['domain']}/{i['path']}" for i in items)
    totals: dict[str, list[int]] = {}
    for item in items:
        total = totals.setdefault(item["category"], [0, 0])
        total[0] += item["type"] == "file"
        total[1] += item["size"]
    summary = table(["Category", "Files", "Size"], [[c, t[0], size(t[1])] for c, t in sorted(totals.items())])
    ctx.emit(items, f"{human}\n\n{summary}" if items else "no files")
    return 0


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError as exc:
        raise UsageError(f"--read-data-subset takes a percentage such as 10%, not {text!r}") from exc
    if not 0 < value <= 100:
        raise UsageError("--read-data-subset must be between 0% and 100%")
    return value / 100


def cmd_check(ctx: Context) -> int:
    from agent.archive.progress import Progress

    repository = ctx.open_repository()
    fraction = 1.0 if ctx.args.read_data else _fraction(ctx.args.read_data_subset) if ctx.args.read_data_subset else 0.0
    if fraction:
        repository.keys.require_full()
    total = sum(i.size for i in repository.storage.list("data/")) if fraction else 0
    with Progress("check", total * fraction or None, enabled=ctx.progress and bool(fraction)) as bar:
        report = check_repository(repository, read_data_fraction=fraction, on_pack=bar.advance)
    document = {
        "ok": report.ok,
        "errors": report.errors,
        "warnings": report.warnings,
        "snapshots": report.snapshots,
        "packs": report.packs,
        "packs_read": report.packs_read,
        "blobs_read": report.blobs_read,
        "bytes_read": report.bytes_read,
    }
    lines = [f"warning: {w}" for w in report.warnings] + [f"error: {e}" for e in report.errors]
    lines.append(
        f"{report.snapshots} snapshots, {report.packs} packs"
        + (f", {report.packs_read} packs / {report.blobs_read} blobs read" if fraction else "")
        + (": no errors" if report.ok else f": {len(report.errors)} errors")
    )
    ctx.emit(document, "\n".join(lines))
    if not report.ok:
        raise RepositoryDamagedError(report.errors[0] + (f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""))
    return 0


def cmd_tags(ctx: Context) -> int:
    repository = ctx.open_repository()
    mapping = {space: repository.tag(space) for space in sorted(repository.config.public_keys) if space != "_header"}
    ctx.emit(mapping, table(["Category", "Tag (data/<tag>/…)"], sorted(mapping.items())))
    return 0
