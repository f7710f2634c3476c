"""`coffer encryption on|off|password`: a device's backup encryption and its password (DESIGN.md §4)."""

from __future__ import annotations

import argparse

from agent.commands.context import Context


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    encryption = sub.add_parser("encryption", parents=[common], help="a device's backup encryption and its password")
    actions = encryption.add_subparsers(dest="encryption_command", required=True, metavar="{on,off,password}",
                                        help="turn device backup encryption on or off, or show its password")
    for action, text in (
        ("on", "turn backup encryption on, with a random password sealed in the repository"),
        ("off", "turn backup encryption off (backups then leave out Health, Keychain, Wi-Fi passwords)"),
    ):
        p = actions.add_parser(action, parents=[common], help=text)
        p.add_argument("--udid", required=True, help="the device")
        p.set_defaults(handler=cmd_switch, on=action == "on")

    p = actions.add_parser("password", parents=[common],
                           help="show the device's backup password (full key only), e.g. to open an export in Finder")
    p.add_argument("--udid", required=True, help="the device")
    p.add_argument("--change", action="store_true", help="give the device a new random password first")
    p.set_defaults(handler=cmd_password)


def cmd_switch(ctx: Context) -> int:
    from agent.device.encryption import set_encryption

    udid, on = ctx.args.udid, ctx.args.on
    changed = set_encryption(ctx.open_repository(), udid, on)
    state = "on" if on else "off"
    text = f"backup encryption of {udid} turned {state}" if changed else f"backup encryption of {udid} was already {state}"
    if changed and on:
        text += " (its password is sealed in the repository; with the full key, `coffer encryption password` shows it)"
    ctx.emit({"udid": udid, "encryption": on, "changed": changed}, text)
    return 0


def cmd_password(ctx: Context) -> int:
    from agent.device.encryption import change_password, sealed_password

    repository = ctx.open_repository()
    repository.keys.require_full()  # before touching the device: a station never reads a password back
    udid = ctx.args.udid
    password = change_password(repository, udid) if ctx.args.change else sealed_password(repository, udid)
    ctx.emit({"udid": udid, "password": password}, password)
    return 0
