"""`coffer sim`: run simulated iPhones in the foreground."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.commands.context import Context


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sim", parents=[common], help="run simulated devices (prints USBMUXD_SOCKET_ADDRESS=…)")
    p.add_argument("--devices", type=int, default=1, help="how many simulated iPhones to plug in (default 1)")
    p.add_argument("--profile", choices=["tiny", "small", "medium", "large"], default="small",
                   help="how much content each device holds (default small)")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated content: same seed, same devices")
    p.add_argument("--password", help="turn device backup encryption on with this password")
    p.add_argument("--state-dir", type=Path, help="keep device state (pairing, content) here")
    p.add_argument("--port", type=int, default=0, help="usbmuxd TCP port on 127.0.0.1 (default: any free one)")
    p.add_argument("--fault", action="append", default=[], metavar="MODE[=VALUE]",
                   help="give every device a field failure, e.g. upload-error=backup_manifest.db, stale-snapshot, "
                        "backup-error=208, passcode-prompt=5, pause=30, usb-speed=5000000000 (repeatable; "
                        "docs/troubleshooting.md)")
    p.add_argument("--replay", type=Path, metavar="FILE",
                   help="a device that plays back this `--trace` recording (made-up contents of the recorded sizes)")
    p.set_defaults(handler=cmd_sim)
    register_demo(sub, common)


def cmd_sim(ctx: Context) -> int:
    from agent.sim.faults import parse_cli_fault
    from agent.sim.run import run_sim

    args = ctx.args
    faults: dict[str, object] = {}
    for text in args.fault:
        faults.update(parse_cli_fault(text))
    return run_sim(args.state_dir, args.devices, args.profile, args.seed, args.password, args.port, args.replay,
                   faults)


def register_demo(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", parents=[common], help="simulated iPhone → encrypted repository → replacement, verified")
    p.add_argument("--workdir", type=Path, help="keep the demo's files here (default: a temporary folder)")
    p.add_argument("--profile", choices=["tiny", "small", "medium", "large"], default="small",
                   help="how much content the simulated iPhone holds (default small)")
    p.add_argument("--seed", type=int, default=7, help="seed of the generated content")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(ctx: Context) -> int:
    from agent.demo import DemoSettings, run_demo

    args = ctx.args
    return run_demo(DemoSettings(workdir=args.workdir, profile=args.profile, seed=args.seed, progress=ctx.progress))
