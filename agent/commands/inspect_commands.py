"""Read-only commands that look into snapshots and devices: diff, find, stats, dump, info.

The logic lives in agent/archive (diff, find, dump), agent/repository/stats.py and
agent/device/info.py; this module parses options and shapes the output.
"""

from __future__ import annotations

import argparse
import base64
import sys
from typing import Any

from agent.archive.diff import MARKS, SnapshotDiff, Tally, diff_snapshots
from agent.archive.dump import locate, read_file
from agent.archive.find import find_files
from agent.archive.view import parse_categories
from agent.commands.context import Context
from agent.commands.format import iso, plural, size, table, timestamp
from agent.commands.repository_commands import snapshot_document
from agent.errors import DeviceError, UsageError
from agent.ios.records import FLAG_DIRECTORY, FLAG_FILE, FLAG_SYMLINK
from agent.repository import selection
from agent.repository.repository import Repository, SnapshotEntry
from agent.repository.stats import RepositoryStats, Usage, repository_stats

_SNAPSHOT_HELP = "snapshot ID, unique prefix or 'latest'"
_KINDS = {FLAG_FILE: "file", FLAG_DIRECTORY: "directory", FLAG_SYMLINK: "symlink"}


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("diff", parents=[common], help="files added, removed or changed between two snapshots")
    p.add_argument("first", metavar="A", help=f"the older snapshot: {_SNAPSHOT_HELP}")
    p.add_argument("second", metavar="B", help=f"the newer snapshot: {_SNAPSHOT_HELP}")
    p.add_argument("--udid", help="resolve 'latest' and prefixes among this device's snapshots (UDID or name)")
    p.add_argument("--categories", help="only these categories, e.g. photos,messages (default: all the key reads)")
    p.set_defaults(handler=cmd_diff)

    p = sub.add_parser("find", parents=[common], help="files matching a glob, in every snapshot")
    p.add_argument("pattern", metavar="PATTERN", help="a glob on the file name or on DOMAIN/PATH, e.g. '*.HEIC'")
    p.add_argument("--udid", help="only this device's snapshots (UDID or name)")
    p.add_argument("--snapshot", action="append", metavar="ID", help="only this snapshot (repeatable)")
    p.add_argument("--categories", help="only these categories (default: all the key reads)")
    p.add_argument("--ignore-case", "-i", action="store_true", help="match regardless of case")
    p.set_defaults(handler=cmd_find)

    p = sub.add_parser("stats", parents=[common], help="restore size, stored size and dedup, per category and device")
    p.add_argument("snapshots", nargs="*", metavar="SNAPSHOT", help=f"only these snapshots ({_SNAPSHOT_HELP}); default all")
    p.add_argument("--udid", help="only this device's snapshots (UDID or name)")
    p.add_argument("--categories", help="only these categories (default: all the key reads)")
    p.set_defaults(handler=cmd_stats)

    p = sub.add_parser("dump", parents=[common], help="write one file of a snapshot to stdout")
    p.add_argument("snapshot", metavar="SNAPSHOT", help=_SNAPSHOT_HELP)
    p.add_argument("path", metavar="DOMAIN/PATH", help="the file, as `extract` names it, e.g. HomeDomain/Library/SMS/sms.db")
    p.add_argument("--udid", help="resolve 'latest' and prefixes among this device's snapshots (UDID or name)")
    p.set_defaults(handler=cmd_dump)

    p = sub.add_parser("info", parents=[common], help="what a device says about itself, and what its last backup says")
    p.add_argument("--udid", help="the device (default: the only one connected)")
    p.set_defaults(handler=cmd_info)


# --- choosing snapshots -----------------------------------------------------------


def _of_device(entries: list[SnapshotEntry], device: str | None) -> list[SnapshotEntry]:
    return selection.for_device(entries, device)


def _chosen(repository: Repository, device: str | None, references: list[str] | None) -> list[SnapshotEntry]:
    """The snapshots a command walks: those of `device` (all without one), only `references` if given."""
    entries = repository.snapshots()
    if device:
        entries = _of_device(entries, device)
    if references:
        wanted = {_resolve(repository, ref, device).snapshot_id for ref in references}
        entries = [e for e in entries if e.snapshot_id in wanted]
    return entries


def _resolve(repository: Repository, reference: str, device: str | None) -> SnapshotEntry:
    """A snapshot by ID, prefix or `latest` (of one device: agent/repository/selection.py)."""
    return repository.find_snapshot(reference, device)


def _brief(entry: SnapshotEntry) -> dict[str, Any]:
    return {"id": entry.snapshot_id, "short_id": entry.short_id, "time": iso(entry.header.time), "device": entry.header.device}


