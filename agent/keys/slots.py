"""Key slots: `keys/<sha256>` objects, each wrapping a key set for one way of unlocking.

Kinds: `passphrase` (Argon2id with the repository's parameters), `recovery` (the random
recovery key through HKDF), `contact` (see `contacts`), `put-only` and `category` (a key file
holding a random secret). A slot object is opaque and padded: nothing in it is in clear, not
even its kind. What the owner may know of a slot — kind, creation time, label, a contact slot's
contacts and threshold — is in the config's slot catalogue (`SlotEntry`), sealed and signed.

A slot's name is the SHA-256 of its bytes, so `check` tells a damaged slot (exit 4) from a
wrong secret (exit 3) without any key. Unlocking tries every slot with the one stretched
secret (cheap AEAD opens) and returns every key set it opens: the caller keeps the one whose
owner signed the current config and whose slot that config lists, which is what makes an
interrupted `key rotate` or `key passwd` harmless and a revoked slot put back useless.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from agent.errors import (
    ObjectExistsError,
    ObjectNotFoundError,
    RepositoryDamagedError,
    UsageError,
    WrongSecretError,
)
from agent.keys import key_files, primitives
from agent.keys.kdf import KdfParams
from agent.keys.keyset import KeySet
from agent.storage.base import Storage

SLOT_PREFIX = "keys/"
SLOT_KINDS = ("passphrase", "recovery", "contact", "put-only", "category")
FULL_KINDS = ("passphrase", "recovery", "contact")
KEY_FILE_FORMAT = 2
_PURPOSE = b"slot v2"


@dataclass(frozen=True)
class Passphrase:
    text: str


@dataclass(frozen=True)
class RecoveryKey:
    key: bytes


@dataclass(frozen=True)
class KeyFile:
    path: Path


Secret = Passphrase | RecoveryKey | KeyFile


@dataclass
class SlotEntry:
    """The config's record of one slot; the slot object itself says nothing."""

    kind: str
    created: float
    label: str | None = None
    contacts: list[str] | None = None  # contact slots: the contacts' public keys (base64)
    threshold: int | None = None  # contact slots: how many contacts must answer

    @classmethod
    def new(cls, kind: str, label: str | None = None) -> SlotEntry:
        return cls(kind=kind, created=time.time(), label=label)


@dataclass
class Unlocked:
    keys: KeySet
    slot_name: str


def short_id(name: str) -> str:
    return name.removeprefix(SLOT_PREFIX)[:8]


def _kek_from_recovery_key(key: bytes) -> bytes:
    return primitives.hkdf(key, salt=None, info=b"coffer recovery slot v1")


def _kek_from_file_secret(secret: bytes) -> bytes:
    return primitives.hkdf(secret, salt=None, info=b"coffer key file v1")


def seal_keys(kek: bytes, keys: KeySet) -> bytes:
    return primitives.seal_object(kek, keys.to_bytes(), purpose=_PURPOSE)


def open_keys(kek: bytes, sealed: bytes) -> KeySet | None:
    try:
        return KeySet.from_bytes(primitives.open_object([kek], sealed, purpose=_PURPOSE))
    except primitives.DecryptionError:
        return None


def store_slot(storage: Storage, data: bytes) -> str:
    name = SLOT_PREFIX + primitives.sha256(data).hex()
    try:
        storage.put(name, data)
    except ObjectExistsError:
        pass  # identical content already stored: a retried write
    return name


def add_passphrase_slot(storage: Storage, kdf: KdfParams, passphrase: str, keys: KeySet) -> str:
    return store_slot(storage, seal_keys(kdf.derive(passphrase), keys))


def add_recovery_slot(storage: Storage, recovery_key: bytes, keys: KeySet) -> str:
    return store_slot(storage, seal_keys(_kek_from_recovery_key(recovery_key), keys))


