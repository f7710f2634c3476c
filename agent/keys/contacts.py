"""Recovery contacts: trusted people who can help the owner back in, without being able to read anything.

A contact slot wraps the full key set under KEK = HKDF(S ‖ pad). `pad` is stored in the slot
(in the repository); `S` is random, split with Shamir's scheme (pycryptodome) into one share
per contact, each share sealed to that contact's X25519 public key. Recovery:

1. the owner, who lost passphrase and recovery key but can still reach the storage, makes a
   *request* (`coffer recovery request`): the sealed shares plus a fresh ephemeral public key;
   the matching private key stays with the owner;
2. each contact opens their share with their own key file and passphrase and re-seals it to
   the owner's ephemeral key (`coffer recovery assist`) — they see a share of `S`, never `pad`
   or the key set;
3. the owner combines enough shares, derives the KEK with `pad` and sets a new passphrase
   (`coffer recovery recover`).

A contact alone cannot decrypt anything; the storage provider alone cannot either; only a
contact (or a threshold of them) colluding with someone who can read the storage could.

Anyone who can read the storage can make a request, so a request proves nothing by itself. Like the
verification codes of Apple's recovery contacts, `request` shows a short code derived from (slot, ephemeral
public key); the owner reads it to each contact over a channel the contact trusts (a call, in person), and
`assist` answers only when the contact types that same code back. A request whose ephemeral key is not the
owner's has another code, so a stranger's request gets no answer.
"""

from __future__ import annotations

import base64
import hmac
import itertools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from Crypto.Protocol.SecretSharing import Shamir

from agent.errors import ObjectExistsError, UsageError, WrongSecretError
from agent.keys import key_files, primitives
from agent.keys.kdf import KdfParams, calibrate
from agent.keys.keyset import KeySet
from agent.keys.slots import SLOT_PREFIX, read_slot
from agent.storage.base import Storage

CONTACT_KEY_FORMAT = 1
PUBLIC_PREFIX = "coffer-contact-v1:"
SECRET_SIZE = 16  # Shamir over GF(2^128) in pycryptodome takes 16-byte secrets
# 12 decimal digits (about 40 bits): short enough to read out on a call, and a stranger who learned the owner's
# code would need ~10^12 key pairs to make a request of their own that shows it.
CODE_DIGITS = 12
CODE_GROUP = 4


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


# --- the contact's key pair ----------------------------------------------------------------
def generate_contact_key(output: Path, passphrase: str) -> str:
    """Write a contact key file (private key sealed under the contact's passphrase); return the public key text."""
    private, public = primitives.generate_keypair()
    kdf = calibrate()
    sealed = primitives.seal_box(kdf.derive(passphrase), private, purpose=b"contact private key")
    key_files.write_new(
        output,
        {"coffer_contact_key": CONTACT_KEY_FORMAT, "public": _b64(public), "kdf": kdf.to_dict(), "private": _b64(sealed)},
    )
    return PUBLIC_PREFIX + _b64(public)


def parse_public_key(text: str) -> bytes:
    if not text.startswith(PUBLIC_PREFIX):
        raise UsageError(f"a contact public key starts with {PUBLIC_PREFIX!r} (see `coffer recovery contact-keygen`)")
    try:
        key = _unb64(text.removeprefix(PUBLIC_PREFIX))
    except ValueError as exc:
        raise UsageError("the contact public key is not valid base64") from exc
    if len(key) != primitives.PUBLIC_KEY_SIZE:
        raise UsageError("the contact public key has the wrong length")
    return key


def open_contact_key(path: Path, passphrase: str) -> tuple[bytes, bytes]:
    """(private, public) of a contact key file; a wrong passphrase raises WrongSecretError."""
    document = key_files.read(path, "contact key file")
    if document.get("coffer_contact_key") != CONTACT_KEY_FORMAT:
        raise UsageError(f"{path} is not a Coffer contact key file")
    kdf = KdfParams.from_dict(document["kdf"])  # type: ignore[arg-type]
    try:
        private = primitives.open_box(kdf.derive(passphrase), _unb64(str(document["private"])), purpose=b"contact private key")
    except primitives.DecryptionError as exc:
        raise WrongSecretError(f"wrong passphrase for the contact key file {path}") from exc
    return private, _unb64(str(document["public"]))


# --- the slot ----------------------------------------------------------------------------------
def _kek(secret: bytes, pad: bytes) -> bytes:
    return primitives.hkdf(secret + pad, salt=None, info=b"coffer contact slot v1")


