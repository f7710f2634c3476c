"""`coffer copy --from-repo A [--to-repo B] [SNAPSHOT…]`: copy snapshots between repositories.

The target (`--to-repo`, else `--repo` / `COFFER_REPOSITORY`) is unlocked as every command
unlocks its repository (`--password-file`, `COFFER_PASSWORD`, a key file…; a put-only
station key is enough). The source needs its full key, from its own options so the two
secrets never mix: `--from-key-file`, `--from-recovery-key-file`, `--from-password-file`,
else `COFFER_FROM_PASSWORD`, else a prompt on a terminal.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from agent.archive.copy import copy_snapshots
from agent.commands.context import Context
from agent.commands.format import iso, plural, size, table, timestamp
from agent.errors import UsageError
from agent.keys import recovery_key
from agent.keys.slots import KeyFile, Passphrase, RecoveryKey, Secret
from agent.keys.sources import read_secret_file
from agent.repository.repository import Repository
from agent.storage.url import open_storage

FROM_PASSWORD_VARIABLE = "COFFER_FROM_PASSWORD"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "copy", parents=[common], help="copy snapshots into another repository, uploading only what it lacks"
    )
    p.add_argument(
        "snapshots", nargs="*", metavar="SNAPSHOT", help="IDs, prefixes or 'latest' (default: all)"
    )
    p.add_argument("--from-repo", required=True, metavar="URL", help="the repository to copy from")
    p.add_argument(
        "--to-repo",
        dest="repo",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="the target (default: --repo)",
    )
    p.add_argument("--from-key-file", help="a key file of the source repository")
    p.add_argument("--from-recovery-key-file", help="a file holding the source repository's recovery key")
    p.add_argument(
        "--from-password-file", help=f"a file holding the source passphrase (or {FROM_PASSWORD_VARIABLE})"
    )
    p.set_defaults(handler=cmd_copy)


def source_secret(args: argparse.Namespace) -> Secret:
    if args.from_key_file:
        return KeyFile(Path(args.from_key_file))
    if args.from_recovery_key_file:
        return RecoveryKey(
            recovery_key.parse_key(read_secret_file(args.from_recovery_key_file, "recovery key file"))
        )
    if args.from_password_file:
        return Passphrase(read_secret_file(args.from_password_file, "password file"))
    if os.environ.get(FROM_PASSWORD_VARIABLE):
        return Passphrase(os.environ[FROM_PASSWORD_VARIABLE])
    if sys.stdin.isatty():
        return Passphrase(getpass.getpass("Source repository passphrase: "))
    raise UsageError(
        "no secret for the source repository: use --from-password-file, --from-key-file, "
        f"--from-recovery-key-file or {FROM_PASSWORD_VARIABLE}"
    )


def cmd_copy(ctx: Context) -> int:
    target = ctx.open_repository()
    source_storage = open_storage(ctx.args.from_repo, **ctx.storage_options())
    try:
        source = Repository.open(source_storage, source_secret(ctx.args))
        result = copy_snapshots(source, target, ctx.args.snapshots, progress=ctx.progress)
    finally:
        source_storage.close()
    copied = [s for s in result.snapshots if s.target_id is not None]
    document = {
        "snapshots": [
            {
                "source_id": s.source_id,
                "target_id": s.target_id,
                "copied": s.target_id is not None,
                "time": iso(s.entry.header.time),
                "device": s.entry.header.device,
            }
            for s in result.snapshots
        ],
        "copied": len(copied),
        "skipped": len(result.snapshots) - len(copied),
        "bytes_read": result.bytes_read,
        "new_bytes": result.new_bytes,
        "uploaded_bytes": result.uploaded_bytes,
        "packs": result.packs,
    }
    rows = [
        [
            s.source_id[:8],
            s.target_id[:8] if s.target_id else "(already there)",
            timestamp(s.entry.header.time),
            s.entry.header.device.get("name", ""),
        ]
        for s in result.snapshots
    ]
    human = (
        (table(["Source", "Target", "Time", "Device"], rows) + "\n\n" if rows else "")
        + f"copied {len(copied)} of {plural(len(result.snapshots), 'snapshot')}: {size(result.bytes_read)} read, "
        f"{size(result.new_bytes)} new to the target, {size(result.uploaded_bytes)} uploaded in {plural(result.packs, 'pack')}"
    )
    ctx.emit(document, human)
    return 0
