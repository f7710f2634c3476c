"""Recovery contacts: trusted people who can help the owner back in, without being able to read anything.

A contact slot wraps the full key set under KEK = HKDF(S ‖ pad). `pad` is stored in the slot
(in the repository); `S` is random, split with Shamir's scheme (pycryptodome) into one share
per contact, each share (with its index and the threshold) sealed to that contact's X25519
public key. The slot object has a fixed layout that looks random throughout — `pad`, then
`MAX_CONTACTS` share boxes (random bytes where there is no contact), then the wrapped key set,
padded — so storage shows neither that it is a contact slot nor how many contacts it has;
the contacts' public keys and the threshold are only in the sealed config. Recovery:

1. the owner, who lost passphrase and recovery key but can still reach the storage, makes a
   *request* (`coffer recovery request`): the share boxes of every slot (the owner cannot tell
   which slot is a contact slot without a key) plus a fresh ephemeral public key; the matching
   private key stays with the owner;
2. each contact finds the box their key opens and re-seals its share to the owner's ephemeral
   key (`coffer recovery assist`) — they see a share of `S`, never `pad` or the key set;
3. the owner combines enough shares, derives the KEK with `pad` and sets a new passphrase
   (`coffer recovery recover`).

A contact alone cannot decrypt anything; the storage provider alone cannot either; only a
contact (or a threshold of them) colluding with someone who can read the storage could.

Anyone who can read the storage can make a request, so a request proves nothing by itself. Like the
verification codes of Apple's recovery contacts, `request` shows a short code derived from the request
(its slots and ephemeral public key); the owner reads it to each contact over a channel the contact
trusts (a call, in person), and `assist` answers only when the contact types that same code back. A
request whose ephemeral key is not the owner's has another code, so a stranger's request gets no answer.
"""

from __future__ import annotations

import base64
import hmac
import itertools
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from Crypto.Protocol.SecretSharing import Shamir

from agent.errors import UsageError, WrongSecretError
from agent.keys import key_files, padding, primitives
from agent.keys.kdf import KdfParams, KdfParamsError, calibrate
from agent.keys.keyset import KeySet
from agent.keys.slots import read_slot, slot_names, store_slot
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
    try:
        kdf = KdfParams.from_dict(document["kdf"], f"the key derivation parameters of {path}")
    except KdfParamsError as exc:
        raise UsageError(str(exc)) from exc
    try:
        private = primitives.open_box(kdf.derive(passphrase), _unb64(str(document["private"])), purpose=b"contact private key")
    except primitives.DecryptionError as exc:
        raise WrongSecretError(f"wrong passphrase for the contact key file {path}") from exc
    return private, _unb64(str(document["public"]))


# --- the slot ---------------------------------------------------------------------------------
MAX_CONTACTS = 8
PAD_SIZE = 32
SHARE_PLAIN_SIZE = 2 + SECRET_SIZE  # index, threshold, share
SHARE_BOX_SIZE = primitives.PUBLIC_KEY_SIZE + SHARE_PLAIN_SIZE + primitives.TAG_SIZE
_BOXES_END = PAD_SIZE + MAX_CONTACTS * SHARE_BOX_SIZE


def _kek(secret: bytes, pad: bytes) -> bytes:
    return primitives.hkdf(secret + pad, salt=None, info=b"coffer contact slot v2")


@dataclass
class ContactSlot:
    """A contact slot's parts, read with no key at all (the layout is fixed)."""

    pad: bytes
    boxes: list[bytes]
    wrapped: bytes

    @classmethod
    def parse(cls, data: bytes) -> ContactSlot | None:
        if len(data) < _BOXES_END + primitives.SALT_SIZE + primitives.TAG_SIZE:
            return None
        boxes = [data[PAD_SIZE + i * SHARE_BOX_SIZE : PAD_SIZE + (i + 1) * SHARE_BOX_SIZE] for i in range(MAX_CONTACTS)]
        return cls(data[:PAD_SIZE], boxes, data[_BOXES_END:])


def default_threshold(contacts: int) -> int:
    """2 where there are 2 or more contacts: one contact, fooled or hostile, never suffices by default."""
    return min(2, contacts)


