"""Commands that heal a repository: `repair [index|packs|snapshots]` and `unlock`."""

from __future__ import annotations

import argparse

from agent.commands.context import Context
from agent.commands.format import plural
from agent.repository import locks
from agent.repository.repair import RepairReport, repair

PARTS = ("index", "packs", "snapshots")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "repair",
        parents=[common],
        help="rebuild the index from the packs, salvage damaged packs, mark lost files in snapshots",
    )
    p.add_argument(
        "part",
        nargs="?",
        choices=PARTS,
        help="only this step: index (from pack trailers, cheap), packs (read and verify every pack, salvage the "
        "intact blobs of damaged ones), snapshots (rewrite those that reference lost data); default: all three",
    )
    p.set_defaults(handler=cmd_repair)

    p = sub.add_parser("unlock", parents=[common], help="remove stale leases (of processes that are gone)")
    p.add_argument("--remove-all", action="store_true", help="remove every lease, also live ones: only when you know no command runs")
    p.set_defaults(handler=cmd_unlock)


def _repair_document(report: RepairReport) -> dict[str, object]:
    return {
        "packs_scanned": report.packs_scanned,
        "packs_indexed": report.packs_indexed,
        "packs_damaged": report.packs_damaged,
        "blobs_salvaged": report.blobs_salvaged,
        "index_objects_replaced": report.index_objects_replaced,
        "snapshots_rewritten": report.snapshots_rewritten,
        "snapshots_removed": report.snapshots_removed,
        "leftovers_removed": report.leftovers_removed,
        "files_lost": report.files_lost,
        "notes": report.notes,
    }


def cmd_repair(ctx: Context) -> int:
    part = ctx.args.part
    repository = ctx.open_repository()
    report = repair(
        repository,
        index=part in (None, "index"),
        packs=part in (None, "packs"),
        snapshots=part in (None, "snapshots"),
        on_progress=ctx.note,
    )
    for note in report.notes:
        ctx.note(f"note: {note}")
    for lost in report.files_lost:
        ctx.warn(f"lost in snapshot {lost['snapshot'][:8]}: {lost['category']} {lost['domain']}/{lost['path']}")
    lines = [
        f"repair: {plural(report.packs_scanned, 'pack')} scanned, {report.packs_indexed} indexed, "
        f"{len(report.packs_damaged)} damaged ({plural(report.blobs_salvaged, 'blob')} salvaged), "
        f"{plural(report.index_objects_replaced, 'index object')} replaced",
        f"{plural(len(report.snapshots_rewritten), 'snapshot')} rewritten ({plural(len(report.files_lost), 'file')} lost), "
        f"{plural(len(report.snapshots_removed), 'unreadable snapshot')} forgotten, "
        f"{plural(report.leftovers_removed, 'leftover')} of interrupted key changes removed",
    ]
    if report.files_lost:
        lines.append("the next backup of the same device stores the lost data again")
    ctx.emit(_repair_document(report), "\n".join(lines))
    return 0


def cmd_unlock(ctx: Context) -> int:
    repository = ctx.open_repository()
    removed, kept = locks.remove_leases(repository, everything=ctx.args.remove_all)
    lines = [f"removed {lease.describe()}" for lease in removed]
    lines += [f"kept {lease.describe()} (a live holder; --remove-all removes it too)" for lease in kept]
    lines.append(f"{len(removed)} leases removed, {len(kept)} kept")
    ctx.emit({"removed": [lease.document() for lease in removed], "kept": [lease.document() for lease in kept]}, "\n".join(lines))
    return 0
