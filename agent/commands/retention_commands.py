"""`coffer forget` and `coffer prune`: retention per device, and reclaiming space."""

from __future__ import annotations

import argparse

from agent.commands.context import Context
from agent.commands.format import plural, size, table, timestamp
from agent.errors import UsageError
from agent.repository import selection
from agent.repository.prune import DEFAULT_GRACE_SECONDS, PruneReport, prune
from agent.repository.repository import SnapshotEntry
from agent.repository.retention import Duration, RetentionPlan, RetentionPolicy, plan
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


def _duration(text: str) -> Duration:
    try:
        return Duration.parse(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("forget", parents=[common], help="remove snapshots by ID or by a retention policy, per device")
    p.add_argument("snapshots", nargs="*", metavar="SNAPSHOT",
                   help="forget these snapshots (IDs of at least 8 hex digits, or latest) instead of applying rules")
    p.add_argument("--udid", help="only this device (UDID or device name)")
    p.add_argument("--keep-last", type=_keep_count, default=0, metavar="N",
                   help="keep the N newest complete snapshots (per device, as every rule)")
    for name, period in (("hourly", "hours"), ("daily", "days"), ("weekly", "ISO weeks"), ("monthly", "months"),
                         ("yearly", "years")):
        p.add_argument(f"--keep-{name}", type=_keep_count, default=0, metavar="N",
                       help=f"keep the newest complete snapshot of each of the last N {period} that have one")
    p.add_argument("--keep-within", type=_duration, metavar="DURATION",
                   help="keep complete snapshots within DURATION (7d, 2w, 1y2m, 36h) of the device's newest")
    p.add_argument("--keep-partial", type=_keep_count, default=0, metavar="N",
                   help="also keep the N newest partial snapshots per device (by default partial ones are kept "
                   "only while newer than the newest kept complete one)")
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
        f"prune: deleted {plural(report.packs_deleted, 'pack')} ({size(report.bytes_deleted)}), "
        f"marked {report.packs_marked} for deletion after the grace period, repacked {report.packs_repacked}"
    )


def _policy(args: argparse.Namespace) -> RetentionPolicy:
    return RetentionPolicy(args.keep_last, args.keep_hourly, args.keep_daily, args.keep_weekly, args.keep_monthly,
                           args.keep_yearly, args.keep_within, args.keep_partial)


def _named_plan(entries: list[SnapshotEntry], everything: list[SnapshotEntry], args: argparse.Namespace) -> RetentionPlan:
    """`forget ID…`: remove exactly the snapshots named (of the `--udid` device, if given)."""
    named = {selection.find(everything, reference, args.udid).snapshot_id for reference in args.snapshots}
    result = RetentionPlan()
    for entry in entries:
        if entry.snapshot_id in named:
            result.forget.append(entry)
        else:
            result.keep.append(entry)
            result.reasons[entry.snapshot_id] = ["not named"]
    return result


def _plan_text(result: RetentionPlan, dry_run: bool) -> str:
    removing = {e.snapshot_id for e in result.forget}
    remove_word = "would remove" if dry_run else "remove"
    sections = []
    for group in selection.by_device(result.keep + result.forget).values():
        rows = [
            [e.short_id, timestamp(e.header.time), e.header.role, selection.COVERAGE_NAMES[selection.coverage(e)],
             remove_word if e.snapshot_id in removing else "keep", ", ".join(result.reasons.get(e.snapshot_id, []))]
            for e in group
        ]
        sections.append(f"{selection.device_label(group[-1])}\n"
                        + table(["ID", "Time", "Role", "Holds", "Action", "Reason"], rows))
    total = len(result.keep) + len(result.forget)
    summary = (f"would remove {len(result.forget)} of {plural(total, 'snapshot')} (dry run: nothing removed)" if dry_run
               else f"removed {len(result.forget)} of {plural(total, 'snapshot')}")
    return "\n\n".join([*sections, summary])


def cmd_forget(ctx: Context) -> int:
    args = ctx.args
    policy = _policy(args)
    if args.snapshots and (not policy.empty or policy.partial):
        raise UsageError("give snapshot IDs or --keep-* rules, not both")
    if not args.snapshots and policy.empty:
        raise UsageError("give at least one --keep-* rule (--keep-partial alone would keep no complete snapshot), "
                         "or the IDs of the snapshots to forget")
    repository = ctx.open_repository()
    repository.keys.require_full()
    everything = repository.snapshots()
    entries = selection.for_device(everything, args.udid)
    result = _named_plan(entries, everything, args) if args.snapshots else plan(entries, policy)
    if not args.dry_run:
        forget_snapshots(repository, [e.snapshot_id for e in result.forget])
    document: dict[str, object] = {
        "keep": [e.snapshot_id for e in result.keep],
        "remove": [e.snapshot_id for e in result.forget],
        "reasons": result.reasons,
        "dry_run": args.dry_run,
    }
    text = _plan_text(result, args.dry_run)
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
