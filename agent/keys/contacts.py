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
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
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
@dataclass
class RecoveryRequest:
    slot: str
    ephemeral_public: bytes
    contacts: list[dict[str, object]]
    threshold: int


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


def assist(request_path: Path, contact_key: Path, passphrase: str, output: Path) -> None:
    """The contact's step: open their share and re-seal it to the owner's ephemeral key."""
    request = key_files.read(request_path, "recovery request")
    private, public = open_contact_key(contact_key, passphrase)
    for contact in request.get("contacts", []):  # type: ignore[union-attr]
        if _unb64(contact["public"]) == public:
            try:
                share = primitives.open_sealed(private, _unb64(contact["share"]), purpose=b"contact share")
            except primitives.DecryptionError as exc:
                raise WrongSecretError("this contact key does not open its share in the request") from exc
            resealed = primitives.seal_to(_unb64(str(request["ephemeral_public"])), share, purpose=b"contact response")
            key_files.write_new(output, {"coffer_recovery_response": 1, "slot": request["slot"], "index": contact["index"],
                                "share": _b64(resealed)})
            return
    raise WrongSecretError("this contact key is not one of the contacts of the request")


def recover(storage: Storage, secret_path: Path, responses: list[Path]) -> KeySet:
    """The owner's last step: combine the contacts' responses into the key set."""
    secret_doc = key_files.read(secret_path, "recovery secret")
    ephemeral_private = _unb64(str(secret_doc["ephemeral_private"]))
    slot_name = str(secret_doc["slot"])
    document = read_slot(storage, slot_name)
    threshold = int(document["threshold"])  # type: ignore[arg-type]
    shares: dict[int, bytes] = {}
    for path in responses:
        response = key_files.read(path, "recovery response")
        if response.get("slot") != slot_name:
            raise UsageError(f"{path} answers another recovery request")
        try:
            share = primitives.open_sealed(ephemeral_private, _unb64(str(response["share"])), purpose=b"contact response")
        except primitives.DecryptionError as exc:
            raise WrongSecretError(f"{path} was not made for this request") from exc
        shares[int(response["index"])] = share  # type: ignore[arg-type]
    if len(shares) < threshold:
        raise UsageError(f"{len(shares)} of the {threshold} contact responses needed")
    secret = next(iter(shares.values())) if threshold == 1 else Shamir.combine(list(shares.items())[:threshold])
    pad = _unb64(str(document["pad"]))
    try:
        plain = primitives.open_box(_kek(secret, pad), _unb64(str(document["wrapped"])), purpose=b"slot contact")
    except primitives.DecryptionError as exc:
        raise WrongSecretError("the responses do not open the contact slot (a wrong or forged share?)") from exc
    return KeySet.from_bytes(plain)