def add_contact_slot(storage: Storage, keys: KeySet, contacts: list[bytes], threshold: int) -> str:
    if not 1 <= len(contacts) <= MAX_CONTACTS:
        raise UsageError(f"a contact slot has 1 to {MAX_CONTACTS} contacts")
    if not 1 <= threshold <= len(contacts):
        raise UsageError(f"--threshold must be between 1 and the number of contacts ({len(contacts)})")
    secret = os.urandom(SECRET_SIZE)
    shares = [(1, secret)] * len(contacts) if threshold == 1 else Shamir.split(threshold, len(contacts), secret)
    pad = os.urandom(PAD_SIZE)
    boxes = [
        primitives.seal_to(public, bytes((index, threshold)) + share, purpose=b"contact share v2")
        for public, (index, share) in zip(contacts, shares, strict=True)
    ]
    boxes += [os.urandom(SHARE_BOX_SIZE) for _ in range(MAX_CONTACTS - len(boxes))]
    order = list(range(MAX_CONTACTS))
    secrets.SystemRandom().shuffle(order)  # where a contact's box sits says nothing either
    framed = padding.frame(keys.to_bytes(), _BOXES_END + primitives.SALT_SIZE + primitives.TAG_SIZE)
    wrapped = primitives.seal_box(_kek(secret, pad), framed, purpose=b"slot contact v2")
    return store_slot(storage, pad + b"".join(boxes[i] for i in order) + wrapped)
# --- recovery ---------------------------------------------------------------------------------
def verification_code(slot_names_offered: list[str], ephemeral_public: bytes) -> str:
    """The code a request shows, e.g. `0123-4567-8901`: HKDF of its ephemeral key, salted with its slots."""
    salt = "\n".join(sorted(slot_names_offered)).encode()
    digest = primitives.hkdf(ephemeral_public, salt=salt, info=b"coffer recovery verification code v2", length=16)
    digits = str(int.from_bytes(digest, "big") % 10**CODE_DIGITS).zfill(CODE_DIGITS)
    return "-".join(digits[i : i + CODE_GROUP] for i in range(0, CODE_DIGITS, CODE_GROUP))


def _code_digits(code: str) -> str:
    return "".join(character for character in code if character.isdigit())


@dataclass
class RecoveryRequest:
    slots: list[str]
    ephemeral_public: bytes

    @property
    def code(self) -> str:
        return verification_code(self.slots, self.ephemeral_public)


@dataclass
class Recovered:
    """The key set a recovery opened (and its slot), the answers whose share is bad, and the files that
    answer another request."""

    slot: str
    keys: KeySet
    bad_answers: list[Answer] = field(default_factory=list)
    not_for_this: list[Path] = field(default_factory=list)


def make_request(storage: Storage, slot_names_wanted: list[str] | None, output: Path) -> RecoveryRequest:
    """Write the request for the contacts (`output`) and the owner's private half (`output`.secret).

    Without a key nobody can tell a contact slot from another, so the request carries the share
    boxes of every slot (or of the slots asked for); each contact's key opens only its own box."""
    names = slot_names_wanted or slot_names(storage)
    candidates = {}
    for name in names:
        parsed = ContactSlot.parse(read_slot(storage, name))
        if parsed is not None:
            candidates[name] = [_b64(box) for box in parsed.boxes]
    if not candidates:
        raise UsageError("this repository has no slot that can be a recovery-contact slot")
    private, public = primitives.generate_keypair()
    request = {"coffer_recovery_request": 2, "ephemeral_public": _b64(public), "slots": candidates}
    secret_path = output.with_name(output.name + ".secret")
    key_files.write_new(secret_path, {"coffer_recovery_secret": 2, "ephemeral_private": _b64(private)})
    key_files.write_new(output, request)
    return RecoveryRequest(sorted(candidates), public)


def _parse_request(request: dict[str, object], request_path: Path) -> tuple[bytes, dict[str, list[str]]]:
    try:
        if request.get("coffer_recovery_request") != 2:
            raise ValueError("version")
        return _unb64(str(request["ephemeral_public"])), dict(request["slots"])  # type: ignore[call-overload]
    except (KeyError, ValueError, TypeError) as exc:
        raise UsageError(f"{request_path} is not a recovery request of this Coffer version") from exc


