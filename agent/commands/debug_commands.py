"""`coffer debug …`: tools for looking at a repository from outside, with no key.

`debug storage-view` prints what the storage provider sees (agent.storage.provider_view): per
kind of object its count, sizes and whether they fall on Padmé classes, what is readable in
clear, the packs of each category tag and which tags each backup's burst of writes touched.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from agent.commands.context import Context
from agent.commands.format import size, table
from agent.storage.provider_view import KIND_LABELS, MIN_TESTED_SIZE, survey

SHOWN_PER_KIND = 4


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    debug = sub.add_parser("debug", parents=[common], help="look at a repository from outside")
    debug_sub = debug.add_subparsers(dest="debug_command", required=True, metavar="{storage-view}",
                                     help="what to inspect")
    p = debug_sub.add_parser(
        "storage-view", parents=[common],
        help="what the storage provider sees, read with no key: sizes, tags, times, anything in clear",
    )
    p.set_defaults(handler=cmd_storage_view)


def cmd_storage_view(ctx: Context) -> int:
    document = survey(ctx.storage()).to_json()
    ctx.emit(document, render_text(document))
    return 0


def _size(value: int | None) -> str:
    return "-" if value is None else size(value)


def _kind_rows(document: dict[str, Any]) -> list[list[object]]:
    summaries = [(KIND_LABELS[kind], s) for kind, s in document["kinds"].items()] + [("all", document["totals"])]
    return [
        [label, s["count"], _size(s["min"]), _size(s["median"]), _size(s["max"]), f"{s['on_padme_class']}/{s['count']}",
         s["below_min_size"], len(s["not_random"]), len(s["clear_json"])]
        for label, s in summaries
    ]


def _readable_rows(document: dict[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    for kind, s in document["kinds"].items():
        label = KIND_LABELS[kind]
        for path, entry in s["plain_fields"].items():
            rows.append([label, path, "value", f"{entry['distinct']} distinct: " + ", ".join(json.dumps(v) for v in entry["values"])[:70]])
        for path, lengths in s["visible_lengths"].items():
            spread = f"{lengths[0]} B" if len(lengths) == 1 else f"{len(lengths)} lengths, {lengths[0]}–{lengths[-1]} B"
            rows.append([label, path, "length", spread])
        for key, entry in s["metadata"].items():
            rows.append([label, key, "metadata", f"{entry['distinct']} distinct: " + ", ".join(entry["values"])[:70]])
    return rows


def render_text(document: dict[str, Any]) -> str:
    """The survey as tables, from its JSON document (so both outputs say the same)."""
    out = [f"What the storage provider sees at {document['location']} (no key used)", ""]
    out.append(table(["Kind", "Objects", "Min", "Median", "Max", "On Padmé", f"< {MIN_TESTED_SIZE} B", "Not random",
                      "Clear JSON"], _kind_rows(document)))
    totals = document["totals"]
    if totals["smallest"]:
        out.append(f"smallest object: {totals['smallest']['name']} ({_size(totals['smallest']['size'])}); "
                   f"{totals['untested']} objects too small (or unreadable) for the statistical tests")
    if document["tags"]:
        out += ["", table(["Tag", "Packs", "Bytes", "Smallest", "Largest"],
                          [[t, s["packs"], _size(s["bytes"]), _size(s["min"]), _size(s["max"])]
                           for t, s in document["tags"].items()])]
    if document["bursts"]:
        rows = [
            [n, (b["snapshot"] or "(none yet)").removeprefix("snapshots/")[:12], b["mtime"] or "-", b["packs"],
             _size(b["pack_bytes"]), b["index"], f"{len(b['tags'])}: " + " ".join(t[:8] for t in b["tags"])]
            for n, b in enumerate(document["bursts"], start=1)
        ]
        out += ["", "Bursts of writes, each ending in a snapshot (by modification time):",
                table(["#", "Snapshot", "Time", "Packs", "Bytes", "Index", "Tags that received packs"], rows)]
    if readable := _readable_rows(document):
        out += ["", "Readable without a key:", table(["Kind", "Field", "What", "Seen"], readable)]
    flagged = [o for o in document["objects"] if o["findings"] or o["error"]]
    if flagged:
        out += ["", f"Objects with something in clear, or unreadable ({len(flagged)}; a few of each kind, see --json):"]
        for kind in document["kinds"]:
            of_kind = [o for o in flagged if o["kind"] == kind]
            for item in of_kind[:SHOWN_PER_KIND]:
                reasons = [item["error"]] if item["error"] else [f"{f['test']}: {f['detail']}" for f in item["findings"]]
                out.append(f"  {item['name'][:60]:<60} {_size(item['size']):>10}  {'; '.join(reasons)[:120]}")
            if len(of_kind) > SHOWN_PER_KIND:
                out.append(f"  … and {len(of_kind) - SHOWN_PER_KIND} more {KIND_LABELS[kind]}")
    return "\n".join(out)
