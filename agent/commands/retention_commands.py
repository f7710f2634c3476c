"""`coffer forget` and `coffer prune`: retention per device, and reclaiming space."""

from __future__ import annotations

import argparse

from agent.commands.context import Context
from agent.commands.format import size, table, timestamp
from agent.errors import UsageError
from agent.repository.prune import DEFAULT_GRACE_SECONDS, PruneReport, prune
from agent.repository.retention import RetentionPolicy, select
from agent.repository.tombstones import forget_snapshots


def _keep_count(text: str) -> int:
    """A `--keep-*` count: a negative one would keep nothing and forget every snapshot."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


_KEEP_HELP = {
    "last": "keep the N newest snapshots of each device",
    **{name: f"keep the newest snapshot of each of the last N {unit}s that have one, per device"
       for name, unit in (("hourly", "hour"), ("daily", "day"), ("weekly", "week"), ("monthly", "month"),
                          ("yearly", "year"))},
}


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("forget", parents=[common], help="remove snapshots by a retention policy, per device")
    for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        p.add_argument(f"--keep-{name}", type=_keep_count, default=0, metavar="N", help=_KEEP_HELP[name])
    p.add_argument("--prune", action="store_true", help="run prune afterwards")
    p.add_argument("--dry-run", "-n", action="store_true", help="only show what would be removed")
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE_SECONDS, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_forget)

    p = sub.add_parser("prune", parents=[common], help="delete data no snapshot needs (two-phase, safe with running backups)")
    p.add_argument("--dry-run", "-n", action="store_true", help="only show what would be deleted or repacked")
    p.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_SECONDS,
        metavar="SECONDS",
        help="keep marked packs this long before deleting them (default one hour)",
    )
    p.set_defaults(handler=cmd_prune)


def _prune_document(report: PruneReport) -> dict[str, object]:
    return {
        "packs_deleted": report.packs_deleted,
        "bytes_deleted": report.bytes_deleted,
        "packs_marked": report.packs_marked,
        "packs_repacked": report.packs_repacked,
        "packs_kept_alive": report.packs_kept_alive,
        "objects_locked": report.objects_locked,
        "versions_purged": report.versions_purged,
        "retention_extended": report.retention_extended,
        "notes": report.notes,
    }


def _prune_text(report: PruneReport) -> str:
    return (
        f"prune: deleted {report.packs_deleted} packs ({size(report.bytes_deleted)}), "
        f"marked {report.packs_marked} for deletion after the grace period, repacked {report.packs_repacked}"
    )


def cmd_forget(ctx: Context) -> int:
    args = ctx.args
    policy = RetentionPolicy(args.keep_last, args.keep_hourly, args.keep_daily, args.keep_weekly, args.keep_monthly, args.keep_yearly)
    if policy.empty:
        raise UsageError("give at least one --keep-* rule")
    repository = ctx.open_repository()
    repository.keys.require_full()
    keep, remove = select(repository.snapshots(), policy)
    if not args.dry_run:
        forget_snapshots(repository, [e.snapshot_id for e in remove])
    document: dict[str, object] = {
        "keep": [e.snapshot_id for e in keep],
        "remove": [e.snapshot_id for e in remove],
        "dry_run": args.dry_run,
    }
    rows = [[e.short_id, timestamp(e.header.time), e.header.device.get("name", ""), "keep" if e in keep else "remove"]
            for e in sorted(keep + remove, key=lambda e: e.header.time)]
    text = table(["ID", "Time", "Device", "Action"], rows)
    if args.prune and not args.dry_run:
        report = prune(repository, grace_seconds=args.grace)
        document["prune"] = _prune_document(report)
        text += "\n" + _prune_text(report)
    ctx.emit(document, text)
    return 0


def cmd_prune(ctx: Context) -> int:
    repository = ctx.open_repository()
    report = prune(repository, grace_seconds=ctx.args.grace, dry_run=ctx.args.dry_run, on_progress=lambda text: ctx.progress_note("prune", text))
    ctx.emit(_prune_document(report), _prune_text(report))
    return 0
