"""Commands about the repository itself: init, snapshots, ls, check, tags."""

from __future__ import annotations

import argparse
from typing import Any

from agent.archive.view import open_view, parse_categories
from agent.commands.archive_commands import SNAPSHOT_HELP, UDID_HELP
from agent.commands.context import Context
from agent.commands.format import iso, plural, size, table, timestamp
from agent.errors import RepositoryDamagedError, StorageError, UsageError
from agent.ios.categories import Category
from agent.keys.sources import new_passphrase
from agent.repository import selection
from agent.repository.check import check_repository
from agent.repository.config import CONFIG_NAME
from agent.repository.repository import Repository, SnapshotEntry
from agent.storage.base import Storage
from agent.units import parse_fraction


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("init", parents=[common], help="create a repository; prints the recovery key once")
    p.add_argument("--object-lock-days", type=int, default=0, help="S3 Object Lock retention for data objects")
    p.add_argument("--plain-category-tags", action="store_true", help="readable category names in storage (privacy trade-off)")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("snapshots", parents=[common], help="list snapshots, per device")
    p.add_argument("--udid", help="only this device (UDID or device name)")
    p.add_argument("--category", help="only snapshots holding this category")
    p.set_defaults(handler=cmd_snapshots)

    p = sub.add_parser("ls", parents=[common], help="list the files of a snapshot")
    p.add_argument("snapshot", help=SNAPSHOT_HELP)
    p.add_argument("--udid", help=UDID_HELP)
    p.add_argument("--category", help="only this category")
    p.set_defaults(handler=cmd_ls)

    p = sub.add_parser("check", parents=[common], help="verify the repository")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--read-data", action="store_true", help="read and verify every blob")
    group.add_argument(
        "--read-data-subset", metavar="N%|A/B", help="read and verify a random share of the packs: 20%% or 1/5"
    )
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("tags", parents=[common], help="print the category → storage tag mapping")
    p.set_defaults(handler=cmd_tags)


def _refuse_foreign_content(storage: Storage) -> None:
    """`init` writes only into an empty location: a folder or prefix holding other files is a mistyped path,
    and a repository's objects mixed with them could never be told apart or pruned safely."""
    if storage.exists(CONFIG_NAME):
        return  # Repository.init names it: a repository already exists there
    try:
        first = next(iter(storage.list("")), None)
    except StorageError:
        return  # the folder or bucket does not exist yet: init creates it
    if first is not None:
        raise UsageError(
            f"{storage.location} is not empty and is not a Coffer repository (it holds {first.name}, …): "
            "choose an empty or new location"
        )


def cmd_init(ctx: Context) -> int:
    passphrase = new_passphrase(ctx.secret_options)
    object_lock_days = ctx.args.object_lock_days
    if object_lock_days < 0:
        raise UsageError("--object-lock-days must be 0 or more")
    storage = ctx.storage()
    _refuse_foreign_content(storage)
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
        "partial": header.partial,
        "role": header.role,
        "parent": entry.chain.previous,
        "categories": {
            name: {"files": s.files, "bytes": s.bytes, "new_bytes": s.new_bytes} for name, s in header.categories.items()
        },
        "skipped": len(header.skipped),
    }


def _categories_summary(entry: SnapshotEntry, width: int = 44) -> str:
    """The categories with files, largest count first, cut to `width` characters with "+N more"."""
    held = sorted((-s.files, name) for name, s in entry.header.categories.items() if s.files)
    words = [f"{name} {-files}" for files, name in held]
    shown: list[str] = []
    for position, word in enumerate(words):
        rest = len(words) - position - 1
        tail = f", +{rest} more" if rest else ""
        if len(", ".join([*shown, word]) + tail) > width and shown:
            return ", ".join(shown) + f", +{len(words) - len(shown)} more"
        shown.append(word)
    return ", ".join(shown)


def _device_title(group: list[SnapshotEntry]) -> str:
    device = group[-1].header.device
    facts = [device.get("product_type", ""), f"iOS {device['product_version']}" if device.get("product_version") else ""]
    count = f"{len(group)} snapshot{'s' if len(group) != 1 else ''}"
    return " · ".join(part for part in (selection.device_label(group[-1]), *facts, count) if part)


def cmd_snapshots(ctx: Context) -> int:
    repository = ctx.open_repository()
    entries = selection.for_device(repository.snapshots(), ctx.args.udid)
    if ctx.args.category:
        parse_categories(ctx.args.category)
        entries = [e for e in entries if (held := e.header.categories.get(ctx.args.category)) and held.files]
    sections = []
    for group in selection.by_device(entries).values():
        rows = [
            [
                e.short_id,
                timestamp(e.header.time),
                e.header.role,
                selection.COVERAGE_NAMES[selection.coverage(e)],
                sum(s.files for s in e.header.categories.values()),
                size(sum(s.bytes for s in e.header.categories.values())),
                _categories_summary(e),
            ]
            for e in group
        ]
        sections.append(_device_title(group) + "\n"
                        + table(["ID", "Time", "Role", "Holds", "Files", "Size", "Categories (files)"], rows))
    ctx.emit([snapshot_document(e) for e in entries], "\n\n".join(sections) if sections else "no snapshots")
    return 0


def cmd_ls(ctx: Context) -> int:
    repository = ctx.open_repository()
    categories = parse_categories(ctx.args.category)
    view = open_view(repository, repository.find_snapshot(ctx.args.snapshot, ctx.args.udid), categories)
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
        return parse_fraction(text)
    except ValueError as exc:
        raise UsageError(f"--read-data-subset: {exc}") from None


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
        f"{plural(report.snapshots, 'snapshot')}, {plural(report.packs, 'pack')}"
        + (f", {plural(report.packs_read, 'pack')} / {plural(report.blobs_read, 'blob')} read" if fraction else "")
        + (": no errors" if report.ok else f": {plural(len(report.errors), 'error')}")
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
