"""The `config` object: format version, parameters and public keys, authenticated.

The config is readable without a key (it holds only parameters and public keys) so that a
client can learn the key-derivation parameters before it unlocks anything. It ends with a
SHA-256 of the rest, so damage is detectable without a key, and carries an HMAC under the
authentication key that every key set holds, so a storage provider cannot swap a public key
and have a backup station seal new data to a key of its choosing.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from dataclasses import dataclass, field

from agent.errors import RepositoryDamagedError, UsageError
from agent.keys import primitives
from agent.keys.kdf import KdfParams

CONFIG_NAME = "config"
FORMAT_VERSION = 1  # major version: a reader refuses a newer one
CHECKSUM_SIZE = 32


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
    key_slots: list[str] = field(default_factory=list)  # so a deleted slot is noticed
    version: int = FORMAT_VERSION

    def _body(self) -> dict[str, object]:
        return {
            "version": self.version,
            "repository_id": self.repository_id,
            "created": self.created,
            "kdf": self.kdf.to_dict(),
            "categories": self.categories,
            "public_keys": {k: base64.b64encode(v).decode() for k, v in sorted(self.public_keys.items())},
            "chunker": self.chunker.__dict__,
            "packs": self.packs.__dict__,
            "plain_category_tags": self.plain_category_tags,
            "object_lock_days": self.object_lock_days,
            "key_slots": sorted(self.key_slots),
        }

    def _mac(self, auth_key: bytes) -> str:
        canonical = json.dumps(self._body(), sort_keys=True).encode("utf-8")
        return primitives.mac(auth_key, b"coffer config v1" + canonical).hex()

    def encode(self, auth_key: bytes) -> bytes:
        doc = {"config": self._body(), "mac": self._mac(auth_key)}
        data = json.dumps(doc, sort_keys=True, indent=1).encode("utf-8")
        return data + primitives.sha256(data)

    @classmethod
    def decode(cls, data: bytes) -> tuple[RepositoryConfig, str]:
        """Parse the config; return it with the MAC to verify once a key is unlocked."""
        body, checksum = data[:-CHECKSUM_SIZE], data[-CHECKSUM_SIZE:]
        if len(data) <= CHECKSUM_SIZE or primitives.sha256(body) != checksum:
            raise RepositoryDamagedError("the repository config is damaged (checksum mismatch)")
        try:
            doc = json.loads(body.decode("utf-8"))
            raw = doc["config"]
            version = int(raw["version"])
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RepositoryDamagedError("the repository config is not valid") from exc
        if version > FORMAT_VERSION:
            raise UsageError(
                f"this repository uses format version {version}; this Coffer reads up to {FORMAT_VERSION}: upgrade Coffer"
            )
        config = cls(
            repository_id=raw["repository_id"],
            kdf=KdfParams.from_dict(raw["kdf"]),
            public_keys={k: base64.b64decode(v) for k, v in raw["public_keys"].items()},
            categories=list(raw["categories"]),
            chunker=ChunkerSettings(**raw["chunker"]),
            packs=PackSettings(**raw["packs"]),
            created=float(raw["created"]),
            plain_category_tags=bool(raw["plain_category_tags"]),
            object_lock_days=int(raw["object_lock_days"]),
            key_slots=list(raw.get("key_slots", [])),
            version=version,
        )
        return config, str(doc["mac"])

    def verify(self, mac: str, auth_key: bytes) -> None:
        if not hmac.compare_digest(self._mac(auth_key), mac):
            raise RepositoryDamagedError("the repository config fails authentication: it was altered")

    def tag(self, space: str, auth_key: bytes) -> str:
        """The storage folder name of a category's packs: opaque unless the user opted in."""
        if self.plain_category_tags:
            return space
        return primitives.mac(auth_key, b"coffer tag v1 " + space.encode("utf-8"))[:8].hex()
