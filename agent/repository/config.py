"""The `config` object (format version 2): parameters, public keys and the slot catalogue, signed by the owner.

In clear, only what a client needs before it can unlock anything: the format version, the
key-derivation parameters (bounds-checked on decode) and the names of the key slots (which the
storage listing shows anyway), so a deleted slot is reported as damage, not as a wrong secret. Everything else — repository ID,
categories, chunker and pack settings, Object Lock days, the public keys and the catalogue of
key slots (kind, creation time, label) — is sealed under the `auth_key` that every key set holds,
and the whole is signed with Ed25519 by a key that only full key sets hold. So a storage provider
cannot read or alter it, and a station or category-key holder can read it but neither forge nor
alter it: writers take the public keys they seal to from their own key set, and every client
refuses a config whose signature does not verify with the verifying key of its own key set.

The object ends with a SHA-256 of the rest, so damage is told from tampering without a key.
A `generation` counter, raised at every rewrite, lets each host notice a rolled-back config.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field

from agent.errors import RepositoryDamagedError, UnsupportedFormatError
from agent.keys import primitives
from agent.keys.kdf import KdfParams, KdfParamsError
from agent.keys.keyset import KeySet
from agent.keys.padding import object_size
from agent.keys.slots import SlotEntry

CONFIG_NAME = "config"
FORMAT_VERSION = 2  # major version: a reader refuses any other
CHECKSUM_SIZE = 32
_SIGNED_CONTEXT = b"coffer config v2\0"


@dataclass
class ChunkerSettings:
    min_size: int = 512 * 1024
    avg_size: int = 1 << 20
    max_size: int = 8 << 20


@dataclass
class PackSettings:
    min_size: int = 16 << 20
    max_size: int = 32 << 20


@dataclass
class RepositoryConfig:
    repository_id: str
    kdf: KdfParams
    public_keys: dict[str, bytes]
    categories: list[str]
    chunker: ChunkerSettings = field(default_factory=ChunkerSettings)
    packs: PackSettings = field(default_factory=PackSettings)
    created: float = field(default_factory=time.time)
    plain_category_tags: bool = False
    object_lock_days: int = 0
    key_slots: dict[str, SlotEntry] = field(default_factory=dict)  # slot object name -> entry
    generation: int = 1

    def _body(self) -> dict[str, object]:
        return {
            "repository_id": self.repository_id,
            "created": self.created,
            "generation": self.generation,
            "categories": self.categories,
            "public_keys": {k: base64.b64encode(v).decode() for k, v in sorted(self.public_keys.items())},
            "chunker": self.chunker.__dict__,
            "packs": self.packs.__dict__,
            "plain_category_tags": self.plain_category_tags,
            "object_lock_days": self.object_lock_days,
            "key_slots": {name: entry.__dict__ for name, entry in sorted(self.key_slots.items())},
        }

    def encode(self, keys: KeySet) -> bytes:
        """The stored bytes, signed: only a full key set can produce them."""
        keys.require_full()
        assert keys.sign_key is not None
        body = primitives.seal_object(keys.auth_key, json.dumps(self._body(), sort_keys=True).encode(), purpose=b"config")
        clear = {"kdf": self.kdf.to_dict(), "slots": sorted(self.key_slots)}
        signature = primitives.sign(keys.sign_key, _signed_bytes(clear, body))
        doc = {"coffer": FORMAT_VERSION, **clear, "body": _b64(body), "signature": _b64(signature), "pad": ""}
        # Even the config has a size class: a run of zeros (outside the signature) fills it up.
        unpadded = len(json.dumps(doc, sort_keys=True, indent=1).encode("utf-8")) + CHECKSUM_SIZE
        doc["pad"] = "0" * (object_size(unpadded) - unpadded)
        data = json.dumps(doc, sort_keys=True, indent=1).encode("utf-8")
        return data + primitives.sha256(data)

    def tag(self, space: str, tag_key: bytes) -> str:
        """The storage folder name of a category's packs: opaque unless the user opted in."""
        if self.plain_category_tags:
            return space
        return primitives.mac(tag_key, b"coffer tag v1 " + space.encode("utf-8"))[:8].hex()

    def slots_of_kind(self, *kinds: str) -> list[str]:
        return sorted(name for name, entry in self.key_slots.items() if entry.kind in kinds)