def default_threshold(contacts: int) -> int:
    """2 where there are 2 or more contacts: one contact, fooled or hostile, never suffices by default."""
    return min(2, contacts)


def add_contact_slot(storage: Storage, keys: KeySet, contacts: list[bytes], threshold: int, label: str | None) -> str:
    if not 1 <= threshold <= len(contacts):
        raise UsageError(f"--threshold must be between 1 and the number of contacts ({len(contacts)})")
    secret = os.urandom(SECRET_SIZE)
    shares = [(1, secret)] * len(contacts) if threshold == 1 else Shamir.split(threshold, len(contacts), secret)
    pad = os.urandom(32)
    document: dict[str, object] = {
        "v": 1,
        "kind": "contact",
        "created": time.time(),
        "threshold": threshold,
        "pad": _b64(pad),
        "contacts": [
            {"public": _b64(public), "index": index,
             "share": _b64(primitives.seal_to(public, share, purpose=b"contact share"))}
            for public, (index, share) in zip(contacts, shares, strict=True)
        ],
        "wrapped": _b64(primitives.seal_box(_kek(secret, pad), keys.to_bytes(), purpose=b"slot contact")),
    }
    if label:
        document["label"] = _b64(primitives.seal_box(keys.auth_key, label.encode(), purpose=b"slot label"))
    data = json.dumps(document, sort_keys=True).encode()
    name = SLOT_PREFIX + primitives.sha256(data).hex()
    try:
        storage.put(name, data)
    except ObjectExistsError:
        pass
    return name


# --- recovery ---------------------------------------------------------------------------------
def verification_code(slot_name: str, ephemeral_public: bytes) -> str:
    """The code a request shows, e.g. `0123-4567-8901`: HKDF of the request's ephemeral key, salted with its slot."""
    digest = primitives.hkdf(ephemeral_public, salt=slot_name.encode(), info=b"coffer recovery verification code v1",
                             length=16)
    digits = str(int.from_bytes(digest, "big") % 10**CODE_DIGITS).zfill(CODE_DIGITS)
    return "-".join(digits[i : i + CODE_GROUP] for i in range(0, CODE_DIGITS, CODE_GROUP))


def _code_digits(code: str) -> str:
    return "".join(character for character in code if character.isdigit())


@dataclass
class RecoveryRequest:
    slot: str
    ephemeral_public: bytes
    contacts: list[dict[str, object]]
    threshold: int

    @property
    def code(self) -> str:
        return verification_code(self.slot, self.ephemeral_public)


@dataclass
class Recovered:
    """The key set a recovery opened, and the answers that turned out bad (each named for the user)."""

    keys: KeySet
    bad_answers: list[str] = field(default_factory=list)


def make_request(storage: Storage, slot_name: str, output: Path) -> RecoveryRequest:
    """Write the request for the contacts (`output`) and the owner's private half (`output`.secret)."""
    document = read_slot(storage, slot_name)
    if document["kind"] != "contact":
        raise UsageError(f"{slot_name} is not a recovery-contact slot")
    private, public = primitives.generate_keypair()
    contacts = [{"public": c["public"], "index": c["index"], "share": c["share"]} for c in document["contacts"]]  # type: ignore[union-attr, index]
    request = {"coffer_recovery_request": 1, "slot": slot_name, "ephemeral_public": _b64(public),
               "threshold": document["threshold"], "contacts": contacts}
    secret_path = output.with_name(output.name + ".secret")
    key_files.write_new(secret_path, {"coffer_recovery_secret": 1, "slot": slot_name, "ephemeral_private": _b64(private)})
    key_files.write_new(output, request)
    return RecoveryRequest(slot_name, public, contacts, int(document["threshold"]))  # type: ignore[arg-type]


def _request_code(request: dict[str, object], request_path: Path) -> tuple[bytes, str]:
    try:
        ephemeral_public = _unb64(str(request["ephemeral_public"]))
        slot = str(request["slot"])
    except (KeyError, ValueError) as exc:
        raise UsageError(f"{request_path} is not a Coffer recovery request") from exc
    return ephemeral_public, verification_code(slot, ephemeral_public)


