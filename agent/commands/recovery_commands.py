"""`coffer recovery …`: recovery contacts — key pairs, slots, and the three-step recovery."""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path

from agent.commands.context import Context
from agent.commands.format import plural
from agent.errors import UsageError
from agent.keys import contacts, slots
from agent.keys.slots import SlotEntry
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
    p.add_argument("--threshold", type=int, help="how many contacts must help (Shamir); default 2, or 1 for a single contact")
    p.add_argument("--label", help="a label for the slot (stored encrypted)")
    p.set_defaults(handler=cmd_add_contact)

    p = rsub.add_parser("request", parents=[common], help="(the owner, locked out) ask the contacts for help")
    p.add_argument("--slot", help="the contact slot ID, if you know it (default: every slot; each contact's key finds its own)")
    p.add_argument("--output", type=Path, required=True, help="request file to give to the contacts")
    p.set_defaults(handler=cmd_request)

    p = rsub.add_parser("assist", parents=[common], help="(the contact) answer a recovery request")
    p.add_argument("request", type=Path, help="the request file the owner sent")
    p.add_argument("--contact-key", type=Path, required=True, help="this contact's key file (from contact-keygen)")
    p.add_argument("--contact-password-file",
                   help="the contact's own passphrase (else COFFER_CONTACT_PASSWORD or a prompt)")
    p.add_argument("--code", help="the verification code the owner read to you (else asked at a prompt)")
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
    threshold = contacts.default_threshold(len(keys)) if ctx.args.threshold is None else ctx.args.threshold
    name = contacts.add_contact_slot(repository.storage, repository.keys, keys, threshold)
    entry = SlotEntry.new("contact", ctx.args.label)
    entry.contacts, entry.threshold = [base64.b64encode(k).decode() for k in keys], threshold
    repository.record_slots(added={name: entry})
    ctx.emit({"id": name.removeprefix(slots.SLOT_PREFIX), "contacts": len(keys), "threshold": threshold},
             f"recovery contact slot {name.removeprefix(slots.SLOT_PREFIX)[:8]}: any {threshold} of "
             f"{plural(len(keys), 'contact')} can help you back in")
    return 0


def cmd_request(ctx: Context) -> int:
    storage = ctx.storage()
    Repository.read_config(storage)  # a clear error for a wrong location first
    wanted = [slots.SLOT_PREFIX + ctx.args.slot.removeprefix(slots.SLOT_PREFIX)] if ctx.args.slot else None
    request = contacts.make_request(storage, wanted, ctx.args.output)
    ctx.emit({"request": str(ctx.args.output), "secret": f"{ctx.args.output}.secret", "slots": len(request.slots),
              "code": request.code},
             f"give {ctx.args.output} to your recovery contacts;\n"
             f"keep {ctx.args.output}.secret: it opens their answers\n\n"
             f"    verification code: {request.code}\n\n"
             "read this code to each contact yourself (a call, in person), never in the message that carries the "
             "request: they type it back to answer")
    return 0


def _typed_code() -> str:
    """The code the contact types at a prompt (not secret, so echoed); nothing typed is a usage error."""
    sys.stderr.write("Verification code the owner read to you (not one sent with the request): ")
    sys.stderr.flush()
    try:
        typed = sys.stdin.readline().strip()
    except OSError as exc:  # no usable standard input (a service, a closed descriptor)
        raise UsageError("no verification code: standard input cannot be read, pass --code") from exc
    if not typed:
        raise UsageError("no verification code: type the one the owner read to you, or pass --code")
    return typed


def cmd_assist(ctx: Context) -> int:
    code = ctx.args.code if ctx.args.code is not None else _typed_code()
    shown = contacts.assist(ctx.args.request, ctx.args.contact_key, _contact_passphrase(ctx.args.contact_password_file),
                            ctx.args.output, code)
    ctx.emit({"response": str(ctx.args.output), "code": shown},
             f"verification code {shown} matches; give {ctx.args.output} back to the owner")
    return 0


def cmd_recover(ctx: Context) -> int:
    storage = ctx.storage()
    envelope = Repository.read_config(storage)
    recovered = contacts.recover(storage, ctx.args.request_secret, ctx.args.responses)
    repository = Repository.from_unlocked(storage, envelope, [slots.Unlocked(recovered.keys, recovered.slot)])
    for path in recovered.not_for_this:
        ctx.warn(f"warning: {path} was not made for this request")
    entry = repository.config.key_slots.get(recovered.slot)
    for answer in recovered.bad_answers:  # the config, readable now, names the contact behind the share index
        publics = entry.contacts if entry and entry.contacts and entry.threshold and entry.threshold > 1 else []
        who = f" ({contacts.PUBLIC_PREFIX}{publics[answer.index - 1][:12]}…)" if 0 < answer.index <= len(publics) else ""
        ctx.warn(f"warning: the answer {answer.path} of contact {answer.index}{who} holds a bad share")
    passphrase = replacement_passphrase(ctx.args.new_password_file)
    name = slots.add_passphrase_slot(storage, repository.config.kdf, passphrase, recovered.keys)
    repository.record_slots(added={name: SlotEntry.new("passphrase")})
    ctx.emit({"id": name.removeprefix(slots.SLOT_PREFIX)}, "recovered: the new passphrase opens the repository")
    return 0
