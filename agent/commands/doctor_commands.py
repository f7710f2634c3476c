"""`coffer doctor`: host, device and repository checks, one line each with the fix (agent.doctor)."""

from __future__ import annotations

import argparse

from agent.commands.context import Context
from agent.errors import CofferError
from agent.units import parse_size


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    from agent.doctor import DEFAULT_HEADROOM

    p = sub.add_parser("doctor", parents=[common], help="check usbmuxd, devices, free space, the repository and the clock")
    p.add_argument("--udid", action="append", help="check only this device (repeatable; default: every connected one)")
    p.add_argument("--headroom", type=_size, default=DEFAULT_HEADROOM, metavar="SIZE",
                   help="free space to keep on the host beyond what a backup needs, with units (default 1G)")
    p.set_defaults(handler=cmd_doctor)


def cmd_doctor(ctx: Context) -> int:
    from agent import doctor
    from agent.paths import staging_root
    from agent.storage.local import LocalStorage

    args = ctx.args
    usbmuxd, connected = doctor.usbmuxd_check()
    checks = [usbmuxd]
    expected = 0  # the largest device's used space: what a local repository may receive
    for udid in args.udid or connected:
        if udid not in connected:
            if usbmuxd.status != doctor.FAILED:  # else usbmuxd's line already says why no device shows
                checks.append(doctor.Check("trust", doctor.FAILED, f"device {udid} is not connected",
                                           "plug it in with a data cable and unlock it", udid=udid))
            continue
        device, facts = doctor.device_checks(udid)
        checks += device
        if facts is not None:
            checks.append(doctor.host_space_check(facts, staging_root(), args.headroom))
            expected = max(expected, facts.used_bytes or 0)
    repository = doctor.repository_checks(ctx.storage, ctx.open_repository)
    checks += repository
    storage = ctx.storage() if repository[0].status == doctor.OK else None
    if isinstance(storage, LocalStorage):
        checks.append(doctor.repository_space_check(storage.root, expected, args.headroom))
    failed = [c for c in checks if c.status == doctor.FAILED]
    ctx.emit({"ok": not failed, "checks": [c.to_json() for c in checks]}, "\n".join(c.line() for c in checks))
    if failed:
        raise CofferError(f"{len(failed)} of {len(checks)} checks failed: {failed[0].check}: {failed[0].message}")
    return 0