def assist(request_path: Path, contact_key: Path, passphrase: str, output: Path, typed_code: str) -> str:
    """The contact's step: check the code the owner read out, open the contact's share and re-seal it to the
    owner's ephemeral key. Returns the request's code. A code that does not match writes nothing."""
    request = key_files.read(request_path, "recovery request")
    ephemeral_public, code = _request_code(request, request_path)
    if not hmac.compare_digest(_code_digits(typed_code), _code_digits(code)):
        raise WrongSecretError(
            f"the verification code does not match the request {request_path}: answer only a request whose code "
            "the owner read to you themselves (nothing was written)"
        )
    private, public = open_contact_key(contact_key, passphrase)
    for contact in request.get("contacts", []):  # type: ignore[union-attr]
        if _unb64(contact["public"]) == public:
            try:
                share = primitives.open_sealed(private, _unb64(contact["share"]), purpose=b"contact share")
            except primitives.DecryptionError as exc:
                raise WrongSecretError("this contact key does not open its share in the request") from exc
            resealed = primitives.seal_to(ephemeral_public, share, purpose=b"contact response")
            key_files.write_new(output, {"coffer_recovery_response": 1, "slot": request["slot"], "index": contact["index"],
                                "share": _b64(resealed)})
            return code
    raise WrongSecretError("this contact key is not one of the contacts of the request")


@dataclass(frozen=True)
class _Answer:
    path: Path
    index: int
    share: bytes


def _who(document: dict[str, object], answer: _Answer) -> str:
    """The contact an answer claims to come from, by its Shamir index in the slot (when that index is unique)."""
    matching = [c for c in document["contacts"] if c["index"] == answer.index]  # type: ignore[attr-defined]
    if len(matching) != 1:
        return f"the answer {answer.path}"
    return f"the answer {answer.path} of contact {answer.index} ({PUBLIC_PREFIX}{matching[0]['public'][:12]}…)"


def _read_answers(paths: list[Path], slot_name: str, ephemeral_private: bytes) -> tuple[list[_Answer], list[Path]]:
    """The shares the responses carry, and the responses that were not sealed to this request."""
    answers, unreadable = [], []
    for path in paths:
        response = key_files.read(path, "recovery response")
        if response.get("slot") != slot_name:
            raise UsageError(f"{path} answers another recovery request")
        try:
            share = primitives.open_sealed(ephemeral_private, _unb64(str(response["share"])), purpose=b"contact response")
            answers.append(_Answer(path, int(response["index"]), share))  # type: ignore[call-overload]
        except (primitives.DecryptionError, KeyError, ValueError, TypeError):
            unreadable.append(path)
    return answers, unreadable


def _combine(answers: tuple[_Answer, ...]) -> bytes | None:
    if len({answer.index for answer in answers}) != len(answers):
        return None  # the same share twice, or two claiming one index
    if len(answers) == 1:
        return answers[0].share
    try:
        return Shamir.combine([(answer.index, answer.share) for answer in answers])
    except ValueError:
        return None


def _open_slot(document: dict[str, object], secret: bytes) -> KeySet | None:
    pad = _unb64(str(document["pad"]))
    try:
        plain = primitives.open_box(_kek(secret, pad), _unb64(str(document["wrapped"])), purpose=b"slot contact")
    except primitives.DecryptionError:
        return None
    return KeySet.from_bytes(plain)


def recover(storage: Storage, secret_path: Path, responses: list[Path]) -> Recovered:
    """The owner's last step: find a set of `threshold` answers that opens the slot, trying every combination,
    so one bad answer neither blocks recovery nor goes unnamed."""
    secret_doc = key_files.read(secret_path, "recovery secret")
    ephemeral_private = _unb64(str(secret_doc["ephemeral_private"]))
    slot_name = str(secret_doc["slot"])
    document = read_slot(storage, slot_name)
    threshold = int(document["threshold"])  # type: ignore[call-overload]
    answers, unreadable = _read_answers(responses, slot_name, ephemeral_private)
    not_for_this = [f"{path} was not made for this request" for path in unreadable]
    if len(answers) < threshold and not unreadable:
        raise UsageError(f"{len(answers)} of the {threshold} contact responses needed")
    for chosen in itertools.combinations(answers, threshold):
        secret = _combine(chosen)
        keys = None if secret is None else _open_slot(document, secret)
        if keys is None or secret is None:
            continue
        # An answer outside the winning set is good when it rebuilds the same secret with the others.
        used = {(answer.index, answer.share) for answer in chosen}
        bad = [a for a in answers if (a.index, a.share) not in used and _combine((*chosen[1:], a)) != secret]
        return Recovered(keys, not_for_this + [f"{_who(document, answer)} holds a bad share" for answer in bad])
    suspects = "; ".join(not_for_this + [_who(document, answer) for answer in answers])
    raise WrongSecretError(
        f"no {threshold} of the responses open the contact slot (wrong or forged shares): {suspects}"
    )