@dataclass
class ConfigEnvelope:
    """The config as read before unlocking: the KDF parameters, and a signed, sealed body."""

    kdf: KdfParams
    slot_names: list[str]  # unverified until `open`
    body: bytes
    signature: bytes

    @classmethod
    def decode(cls, data: bytes) -> ConfigEnvelope:
        body, checksum = data[:-CHECKSUM_SIZE], data[-CHECKSUM_SIZE:]
        if len(data) <= CHECKSUM_SIZE or primitives.sha256(body) != checksum:
            raise RepositoryDamagedError("the repository config is damaged (checksum mismatch)")
        try:
            doc = json.loads(body.decode("utf-8"))
            if not isinstance(doc, dict):
                raise TypeError("not an object")
            version = _version_of(doc)
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RepositoryDamagedError("the repository config is not valid") from exc
        if version != FORMAT_VERSION:
            raise UnsupportedFormatError(_version_message(version))
        try:
            kdf = KdfParams.from_dict(doc["kdf"], "the key derivation parameters in the repository config")
            names = [str(name) for name in doc["slots"]]
            return cls(kdf=kdf, slot_names=names, body=_unb64(doc["body"]), signature=_unb64(doc["signature"]))
        except KdfParamsError as exc:
            raise RepositoryDamagedError(str(exc)) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise RepositoryDamagedError("the repository config is not valid") from exc

    def verifies_with(self, keys: KeySet) -> bool:
        clear = {"kdf": self.kdf.to_dict(), "slots": self.slot_names}
        return primitives.verify_signature(keys.verify_key, self.signature, _signed_bytes(clear, self.body))

    def open(self, keys: KeySet) -> RepositoryConfig:
        """The config, if it is the one this key set's owner signed; otherwise RepositoryDamagedError."""
        if not self.verifies_with(keys):
            raise RepositoryDamagedError(
                "the repository config is not signed by this repository's owner: it was altered or replaced"
            )
        try:
            raw = json.loads(primitives.open_object([keys.auth_key], self.body, purpose=b"config"))
            return RepositoryConfig(
                repository_id=str(raw["repository_id"]),
                kdf=self.kdf,
                public_keys={k: _unb64(v) for k, v in raw["public_keys"].items()},
                categories=[str(c) for c in raw["categories"]],
                chunker=ChunkerSettings(**raw["chunker"]),
                packs=PackSettings(**raw["packs"]),
                created=float(raw["created"]),
                plain_category_tags=bool(raw["plain_category_tags"]),
                object_lock_days=int(raw["object_lock_days"]),
                key_slots={name: SlotEntry(**entry) for name, entry in raw["key_slots"].items() if name in self.slot_names},
                generation=int(raw["generation"]),
            )
        except primitives.DecryptionError as exc:
            raise RepositoryDamagedError("the repository config's body does not open with this key") from exc
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RepositoryDamagedError("the repository config's body is not valid") from exc


def _signed_bytes(clear: dict[str, object], body: bytes) -> bytes:
    return _SIGNED_CONTEXT + json.dumps(clear, sort_keys=True).encode() + b"\0" + body


def _version_of(doc: dict[str, object]) -> int:
    if "coffer" in doc:
        return int(doc["coffer"])  # type: ignore[call-overload]
    return int(doc["config"]["version"])  # type: ignore[index] # format version 1 kept it inside


def _version_message(version: int) -> str:
    if version < FORMAT_VERSION:
        return (
            f"this repository uses format version {version}, which this Coffer no longer opens: its config and "
            "snapshots are not authenticated against stations and storage (docs/format.md); read it with the Coffer "
            "that made it and back up into a new repository"
        )
    return f"this repository uses format version {version}; this Coffer reads version {FORMAT_VERSION}: upgrade Coffer"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    return base64.b64decode(str(text).encode("ascii"), validate=True)
