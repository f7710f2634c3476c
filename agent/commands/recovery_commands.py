"""`coffer recovery …`: recovery contacts — key pairs, slots, and the three-step recovery."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agent.commands.context import Context
from agent.errors import RepositoryDamagedError, UsageError
from agent.keys import contacts, slots
from agent.keys.sources import (
    checked_passphrase,
    prompt_new_passphrase,
    read_secret_file,
    replacement_passphrase,
)
from agent.repository.repository import Repository


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    recovery = sub.add_parser("recovery", parents=[common], help="recovery contacts")
    rsub = recovery.add_subparsers(dest="recovery_command", required=True,
                                   metavar="{contact-keygen,add-contact,request,assist,recover}", help="the step to run")

    p = rsub.add_parser("contact-keygen", parents=[common], help="(the contact) make a key pair; prints the public key")
    p.add_argument("--output", type=Path, required=True, help="the contact's key file (keep it safe)")
    p.add_argument("--contact-password-file", help="the contact's own passphrase (else COFFER_CONTACT_PASSWORD or a prompt)")
    p.set_defaults(handler=cmd_keygen)

    p = rsub.add_parser("add-contact", parents=[common], help="(the owner) let contacts help recover the full key")
    p.add_argument("public_keys", nargs="+", metavar="PUBKEY", help="coffer-contact-v1:… from contact-keygen")
    p.add_argument("--threshold", type=int, default=1, help="how many contacts must help (Shamir), default 1")
    p.add_argument("--label", help="a label for the slot (stored encrypted)")
    p.set_defaults(handler=cmd_add_contact)

    p = rsub.add_parser("request", parents=[common], help="(the owner, locked out) ask the contacts for help")
    p.add_argument("--slot", help="the contact slot (default: the only one)")
    p.add_argument("--output", type=Path, required=True, help="request file to give to the contacts")
    p.set_defaults(handler=cmd_request)

    p = rsub.add_parser("assist", parents=[common], help="(the contact) answer a recovery request")
    p.add_argument("request", type=Path, help="the request file the owner sent")
    p.add_argument("--contact-key", type=Path, required=True, help="this contact's key file (from contact-keygen)")
    p.add_argument("--contact-password-file",
                   help="the contact's own passphrase (else COFFER_CONTACT_PASSWORD or a prompt)")
    p.add_argument("--output", type=Path, required=True, help="response file to give back to the owner")
    p.set_defaults(handler=cmd_assist)

    p = rsub.add_parser("recover", parents=[common], help="(the owner) combine responses and set a new passphrase")
    p.add_argument("responses", type=Path, nargs="+", metavar="RESPONSE", help="response files from the contacts")
    p.add_argument("--request-secret", type=Path, required=True, help="the .secret file `request` wrote")
    p.add_argument("--new-password-file", help="the new passphrase (else COFFER_NEW_PASSWORD or a prompt)")
    p.set_defaults(handler=cmd_recover)


def _contact_passphrase(path: str | None) -> str:
    if path:
        return read_secret_file(path, "contact password file")
    if "COFFER_CONTACT_PASSWORD" in os.environ:
        return os.environ["COFFER_CONTACT_PASSWORD"]
    return prompt_new_passphrase("contact passphrase")


def cmd_keygen(ctx: Context) -> int:
    public = contacts.generate_contact_key(ctx.args.output, checked_passphrase(_contact_passphrase(ctx.args.contact_password_file)))
    ctx.emit({"public_key": public, "key_file": str(ctx.args.output)},
             f"contact key written to {ctx.args.output}\ngive the owner this public key:\n\n    {public}\n")
    return 0


def cmd_add_contact(ctx: Context) -> int:
    repository = ctx.open_repository()
    repository.keys.require_full()
    keys = [contacts.parse_public_key(text) for text in ctx.args.public_keys]
    name = contacts.add_contact_slot(repository.storage, repository.keys, keys, ctx.args.threshold, ctx.args.label)
    repository.record_slots(added=[name])
    ctx.emit({"id": name.removeprefix(slots.SLOT_PREFIX), "contacts": len(keys), "threshold": ctx.args.threshold},
             f"recovery contact slot {name.removeprefix(slots.SLOT_PREFIX)[:8]}: any {ctx.args.threshold} of "
             f"{len(keys)} contacts can help you back in")
    return 0


def _contact_slot(ctx: Context) -> str:
    storage = ctx.storage()
    Repository.read_config(storage)
    if ctx.args.slot:
        return slots.find_slot(storage, ctx.args.slot)
    found = [name for name in slots.slot_names(storage) if slots.read_slot(storage, name)["kind"] == "contact"]
    if len(found) != 1:
        raise UsageError("this repository has no recovery-contact slot" if not found else "several contact slots: choose with --slot")
    return found[0]


def cmd_request(ctx: Context) -> int:
    request = contacts.make_request(ctx.storage(), _contact_slot(ctx), ctx.args.output)
    ctx.emit({"request": str(ctx.args.output), "secret": f"{ctx.args.output}.secret", "threshold": request.threshold},
             f"give {ctx.args.output} to your recovery contacts ({request.threshold} must answer);\n"
             f"keep {ctx.args.output}.secret: it opens their answers")
    return 0


def cmd_assist(ctx: Context) -> int:
    contacts.assist(ctx.args.request, ctx.args.contact_key, _contact_passphrase(ctx.args.contact_password_file), ctx.args.output)
    ctx.emit({"response": str(ctx.args.output)}, f"give {ctx.args.output} back to the owner")
    return 0


def cmd_recover(ctx: Context) -> int:
    storage = ctx.storage()
    config, mac = Repository.read_config(storage)
    keys = contacts.recover(storage, ctx.args.request_secret, ctx.args.responses)
    if keys.repository_id != config.repository_id:
        raise RepositoryDamagedError("the contact slot belongs to another repository")
    config.verify(mac, keys.auth_key)
    passphrase = replacement_passphrase(ctx.args.new_password_file)
    repository = Repository(storage, config, keys, "")
    name = slots.add_passphrase_slot(storage, config.kdf, passphrase, keys, None)
    repository.record_slots(added=[name])
    ctx.emit({"id": name.removeprefix(slots.SLOT_PREFIX)}, "recovered: the new passphrase opens the repository")
    return 0
