"""Make a reproducible iOS-like backup folder for benchmarks, or change one as a day of use would.

    .venv/bin/python -m benchmarks.datagen benchmarks/data/iphone --size 4G [--seed 1]
    .venv/bin/python -m benchmarks.datagen benchmarks/data/iphone --mutate [--seed 1]

The folder is a complete, unencrypted backup (Info.plist, Status.plist, Manifest.plist, Manifest.db and
`xx/<fileID>` blobs) that `coffer import` accepts. See benchmarks/README.md for what it holds.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from agent.errors import CofferError, UsageError
from benchmarks.dataset.backup import DatasetSummary, generate, mutate

DEFAULT_SIZE = "4G"
DEFAULT_SEED = 1
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`300M`, `2.5G`, `4GiB` or a plain number of bytes (binary units)."""
    match = _SIZE_PATTERN.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"cannot read the size {text!r}: write it like 300M, 2.5G or 4G")
    size = int(float(match[1]) * _UNITS[match[2].upper()])
    if size < 16 << 20:
        raise UsageError(f"a data set of {text} is too small to mean anything: give at least 16M")
    return size


def describe(summary: DatasetSummary) -> str:
    """One line per kind of content: files, bytes and share of the bytes."""
    lines = [f"{summary.files} files, {summary.bytes / (1 << 20):,.0f} MiB"]
    for kind, size in sorted(summary.bytes_by_kind.items(), key=lambda item: -item[1]):
        lines.append(
            f"  {kind:<7} {summary.files_by_kind[kind]:>6} files {size / (1 << 20):>9,.1f} MiB "
            f"{100 * size / max(1, summary.bytes):5.1f} %"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datagen", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the backup folder to write (or to change, with --mutate)")
    parser.add_argument(
        "--size", default=DEFAULT_SIZE, help=f"bytes of file contents (default {DEFAULT_SIZE})"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"the seed (default {DEFAULT_SEED})")
    parser.add_argument(
        "--mutate", action="store_true", help="apply one more day of use to an existing folder"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    try:
        if args.mutate:
            day = mutate(args.folder, args.seed)
            print(
                f"day {day.day}: {day.added_files} files added ({day.added_bytes / (1 << 20):,.1f} MiB), "
                f"{day.changed_files} changed, {day.deleted_files} deleted"
            )
            print(describe(day.dataset))
        else:
            print(describe(generate(args.folder, parse_size(args.size), args.seed)))
    except CofferError as error:
        print(f"datagen: {error}", file=sys.stderr)
        return error.exit_code
    print(f"in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
