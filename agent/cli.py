"""The `coffer` command: parse the command line, run one command, map errors to exit codes.

Global options are accepted before or after the command. Every `CofferError` becomes one
line on stderr and its exit code (DESIGN.md section 4); SIGTERM is handled like Ctrl-C, so
a stopped command unwinds through the same clean-up paths and leaves the repository
consistent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence

from agent import __version__
from agent.archive.progress import status_lines
from agent.commands import (
    archive_commands,
    completion_commands,
    copy_commands,
    debug_commands,
    device_commands,
    doctor_commands,
    encryption_commands,
    fleet_commands,
    inspect_commands,
    key_commands,
    recovery_commands,
    repair_commands,
    repository_commands,
    retention_commands,
    sim_commands,
)
from agent.commands.context import Context
from agent.errors import CofferError, UsageError
from agent.pipeline.memory import tune_malloc
from agent.units import parse_size

EXIT_INTERRUPTED = 130
# With --json these stream restic-style status lines on stdout before their summary (docs/cli.md).
STATUS_COMMANDS = frozenset({"backup", "restore", "import", "check", "prune"})


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `coffer {self.prog.split(' ', 1)[-1]} --help`)".replace("coffer coffer", "coffer"))


def _rate(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common_options() -> argparse.ArgumentParser:
    # SUPPRESS keeps a value given before the command from being reset by the subparser's default.
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("global options")
    group.add_argument("--repo", "-r", default=argparse.SUPPRESS, help="repository: a path, file://… or s3://bucket/prefix")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON on stdout (long commands: status lines, then the summary)")
    group.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="no progress bars or notes (warnings and errors still print)")
    group.add_argument("--key-file", default=argparse.SUPPRESS, help="a station or category key file")
    group.add_argument("--recovery-key-file", default=argparse.SUPPRESS, help="a file holding the recovery key")
    group.add_argument("--password-file", default=argparse.SUPPRESS, help="a file holding the passphrase")
    group.add_argument("--limit-upload", type=_rate, metavar="RATE", default=argparse.SUPPRESS,
                       help="bytes per second to storage, with units: 10M = 10 MiB/s")
    group.add_argument("--limit-download", type=_rate, metavar="RATE", default=argparse.SUPPRESS,
                       help="bytes per second from storage, with units: 500k = 500 KiB/s")
    group.add_argument(
        "--upload-jitter", type=float, default=argparse.SUPPRESS, metavar="SECONDS",
        help="wait a random 0..SECONDS before each pack and index upload, so upload timing says less (slower)",
    )
    group.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help="log details on stderr")
    return common


EPILOG = """\
secrets (the first found wins, else a prompt on a terminal):
  --key-file F, COFFER_KEY_FILE                a station or category key file
  --recovery-key-file F, COFFER_RECOVERY_KEY  the recovery key (a file; the variable holds the key)
  --password-file F, COFFER_PASSWORD_FILE      the passphrase, from a file
  COFFER_PASSWORD_COMMAND                      a command that prints the passphrase
  COFFER_PASSWORD                              the passphrase itself

environment:
  COFFER_REPOSITORY        the repository when --repo is not given
  AWS_ENDPOINT_URL, AWS_*  endpoint and credentials of an s3:// repository
  USBMUXD_SOCKET_ADDRESS   another usbmuxd, e.g. the one `coffer sim` prints
  COFFER_TRUST_TIMEOUT     seconds to wait for "Trust" on the device
  COFFER_PAIR_RECORDS_DIR  where host pair records are kept
  COFFER_STATE_DIR, COFFER_CACHE_DIR, COFFER_STAGING_DIR   host-local state, caches, staging

exit codes:
  0  success            3  wrong key or password, or a key without the right
  1  failure            4  repository damaged
  2  usage              5  device problem (not connected, locked, not trusted)
  130  interrupted: the repository is consistent and the next run resumes

Every command and its --json shape: docs/cli.md.
"""


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = _ArgumentParser(
        prog="coffer",
        parents=[common],
        description="End-to-end encrypted, deduplicating backups of iPhones and iPads.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"coffer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_ArgumentParser,
                                help="the command to run (`coffer COMMAND --help` for its options)")
    modules = (
        repository_commands,
        archive_commands,
        inspect_commands,
        device_commands,
        doctor_commands,
        encryption_commands,
        retention_commands,
        repair_commands,
        key_commands,
        recovery_commands,
        copy_commands,
        fleet_commands,
        sim_commands,
        debug_commands,
        completion_commands,
    )
    for module in modules:
        module.register(sub, common)
    return parser


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _fail(message: str, exit_code: int, ctx: Context | None, argv: Sequence[str]) -> int:
    """One line on stderr; with --json also one error object on stdout, unless the command already printed
    its own document (e.g. `backup`'s per-device results, `check`'s report)."""
    print(f"coffer: {message}", file=sys.stderr)
    wants_json = ctx.json if ctx is not None else "--json" in argv
    if wants_json and not (ctx is not None and ctx.emitted):
        print(json.dumps({"error": {"message": message, "exit_code": exit_code}}), flush=True)
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _raise_interrupt)
    tune_malloc()
    arguments = list(sys.argv[1:] if argv is None else argv)
    ctx = None
    args = None
    try:
        args = build_parser().parse_args(arguments)
        logging.basicConfig(
            level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        ctx = Context(args)
        streams = ctx.json and args.command in STATUS_COMMANDS
        with status_lines(sys.stdout) if streams else contextlib.nullcontext():
            return int(args.handler(ctx))
    except CofferError as exc:
        return _fail(str(exc), exc.exit_code, ctx, arguments)
    except KeyboardInterrupt:
        return _fail("interrupted; the repository is consistent and the next run resumes", EXIT_INTERRUPTED, ctx,
                     arguments)
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug: still one line, details with --verbose
        logging.getLogger("coffer").debug("internal error", exc_info=True)
        return _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --verbose for details)", 1, ctx, arguments)
    finally:
        if ctx is not None:
            ctx.close()


if __name__ == "__main__":
    sys.exit(main())