# --- diff -----------------------------------------------------------------------


def _tally_text(tally: Tally) -> str:
    return f"{tally.files} ({size(tally.bytes)})" if tally.files else "-"


def _diff_document(result: SnapshotDiff) -> dict[str, Any]:
    def tallies(group: dict[str, Tally]) -> dict[str, dict[str, int]]:
        return {kind: {"files": t.files, "bytes": t.bytes} for kind, t in group.items()}

    return {
        "a": _brief(result.a),
        "b": _brief(result.b),
        "changes": [
            {"change": c.kind, "category": c.category, "domain": c.domain, "path": c.path, "size": c.size,
             "old_size": c.old_size}
            for c in result.changes
        ],
        "categories": {name: tallies(group) for name, group in result.per_category().items()},
        "totals": tallies(result.totals()),
    }


def cmd_diff(ctx: Context) -> int:
    repository = ctx.open_repository()
    categories = parse_categories(ctx.args.categories)
    a = _resolve(repository, ctx.args.first, ctx.args.udid)
    b = _resolve(repository, ctx.args.second, ctx.args.udid)
    result = diff_snapshots(repository, a, b, categories)
    lines = [f"comparing snapshot {a.short_id} to {b.short_id}:", ""]
    lines += [f"{MARKS[c.kind]}    {c.domain}/{c.path}" for c in result.changes]
    rows = [[name, *(_tally_text(group[k]) for k in MARKS)] for name, group in result.per_category().items()]
    rows.append(["total", *(_tally_text(t) for t in result.totals().values())])
    lines += ["", table(["Category", "Added", "Removed", "Changed"], rows)]
    ctx.emit(_diff_document(result), "\n".join(lines))
    return 0


# --- find -----------------------------------------------------------------------


def cmd_find(ctx: Context) -> int:
    repository = ctx.open_repository()
    categories = parse_categories(ctx.args.categories)
    entries = _chosen(repository, ctx.args.udid, ctx.args.snapshot)
    found = find_files(repository, entries, ctx.args.pattern, categories=categories, ignore_case=ctx.args.ignore_case)
    document = [
        {
            **_brief(hit.entry),
            "hits": len(hit.matches),
            "matches": [
                {"domain": m.record.domain, "path": m.record.relative_path, "category": m.category,
                 "type": _KINDS.get(m.record.flags, "unknown"), "size": m.record.size if m.record.is_file else 0,
                 "mtime": iso(m.record.mtime)}
                for m in hit.matches
            ],
        }
        for hit in found
    ]
    blocks = []
    for hit in found:
        device = hit.entry.header.device.get("name") or hit.entry.header.device.get("udid", "")
        lines = [f"found in snapshot {hit.entry.short_id} from {timestamp(hit.entry.header.time)} ({device}):"]
        lines += [f"  {m.category:<14} {size(m.record.size):>10}  {m.record.domain}/{m.record.relative_path}"
                  for m in hit.matches]
        blocks.append("\n".join(lines))
    ctx.emit(document, "\n\n".join(blocks) if blocks else f"no file matches {ctx.args.pattern!r}")
    return 0


# --- stats ----------------------------------------------------------------------


def _usage_row(label: str, usage: Usage) -> list[object]:
    return [label, usage.snapshots, usage.files, size(usage.restore_bytes), size(usage.unique_bytes),
            size(usage.stored_bytes), f"{usage.dedup_ratio:.2f}x"]


def _stats_document(stats: RepositoryStats, repository_bytes: int) -> dict[str, Any]:
    return {
        "total": stats.total.to_json(),
        "categories": {name: usage.to_json() for name, usage in stats.categories.items()},
        "devices": [
            {"udid": udid, "name": stats.device_names.get(udid, ""), **usage.to_json()}
            for udid, usage in stats.devices.items()
        ],
        "repository_bytes": repository_bytes,
    }


def cmd_stats(ctx: Context) -> int:
    repository = ctx.open_repository()
    categories = parse_categories(ctx.args.categories)
    entries = _chosen(repository, ctx.args.udid, ctx.args.snapshots)
    stats = repository_stats(repository, entries, categories)
    repository_bytes = sum(info.size for info in repository.storage.list("data/"))
    headers = ["", "Snapshots", "Files", "Restore size", "Unique", "Stored", "Dedup"]
    text = "\n\n".join([
        table(["Category", *headers[1:]], [_usage_row(name, u) for name, u in stats.categories.items()]
              + [_usage_row("total", stats.total)]),
        table(["Device", *headers[1:]],
              [_usage_row(stats.device_names.get(udid) or udid, u) for udid, u in stats.devices.items()]),
        f"packs in storage: {size(repository_bytes)} (all snapshots, and data `prune` has yet to reclaim)",
    ])
    if stats.total.missing_chunks:
        ctx.warn(f"warning: {plural(stats.total.missing_chunks, 'chunk')} {'is' if stats.total.missing_chunks == 1 else 'are'} in no pack the index knows: run `coffer check`")
    ctx.emit(_stats_document(stats, repository_bytes), text)
    return 0


