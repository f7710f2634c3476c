"""Key slots: `keys/<sha256>` objects, each wrapping a key set for one way of unlocking.

Kinds: `passphrase` (Argon2id with the repository's parameters), `recovery` (the random
recovery key through HKDF), `put-only` and `category` (a key file holding a random secret).
A slot's name is the SHA-256 of its bytes, so `check` tells a damaged slot (exit 4) from a
wrong secret (exit 3) without any key. Labels are encrypted under the repository's
authentication key: no host or user names in clear.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ObjectExistsError, RepositoryDamagedError, UsageError, WrongSecretError
from agent.keys import key_files, primitives
from agent.keys.kdf import KdfParams
from agent.keys.keyset import KeySet
from agent.storage.base import Storage

SLOT_PREFIX = "keys/"
SLOT_KINDS = ("passphrase", "recovery", "contact", "put-only", "category")
KEY_FILE_FORMAT = 1


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
class SlotInfo:
    name: str
    kind: str
    created: float
    label: str | None

    @property
    def short_id(self) -> str:
        return self.name.removeprefix(SLOT_PREFIX)[:8]


@dataclass
class Unlocked:
    keys: KeySet
    slot_name: str


def _purpose(kind: str) -> bytes:
    return b"slot " + kind.encode("ascii")


def _kek_from_recovery_key(key: bytes) -> bytes:
    return primitives.hkdf(key, salt=None, info=b"coffer recovery slot v1")


def _kek_from_file_secret(secret: bytes) -> bytes:
    return primitives.hkdf(secret, salt=None, info=b"coffer key file v1")


def _encode_slot(kind: str, kek: bytes, keys: KeySet, auth_key: bytes, label: str | None) -> bytes:
    doc = {
        "v": 1,
        "kind": kind,
        "created": time.time(),
        "wrapped": base64.b64encode(primitives.seal_box(kek, keys.to_bytes(), purpose=_purpose(kind))).decode(),
    }
    if label:
        sealed_label = primitives.seal_box(auth_key, label.encode("utf-8"), purpose=b"slot label")
        doc["label"] = base64.b64encode(sealed_label).decode()
    return json.dumps(doc, sort_keys=True).encode("utf-8")


def write_slot(storage: Storage, kind: str, kek: bytes, keys: KeySet, *, auth_key: bytes, label: str | None) -> str:
    data = _encode_slot(kind, kek, keys, auth_key, label)
    name = SLOT_PREFIX + primitives.sha256(data).hex()
    try:
        storage.put(name, data)
    except ObjectExistsError:
        pass  # identical content already stored: a retried write
    return name


def add_passphrase_slot(storage: Storage, kdf: KdfParams, passphrase: str, keys: KeySet, label: str | None) -> str:
    return write_slot(storage, "passphrase", kdf.derive(passphrase), keys, auth_key=keys.auth_key, label=label)


def add_recovery_slot(storage: Storage, recovery_key: bytes, keys: KeySet, label: str | None = None) -> str:
    kek = _kek_from_recovery_key(recovery_key)
    return write_slot(storage, "recovery", kek, keys, auth_key=keys.auth_key, label=label)


def add_key_file_slot(storage: Storage, kind: str, keys: KeySet, output: Path, label: str | None) -> str:
    """Write a slot for a key file and the key file itself (0600, never overwritten)."""
    secret = primitives.random_key()
    name = write_slot(storage, kind, _kek_from_file_secret(secret), keys, auth_key=keys.auth_key, label=label)
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


def read_slot(storage: Storage, name: str) -> dict[str, object]:
    data = storage.get(name)
    if primitives.sha256(data).hex() != name.removeprefix(SLOT_PREFIX):
        raise RepositoryDamagedError(f"key slot {name} is damaged (its content does not match its name)")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RepositoryDamagedError(f"key slot {name} is not a valid slot") from exc
    if not isinstance(doc, dict) or doc.get("kind") not in SLOT_KINDS or "wrapped" not in doc or "created" not in doc:
        raise RepositoryDamagedError(f"key slot {name} is not a valid slot")
    return doc


def slot_names(storage: Storage) -> list[str]:
    return sorted(info.name for info in storage.list(SLOT_PREFIX))


def _iter_slots(storage: Storage, kinds: tuple[str, ...]) -> Iterator[tuple[str, dict[str, object]]]:
    for name in slot_names(storage):
        doc = read_slot(storage, name)
        if doc["kind"] in kinds:
            yield name, doc


def _try_unwrap(doc: dict[str, object], kek: bytes) -> KeySet | None:
    sealed = base64.b64decode(str(doc["wrapped"]))
    try:
        return KeySet.from_bytes(primitives.open_box(kek, sealed, purpose=_purpose(str(doc["kind"]))))
    except primitives.DecryptionError:
        return None


def read_key_file(path: Path) -> dict[str, object]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"key file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WrongSecretError(f"{path} is not a Coffer key file") from exc
    if not isinstance(doc, dict) or doc.get("coffer_key_file") != KEY_FILE_FORMAT or "secret" not in doc:
        raise WrongSecretError(f"{path} is not a Coffer key file")
    return doc


def unlock(storage: Storage, kdf: KdfParams, secret: Secret, expected_slots: Collection[str] = ()) -> list[Unlocked]:
    """Every key set the secret opens; the passphrase is stretched once whatever the slot count.

    A secret can open several slots: an interrupted rotation or key change leaves the slot it was writing, or the
    one it was replacing, beside the current one. The caller keeps the key set that authenticates the config.
    `expected_slots` are the slots the config lists. A damaged or missing slot does not stop another slot
    from opening; when none opens and some slot is damaged or missing, that damage is the error (exit 4),
    since the slot this secret belongs to may be the one lost.
    """
    if isinstance(secret, KeyFile):
        doc = read_key_file(secret.path)
        name = str(doc.get("slot", ""))
        if not name.startswith(SLOT_PREFIX) or not storage.exists(name):
            if name in expected_slots:
                raise RepositoryDamagedError(f"key slot {name} of key file {secret.path} is missing from storage")
            raise WrongSecretError(f"key file {secret.path} belongs to a slot this repository does not have (removed?)")
        kek = _kek_from_file_secret(base64.b64decode(str(doc["secret"])))
        keys = _try_unwrap(read_slot(storage, name), kek)
        if keys is None:
            raise WrongSecretError(f"key file {secret.path} does not unlock this repository")
        return [Unlocked(keys, name)]
    if isinstance(secret, RecoveryKey):
        kinds, kek, what = ("recovery",), _kek_from_recovery_key(secret.key), "recovery key"
    else:
        kinds, kek, what = ("passphrase",), kdf.derive(secret.text), "passphrase"
    present = slot_names(storage)
    problems = [f"key slot {name} is missing" for name in sorted(set(expected_slots) - set(present))]
    opened = []
    for name in present:
        try:
            doc = read_slot(storage, name)
        except RepositoryDamagedError as exc:
            problems.append(str(exc))
            continue
        keys = _try_unwrap(doc, kek) if doc["kind"] in kinds else None
        if keys is not None:
            opened.append(Unlocked(keys, name))
    if opened:
        return opened
    if problems:
        raise RepositoryDamagedError(f"no key slot opens with this {what}, and {'; '.join(problems)}")
    raise WrongSecretError(f"wrong {what}: it opens no key slot of this repository")


def list_slots(storage: Storage, auth_key: bytes) -> list[SlotInfo]:
    slots = []
    for name, doc in _iter_slots(storage, SLOT_KINDS):
        label = None
        if "label" in doc:
            try:
                sealed = base64.b64decode(str(doc["label"]))
                label = primitives.open_box(auth_key, sealed, purpose=b"slot label").decode("utf-8")
            except primitives.DecryptionError:
                label = "(unreadable)"
        slots.append(SlotInfo(name=name, kind=str(doc["kind"]), created=float(doc["created"]), label=label))  # type: ignore[arg-type]
    return sorted(slots, key=lambda s: s.created)


def find_slot(storage: Storage, prefix: str) -> str:
    matches = [n for n in slot_names(storage) if n.removeprefix(SLOT_PREFIX).startswith(prefix.removeprefix(SLOT_PREFIX))]
    if not matches:
        raise UsageError(f"no key slot {prefix!r}")
    if len(matches) > 1:
        raise UsageError(f"key slot prefix {prefix!r} is ambiguous")
    return matches[0]