def assist(request_path: Path, contact_key: Path, passphrase: str, output: Path, typed_code: str) -> str:
    """The contact's step: check the code the owner read out, find the share their key opens and re-seal
    it to the owner's ephemeral key. Returns the request's code. A code that does not match writes nothing."""
    request = key_files.read(request_path, "recovery request")
    ephemeral_public, offered = _parse_request(request, request_path)
    code = verification_code(list(offered), ephemeral_public)
    if not hmac.compare_digest(_code_digits(typed_code), _code_digits(code)):
        raise WrongSecretError(
            f"the verification code does not match the request {request_path}: answer only a request whose code "
            "the owner read to you themselves (nothing was written)"
        )
    private, _public = open_contact_key(contact_key, passphrase)
    for slot, boxes in offered.items():
        for box in boxes:
            try:
                plain = primitives.open_sealed(private, _unb64(box), purpose=b"contact share v2")
            except (primitives.DecryptionError, ValueError):
                continue
            resealed = primitives.seal_to(ephemeral_public, plain, purpose=b"contact response v2")
            key_files.write_new(output, {"coffer_recovery_response": 2, "slot": slot, "share": _b64(resealed)})
            return code
    raise WrongSecretError("this contact key opens no share in the request: it is not one of this repository's contacts")


@dataclass(frozen=True)
class Answer:
    path: Path
    slot: str
    index: int
    threshold: int
    share: bytes

    def who(self) -> str:
        return f"the answer {self.path} (contact {self.index} of slot {self.slot.removeprefix('keys/')[:8]})"


def _read_answers(paths: list[Path], ephemeral_private: bytes) -> tuple[list[Answer], list[Path]]:
    """The shares the responses carry, and the responses that were not sealed to this request."""
    answers, unreadable = [], []
    for path in paths:
        response = key_files.read(path, "recovery response")
        try:
            plain = primitives.open_sealed(ephemeral_private, _unb64(str(response["share"])), purpose=b"contact response v2")
            if len(plain) != SHARE_PLAIN_SIZE:
                raise ValueError("share size")
            answers.append(Answer(path, str(response["slot"]), plain[0], plain[1], plain[2:]))
        except (primitives.DecryptionError, KeyError, ValueError, TypeError):
            unreadable.append(path)
    return answers, unreadable


def _combine(answers: tuple[Answer, ...]) -> bytes | None:
    if len({answer.index for answer in answers}) != len(answers):
        return None  # the same share twice, or two claiming one index
    if len(answers) == 1:
        return answers[0].share
    try:
        return Shamir.combine([(answer.index, answer.share) for answer in answers])
    except ValueError:
        return None


def _open_slot(slot: ContactSlot, secret: bytes) -> KeySet | None:
    try:
        framed = primitives.open_box(_kek(secret, slot.pad), slot.wrapped, purpose=b"slot contact v2")
        return KeySet.from_bytes(padding.unframe(framed))
    except (primitives.DecryptionError, padding.PaddingError):
        return None


def recover(storage: Storage, secret_path: Path, responses: list[Path]) -> Recovered:
    """The owner's last step: find a set of `threshold` answers that opens their slot, trying every
    combination, so one bad answer neither blocks recovery nor goes unnamed."""
    secret_doc = key_files.read(secret_path, "recovery secret")
    ephemeral_private = _unb64(str(secret_doc["ephemeral_private"]))
    answers, unreadable = _read_answers(responses, ephemeral_private)
    not_for_this = [f"{path} was not made for this request" for path in unreadable]
    by_slot: dict[str, list[Answer]] = {}
    for answer in answers:
        by_slot.setdefault(answer.slot, []).append(answer)
    needed = 1
    for slot_name, group in sorted(by_slot.items()):
        threshold = max(answer.threshold for answer in group)  # a forged answer may claim a lower one
        needed = max(needed, threshold)
        parsed = ContactSlot.parse(read_slot(storage, slot_name))
        if parsed is None or len(group) < threshold:
            continue
        for chosen in itertools.combinations(group, threshold):
            secret = _combine(chosen)
            keys = None if secret is None else _open_slot(parsed, secret)
            if keys is None or secret is None:
                continue
            # An answer outside the winning set is good when it rebuilds the same secret with the others.
            used = {(a.index, a.share) for a in chosen}
            bad = [a for a in group if (a.index, a.share) not in used and _combine((*chosen[1:], a)) != secret]
            return Recovered(slot_name, keys, bad, unreadable)
    if len(answers) < needed and not unreadable:
        raise UsageError(f"{len(answers)} of the {needed} contact responses needed")
    suspects = "; ".join(not_for_this + [answer.who() for answer in answers])
    raise WrongSecretError(f"no {needed} of the responses open the contact slot (wrong or forged shares): {suspects}")
