"""`python -m agent.sim`: the simulator without the coffer CLI (tests and scripts use it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.errors import CofferError
from agent.sim.content import PROFILE_NAMES
from agent.sim.run import run_sim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.sim", description="Run simulated iPhones.")
    parser.add_argument("--devices", type=int, default=1, help="how many devices (default 1)")
    parser.add_argument(
        "--profile", choices=PROFILE_NAMES, default="tiny", help="content size (default tiny)"
    )
    parser.add_argument("--seed", type=int, default=0, help="identity and content seed (default 0)")
    parser.add_argument("--password", help="turn device backup encryption on with this password")
    parser.add_argument("--port", type=int, default=0, help="usbmuxd TCP port (default: a free one)")
    parser.add_argument("--state-dir", type=Path, help="keep devices here (default: a temporary folder)")
    args = parser.parse_args(argv)
    try:
        return run_sim(args.state_dir, args.devices, args.profile, args.seed, args.password, args.port)
    except CofferError as error:
        print(f"coffer sim: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