# --- dump -----------------------------------------------------------------------


def cmd_dump(ctx: Context) -> int:
    if not ctx.json and sys.stdout.isatty():  # as restic: a photo's bytes on a terminal help nobody
        raise UsageError("stdout is a terminal: redirect it, e.g. `coffer dump SNAPSHOT DOMAIN/PATH > FILE`")
    repository = ctx.open_repository()
    target = locate(repository, _resolve(repository, ctx.args.snapshot, ctx.args.udid), ctx.args.path)
    pieces = read_file(repository, target)
    if ctx.json:  # the bytes inside one JSON document: for scripts that want metadata too (small files)
        record = target.record
        ctx.emit({
            "snapshot": target.entry.snapshot_id, "domain": record.domain, "path": record.relative_path,
            "category": target.category, "size": record.size, "mtime": iso(record.mtime),
            "data": base64.b64encode(b"".join(pieces)).decode("ascii"),
        })
        return 0
    out = sys.stdout.buffer
    for piece in pieces:
        out.write(piece)
    out.flush()
    return 0


# --- info -----------------------------------------------------------------------


def _choose_device(udid: str | None) -> str:
    from agent.device.inventory import connected_udids

    if udid:
        return udid
    udids = connected_udids()
    if not udids:
        raise DeviceError("no device is connected")
    if len(udids) > 1:
        raise UsageError(f"{plural(len(udids), 'device')} are connected: choose one with --udid ({', '.join(udids)})")
    return udids[0]


def _has_repository(ctx: Context) -> bool:
    try:
        ctx.repository_url()
    except UsageError:
        return False
    return True


def _info_text(document: dict[str, Any]) -> str:
    values = document["device"]
    usage = document["domains"].get("com.apple.disk_usage", {})
    encryption = {True: "on", False: "off", None: "unknown"}[document["backup_encryption"]]
    lines = [
        "Device",
        f"  Name:              {values.get('DeviceName', '')}",
        f"  UDID:              {document['udid']}",
        f"  Model:             {values.get('ProductType', '')} ({values.get('HardwareModel', '')})",
        f"  iOS:               {values.get('ProductVersion', '')} ({values.get('BuildVersion', '')})",
        f"  Serial number:     {values.get('SerialNumber', '')}",
        f"  Backup encryption: {encryption}",
    ]
    if "TotalDataCapacity" in usage and "TotalDataAvailable" in usage:
        used = usage["TotalDataCapacity"] - usage["TotalDataAvailable"]
        lines.append(f"  Data:              {size(used)} used of {size(usage['TotalDataCapacity'])}")
    last = document.get("last_backup", False)
    if last is False:
        lines += ["", "Last backup: no repository given (--repo or COFFER_REPOSITORY)"]
    elif last is None:
        lines += ["", "Last backup: none in this repository"]
    else:
        files = sum(c["files"] for c in last["categories"].values())
        restore = sum(c["bytes"] for c in last["categories"].values())
        info = last["info_plist"]
        lines += [
            "",
            "Last backup",
            f"  Snapshot:          {last['short_id']} from {last['time']} ({last['source']} on {last['host']})",
            f"  Contents:          {plural(files, 'file')}, {size(restore)}"
            + ("" if last["complete"] else " (incomplete: no device encryption, so no health or keychain)"),
            f"  Encrypted backup:  {'yes' if last['encrypted_backup'] else 'no'}",
            f"  iOS then:          {info.get('Product Version', '')} ({info.get('Build Version', '')})",
        ]
    return "\n".join(lines)


def cmd_info(ctx: Context) -> int:
    from agent.device.info import backup_info_plist, json_safe, last_backup, read_device

    udid = _choose_device(ctx.args.udid)
    report = read_device(udid)
    will_encrypt = report.domains.get("com.apple.mobile.backup", {}).get("WillEncrypt")
    document: dict[str, Any] = {
        "udid": udid,
        "device": json_safe(report.values),
        "domains": json_safe(report.domains),
        "backup_encryption": None if will_encrypt is None else bool(will_encrypt),
    }
    if _has_repository(ctx):
        entry = last_backup(ctx.open_repository(), udid)
        document["last_backup"] = (
            None if entry is None else {**snapshot_document(entry), "info_plist": json_safe(backup_info_plist(entry))}
        )
    ctx.emit(document, _info_text(document))
    return 0
