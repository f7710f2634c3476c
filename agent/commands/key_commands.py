"""`coffer key …`: add, list, remove and change key slots; station and category key files."""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import replace
from pathlib import Path

from agent.commands.context import Context
from agent.commands.format import iso, plural, size, table, timestamp
from agent.errors import CofferError, UsageError
from agent.ios.categories import Category
from agent.keys import slots
from agent.keys.keyset import KeySet
from agent.keys.slots import KeyFile, Passphrase, SlotEntry
from agent.keys.sources import replacement_passphrase, resolve_secret
from agent.repository.repository import Repository
from agent.repository.rotation import rotate


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    key = sub.add_parser("key", parents=[common], help="manage key slots")
    key_sub = key.add_subparsers(dest="key_command", required=True, metavar="{add,list,remove,passwd,rotate,export-category}",
                             help="what to do with key slots")

    p = key_sub.add_parser("add", parents=[common], help="add a passphrase slot, or a put-only station key file")
    p.add_argument("--put-only", action="store_true", help="a key file that can add backups but read nothing")
    p.add_argument("--output", type=Path, help="where to write the key file (with --put-only)")
    p.add_argument("--label", help="a label for the slot (stored encrypted)")
    p.add_argument("--new-password-file", help="the new passphrase (else COFFER_NEW_PASSWORD or a prompt)")
    p.set_defaults(handler=cmd_add)

    p = key_sub.add_parser("export-category", parents=[common], help="a key file that reads one category only")
    p.add_argument("category", choices=[c.value for c in Category], metavar="CATEGORY",
                   help="the category the key file reads, e.g. photos")
    p.add_argument("--output", type=Path, required=True, help="where to write the key file (keep it safe)")
    p.add_argument("--label", help="a label for the slot (stored encrypted)")
    p.set_defaults(handler=cmd_export_category)

    p = key_sub.add_parser("list", parents=[common], help="list key slots")
    p.set_defaults(handler=cmd_list)

    p = key_sub.add_parser("remove", parents=[common], help="remove a key slot")
    p.add_argument("slot", help="slot ID or prefix (see `coffer key list`)")
    p.set_defaults(handler=cmd_remove)

    p = key_sub.add_parser(
        "rotate",
        parents=[common],
        help="new keys for new data; re-seal index and snapshots; revoke station and category key files",
        description="New authentication, index and category keys; the index, snapshots, tombstones and fossils are "
        "re-sealed; a new recovery key is printed; recovery contacts carry over; station and category key files "
        "are revoked. Packs stay sealed to the old category keys (their data remains readable by whoever held an "
        "old key); the chunk-ID and chunker keys are kept so deduplication keeps working.",
    )
    p.set_defaults(handler=cmd_rotate)

    p = key_sub.add_parser("passwd", parents=[common], help="change the passphrase of the slot in use")
    p.add_argument("--new-password-file", help="the new passphrase (else COFFER_NEW_PASSWORD or a prompt)")
    p.set_defaults(handler=cmd_passwd)


def cmd_add(ctx: Context) -> int:
    repository = ctx.open_repository()
    repository.keys.require_full()
    if ctx.args.put_only:
        if not ctx.args.output:
            raise UsageError("--put-only needs --output FILE for the station key file")
        name = _key_file_slot(repository, "put-only", repository.keys.put_only(), ctx.args.output)
        kind, what = "put-only", f"put-only station key written to {ctx.args.output}"
    else:
        if ctx.args.output:
            raise UsageError("--output goes with --put-only")
        name = slots.add_passphrase_slot(
            repository.storage, repository.config.kdf, replacement_passphrase(ctx.args.new_password_file), repository.keys
        )
        kind, what = "passphrase", "passphrase slot added"
    repository.record_slots(added={name: SlotEntry.new(kind, ctx.args.label)})
    ctx.emit({"id": name.removeprefix(slots.SLOT_PREFIX)}, f"{what} (slot {name.removeprefix(slots.SLOT_PREFIX)[:8]})")
    return 0


def _key_file_slot(repository: Repository, kind: str, keys: KeySet, output: Path) -> str:
    """Write a slot and its key file, in that order; the config lists the slot after (the caller).

    A key file already at `output` whose slot holds these keys is what a stopped run of the same command
    wrote (its slot not listed yet, or listed but the output lost): it is taken up, not refused. (A
    station's own `station_key` is new at every `put_only()`, so it is left out of the comparison.)
    """
    if output.exists():
        with contextlib.suppress(CofferError):  # not such a file: refused below, as any existing file is
            opened = slots.unlock(repository.storage, repository.config.kdf, KeyFile(output))[0]
            if replace(opened.keys, station_key=None).to_bytes() == replace(keys, station_key=None).to_bytes():
                return opened.slot_name
    return slots.add_key_file_slot(repository.storage, kind, keys, output)


