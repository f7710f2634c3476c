"""`coffer watch` (the fleet daemon) and `coffer fleet status/run/pause/resume` (asking it how things stand,
or to back a device up now, or to hold backups)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.commands.context import Context
from agent.commands.format import plural, size, table
from agent.errors import UsageError
from agent.fleet.config import FleetConfig, load_config, parse_http_address
from agent.fleet.status_client import fetch_status, send_control


def _address(text: str) -> tuple[str, int]:
    try:
        return parse_http_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "watch", parents=[common], help="fleet daemon: back up each device when it is plugged in"
    )
    p.add_argument("--config", "-c", type=Path, required=True, help="the fleet configuration file (TOML)")
    p.add_argument(
        "--http", type=_address, metavar="HOST:PORT", help="serve the status page (e.g. 127.0.0.1:8080)"
    )
    p.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on 127.0.0.1:PORT"
    )
    p.set_defaults(handler=cmd_watch)

    fleet = sub.add_parser("fleet", parents=[common], help="ask a running fleet daemon")
    fleet_sub = fleet.add_subparsers(
        dest="fleet_command", required=True, metavar="{status,run,pause,resume}", help="what to ask"
    )
    p = fleet_sub.add_parser("status", parents=[common], help="every known device, its state and last error")
    _config_option(p)
    p.set_defaults(handler=cmd_fleet_status)
    p = fleet_sub.add_parser("run", parents=[common], help="back a plugged-in device up now")
    _config_option(p)
    p.add_argument("udid", metavar="UDID", help="the device (as `coffer fleet status` lists it)")
    p.set_defaults(handler=cmd_fleet_control, action="run")
    for action, text in (("pause", "start no new backup (running ones finish)"), ("resume", "let backups start again")):
        p = fleet_sub.add_parser(action, parents=[common], help=f"{text}: one device or all")
        _config_option(p)
        p.add_argument("udid", metavar="UDID", nargs="?", help="only this device (default: the whole daemon)")
        p.set_defaults(handler=cmd_fleet_control, action=action)


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", type=Path, required=True, help="the configuration file the daemon runs with"
    )


def _adopt_repository_settings(ctx: Context, config: FleetConfig) -> None:
    """The config's repository and key, unless the command line or the environment names them."""
    args = ctx.args
    if config.repository.url and not getattr(args, "repo", None):
        args.repo = config.repository.url
    if not any(getattr(args, name, None) for name in ("key_file", "recovery_key_file", "password_file")):
        if config.repository.key_file:
            args.key_file = str(config.repository.key_file)
        elif config.repository.password_file:
            args.password_file = str(config.repository.password_file)


def cmd_watch(ctx: Context) -> int:
    from agent.fleet.daemon import DaemonOptions, FleetDaemon  # pymobiledevice3 only when watching

    config = load_config(ctx.args.config)
    _adopt_repository_settings(ctx, config)
    if ctx.args.metrics_port is not None and not 0 <= ctx.args.metrics_port < 65536:
        raise UsageError(f"--metrics-port {ctx.args.metrics_port} is not a TCP port")
    repository = ctx.open_repository()
    repository.keys.require_write()
    options = DaemonOptions(http=ctx.args.http, metrics_port=ctx.args.metrics_port, json_events=ctx.json)
    return FleetDaemon(config, repository, options).run()


def _progress_text(device: dict[str, Any]) -> str:
    progress = device.get("progress")
    if not progress:
        return ""
    percent = f" {progress['percent']:.0f}%" if progress.get("percent") is not None else ""
    return f"{progress['phase']} {size(progress['bytes'])}{percent}"


def cmd_fleet_status(ctx: Context) -> int:
    config = load_config(ctx.args.config)
    status = fetch_status(config.daemon.status_socket, config.path)
    devices = status["devices"]
    daemon = status["daemon"]
    rows = [
        [
            d["name"] or "?",
            d["udid"],
            d["state"] + ("" if d["plugged"] else " (unplugged)"),
            _progress_text(d),
            d["last_success"] or "never",
            d["next_due"] or "",
            d["reason"],
            _last_error(d),
        ]
        for d in devices
    ]
    text = (
        f"daemon pid {daemon['pid']}: {daemon['running']} of {plural(daemon['max_concurrent'], 'backup')} running"
        + (" (paused)" if daemon.get("paused") else "")
        + f", repository {daemon['repository']}\n"
        + (
            table(["Name", "UDID", "State", "Progress", "Last backup", "Next due", "Note", "Last error"], rows)
            if rows
            else "no device seen yet"
        )
    )
    ctx.emit(devices, text)
    return 0


def _last_error(device: dict[str, Any]) -> str:
    error = device.get("last_error")
    return f"{device['last_failure']}: {error}" if error else ""


def cmd_fleet_control(ctx: Context) -> int:
    config = load_config(ctx.args.config)
    action, udid = ctx.args.action, ctx.args.udid
    answer = send_control(config.daemon.status_socket, config.path, action, udid)
    if action == "run":
        human = f"{udid}: backing up as soon as a slot is free (`coffer fleet status` shows it)"
    else:
        what = f"device {udid}" if udid else "the daemon"
        human = f"{what}: {'paused: no new backup starts' if action == 'pause' else 'resumed'}"
    ctx.emit(answer, human)
    return 0