def add_key_file_slot(storage: Storage, kind: str, keys: KeySet, output: Path) -> str:
    """Write a slot for a key file and the key file itself (0600, never overwritten)."""
    secret = primitives.random_key()
    name = store_slot(storage, seal_keys(_kek_from_file_secret(secret), keys))
    doc = {
        "coffer_key_file": KEY_FILE_FORMAT,
        "kind": kind,
        "repository_id": keys.repository_id,
        "slot": name,
        "secret": base64.b64encode(secret).decode(),
    }
    try:
        key_files.write_new(output, doc)
    except UsageError:
        storage.delete(name)
        raise
    return name


def read_slot(storage: Storage, name: str) -> bytes:
    try:
        data = storage.get(name)
    except ObjectNotFoundError as exc:
        raise RepositoryDamagedError(f"key slot {name} is missing from storage") from exc
    if primitives.sha256(data).hex() != name.removeprefix(SLOT_PREFIX):
        raise RepositoryDamagedError(f"key slot {name} is damaged (its content does not match its name)")
    return data


def slot_names(storage: Storage) -> list[str]:
    return sorted(info.name for info in storage.list(SLOT_PREFIX))


def read_key_file(path: Path) -> dict[str, object]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"key file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WrongSecretError(f"{path} is not a Coffer key file") from exc
    if not isinstance(doc, dict) or "secret" not in doc:
        raise WrongSecretError(f"{path} is not a Coffer key file")
    if doc.get("coffer_key_file") != KEY_FILE_FORMAT:
        raise WrongSecretError(f"{path} is a key file of another Coffer format version: ask the owner for a new one")
    return doc


def unlock(storage: Storage, kdf: KdfParams, secret: Secret, listed: Collection[str] = ()) -> list[Unlocked]:
    """Every key set the secret opens; the caller keeps the one the verified config vouches for.

    The passphrase is stretched once whatever the slot count. `listed` are the slots the config
    names. When nothing opens and a slot is damaged or a listed one missing, that damage is the
    error (exit 4), since the slot this secret belongs to may be the one lost; otherwise it is a
    wrong secret (exit 3).
    """
    if isinstance(secret, KeyFile):
        doc = read_key_file(secret.path)
        name = str(doc.get("slot", ""))
        if not name.startswith(SLOT_PREFIX) or not storage.exists(name):
            raise WrongSecretError(f"key file {secret.path} belongs to a slot this repository does not have (revoked?)")
        kek = _kek_from_file_secret(base64.b64decode(str(doc["secret"])))
        keys = open_keys(kek, read_slot(storage, name))
        if keys is None:
            raise WrongSecretError(f"key file {secret.path} does not unlock this repository")
        return [Unlocked(keys, name)]
    if isinstance(secret, RecoveryKey):
        kek, what = _kek_from_recovery_key(secret.key), "recovery key"
    else:
        kek, what = kdf.derive(secret.text), "passphrase"
    present = slot_names(storage)
    problems = [f"key slot {name} is missing from storage" for name in sorted(set(listed) - set(present))]
    opened: list[Unlocked] = []
    for name in sorted(present, key=lambda n: n not in listed):
        try:
            data = read_slot(storage, name)
        except RepositoryDamagedError as exc:
            problems.append(str(exc))
            continue
        keys = open_keys(kek, data)
        if keys is not None:
            opened.append(Unlocked(keys, name))
    if opened:
        return opened
    if problems:
        raise RepositoryDamagedError(f"no key slot opens with this {what}, and {'; '.join(problems)}")
    raise WrongSecretError(f"wrong {what}: it opens no key slot of this repository")


def find_slot(listed: dict[str, SlotEntry], prefix: str) -> str:
    wanted = prefix.removeprefix(SLOT_PREFIX)
    matches = [n for n in listed if n.removeprefix(SLOT_PREFIX).startswith(wanted)]
    if not matches:
        raise UsageError(f"no key slot {prefix!r} (see `coffer key list`)")
    if len(matches) > 1:
        raise UsageError(f"key slot prefix {prefix!r} is ambiguous")
    return matches[0]