def cmd_export_category(ctx: Context) -> int:
    repository = ctx.open_repository()
    repository.keys.require_full()
    share = repository.keys.category_share(ctx.args.category)
    name = _key_file_slot(repository, "category", share, ctx.args.output)
    repository.record_slots(added={name: SlotEntry.new("category", ctx.args.label or ctx.args.category)})
    ctx.emit(
        {"id": name.removeprefix(slots.SLOT_PREFIX), "category": ctx.args.category, "output": str(ctx.args.output)},
        f"key file for category {ctx.args.category} written to {ctx.args.output}",
    )
    return 0


def cmd_list(ctx: Context) -> int:
    repository = ctx.open_repository()
    infos = sorted(repository.config.key_slots.items(), key=lambda item: item[1].created)
    document = [
        {
            "id": name.removeprefix(slots.SLOT_PREFIX),
            "short_id": slots.short_id(name),
            "kind": entry.kind,
            "created": iso(entry.created),
            "label": entry.label,
            "current": name == repository.slot_name,
        }
        for name, entry in infos
    ]
    rows = [
        [("*" if d["current"] else " ") + d["short_id"], d["kind"], timestamp(entry.created), d["label"] or ""]
        for d, (_, entry) in zip(document, infos, strict=True)
    ]
    ctx.emit(document, table(["ID", "Kind", "Created", "Label"], rows))
    return 0


def cmd_remove(ctx: Context) -> int:
    repository = ctx.open_repository()
    repository.keys.require_full()
    name = slots.find_slot(repository.config.key_slots, ctx.args.slot)
    if name == repository.slot_name:
        raise UsageError("refusing to remove the slot in use: unlock with another key to remove this one")
    full_slots = repository.config.slots_of_kind(*slots.FULL_KINDS)
    if full_slots == [name]:
        raise UsageError("refusing to remove the last slot that can read everything")
    # The config first: once it no longer lists the slot, no key can use it, even if the deletion never happens.
    repository.record_slots(removed=[name])
    repository.storage.delete(name)
    ctx.emit({"removed": name.removeprefix(slots.SLOT_PREFIX)}, f"removed key slot {name.removeprefix(slots.SLOT_PREFIX)[:8]}")
    return 0


def cmd_passwd(ctx: Context) -> int:
    repository = ctx.open_repository()
    repository.keys.require_full()
    old = repository.slot_name
    old_entry = repository.config.key_slots.get(old)
    name = slots.add_passphrase_slot(repository.storage, repository.config.kdf, replacement_passphrase(ctx.args.new_password_file), repository.keys)
    replaced = old != name and old_entry is not None and old_entry.kind == "passphrase"
    label = old_entry.label if replaced and old_entry is not None else None
    repository.record_slots(added={name: SlotEntry.new("passphrase", label)}, removed=[old] if replaced else [])
    if replaced:
        repository.storage.delete(old)
    ctx.emit({"id": name.removeprefix(slots.SLOT_PREFIX)}, "passphrase changed")
    return 0


def cmd_rotate(ctx: Context) -> int:
    secret = resolve_secret(ctx.secret_options)
    if not isinstance(secret, Passphrase):
        raise UsageError("run `key rotate` with the passphrase: it becomes the new key set's passphrase")
    report = rotate(Repository.open(ctx.storage(), secret), secret.text)
    document = {
        "recovery_key": report.recovery_key,
        "snapshots_resealed": report.snapshots_resealed,
        "packs_under_old_keys": report.packs_under_old_keys,
        "bytes_under_old_keys": report.bytes_under_old_keys,
        "contact_slots": report.contact_slots,
        "revoked": report.revoked,
        "leftovers_removed": report.leftovers_removed,
    }
    finished = (
        f"finished an interrupted rotation or key change: removed {plural(report.leftovers_removed, 'leftover')} "
        "(unlisted slots, snapshot copies)\n" if report.leftovers_removed else ""
    )
    text = finished + (
        f"rotated: {plural(report.snapshots_resealed, 'snapshot')} re-sealed, {plural(report.contact_slots, 'contact slot')} carried over, "
        f"{plural(len(report.revoked), 'station/category key file')} revoked\n"
        f"{plural(report.packs_under_old_keys, 'pack')} ({size(report.bytes_under_old_keys)}) stay sealed to the old keys: whoever "
        "held an old key can still read that data; new data uses the new keys\n\n"
        f"NEW RECOVERY KEY (the old one no longer works) — write it down:\n\n    {report.recovery_key}\n"
    )
    ctx.emit(document, text)
    return 0
