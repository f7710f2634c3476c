"""The key set: every secret a repository uses, and which subset a given slot holds.

A full key set holds everything. A put-only set (a backup station) holds the writing
keys and the public keys only: it can add packs, index and snapshots, and cannot open any
of them. A category set holds the keys to find and read one category and the snapshot
headers. DESIGN.md section 3 explains the layers.

Only a full set holds the config's Ed25519 signing key; every set holds the verifying key, so
no station or category-key holder can forge the config, and the public keys a writer seals to
come from its own set, never from storage.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from agent.errors import AccessDeniedError
from agent.keys import primitives

HEADER_SPACE = "_header"  # snapshot headers: device identity, time, the backup's plists
MANIFEST_SPACE = "_manifest"  # the original Manifest.db and a device's backup password: full set only
INTERNAL_SPACES = (HEADER_SPACE, MANIFEST_SPACE)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass
class RetiredKeys:
    """Keys a rotation replaced, kept in full key sets so data sealed before the rotation stays readable."""

    index_key: bytes | None
    private_keys: dict[str, bytes]


@dataclass
class KeySet:
    """Secrets of one repository, or the subset a slot grants."""

    kind: str  # "full", "put-only" or "category"
    repository_id: str
    auth_key: bytes  # seals the config's body (parameters, slot catalogue); in every set
    verify_key: bytes  # Ed25519 public key the config is signed with; in every set
    sign_key: bytes | None = None  # its private half: full sets only, so only they can write the config
    id_key: bytes | None = None  # derives each space's chunk-ID key; device tags
    chunker_key: bytes | None = None  # keyed chunk boundaries
    index_key: bytes | None = None  # encrypts the index and the snapshot chain records
    public_keys: dict[str, bytes] = field(default_factory=dict)  # space -> X25519 public key
    private_keys: dict[str, bytes] = field(default_factory=dict)  # space -> X25519 private key
    tag_key: bytes | None = None  # opaque storage tags; kept across rotations so pack names stay put
    retired: list[RetiredKeys] = field(default_factory=list)  # older generations, newest first
    # A category share holds its own space's chunk-ID key instead of `id_key`, so it cannot compute
    # (and so test the existence of) a guessed file's chunk IDs in any other category.
    chunk_id_keys: dict[str, bytes] = field(default_factory=dict)
    # One put-only key set's own secret: what it seals for itself alone (the device backup passwords it set).
    station_key: bytes | None = None

    @classmethod
    def generate(cls, repository_id: str, categories: list[str]) -> KeySet:
        sign_key, verify_key = primitives.generate_signing_key()
        keys = cls(
            kind="full",
            repository_id=repository_id,
            auth_key=primitives.random_key(),
            verify_key=verify_key,
            sign_key=sign_key,
            id_key=primitives.random_key(),
            chunker_key=primitives.random_key(),
            index_key=primitives.random_key(),
            tag_key=primitives.random_key(),
        )
        for space in [*categories, *INTERNAL_SPACES]:
            keys.add_space(space)
        return keys

    def add_space(self, space: str) -> None:
        private, public = primitives.generate_keypair()
        self.private_keys[space] = private
        self.public_keys[space] = public

    # --- keys to try when opening, current generation first ---------------------------
    def index_keys(self) -> list[bytes]:
        current = [self.index_key] if self.index_key is not None else []
        return current + [r.index_key for r in self.retired if r.index_key is not None]

    def private_keys_for(self, space: str) -> list[bytes]:
        current = [self.private_keys[space]] if space in self.private_keys else []
        return current + [r.private_keys[space] for r in self.retired if space in r.private_keys]

    def chunk_id_key(self, space: str) -> bytes | None:
        """The key of `space`'s chunk IDs (dedup is per space, so nothing is lost by keying them apart)."""
        if space not in self.chunk_id_keys and self.id_key is not None:
            self.chunk_id_keys[space] = primitives.hkdf(self.id_key, salt=None, info=b"coffer chunk id v2 " + space.encode())
        return self.chunk_id_keys.get(space)

    @property
    def storage_tag_key(self) -> bytes:
        return self.tag_key if self.tag_key is not None else self.auth_key

    # --- rights -------------------------------------------------------------
    @property
    def can_write(self) -> bool:
        return self.id_key is not None and self.chunker_key is not None and self.index_key is not None

    def can_read(self, space: str) -> bool:
        return space in self.private_keys

    @property
    def is_full(self) -> bool:
        return self.kind == "full"

    def require_write(self) -> None:
        if not self.can_write:
            raise AccessDeniedError("this key cannot add backups to the repository (it is a read-only share)")

    def require_index(self) -> None:
        if self.index_key is None:
            raise AccessDeniedError("this key cannot read the repository index")

    def require_read(self, space: str) -> None:
        if not self.can_read(space):
            what = "snapshot contents" if space in INTERNAL_SPACES else f"the {space!r} category"
            raise AccessDeniedError(f"this key cannot read {what} (put-only or category key)")

    def require_full(self) -> None:
        if not self.is_full or self.sign_key is None:
            raise AccessDeniedError(f"this needs the full key (passphrase or recovery key); a {self.kind} key was given")

    # --- subsets --------------------------------------------------------------
    def put_only(self) -> KeySet:
        self.require_write()
        return KeySet(
            kind="put-only",
            repository_id=self.repository_id,
            auth_key=self.auth_key,
            verify_key=self.verify_key,
            id_key=self.id_key,
            chunker_key=self.chunker_key,
            index_key=self.index_key,
            public_keys=dict(self.public_keys),
            tag_key=self.tag_key,
            station_key=primitives.random_key(),  # each station key file gets its own
        )

    def category_share(self, category: str) -> KeySet:
        self.require_read(category)
        self.require_read(HEADER_SPACE)
        return KeySet(
            kind="category",
            repository_id=self.repository_id,
            auth_key=self.auth_key,
            verify_key=self.verify_key,
            chunk_id_keys={category: self.chunk_id_key(category)},  # type: ignore[dict-item]
            index_key=self.index_key,
            public_keys=dict(self.public_keys),
            private_keys={category: self.private_keys[category], HEADER_SPACE: self.private_keys[HEADER_SPACE]},
            tag_key=self.tag_key,
            retired=[
                RetiredKeys(r.index_key, {k: v for k, v in r.private_keys.items() if k in (category, HEADER_SPACE)})
                for r in self.retired
            ],
        )

    # --- serialisation ----------------------------------------------------------
    def to_bytes(self) -> bytes:
        doc = {
            "kind": self.kind,
            "repository_id": self.repository_id,
            "auth_key": _b64(self.auth_key),
            "verify_key": _b64(self.verify_key),
            "public_keys": {k: _b64(v) for k, v in sorted(self.public_keys.items())},
            "private_keys": {k: _b64(v) for k, v in sorted(self.private_keys.items())},
        }
        for name in ("sign_key", "id_key", "chunker_key", "index_key", "tag_key", "station_key"):
            value = getattr(self, name)
            if value is not None:
                doc[name] = _b64(value)
        if self.kind == "category":
            doc["chunk_id_keys"] = {k: _b64(v) for k, v in sorted(self.chunk_id_keys.items())}
        if self.retired:
            doc["retired"] = [
                {
                    "index_key": _b64(r.index_key) if r.index_key else None,
                    "private_keys": {k: _b64(v) for k, v in sorted(r.private_keys.items())},
                }
                for r in self.retired
            ]
        return json.dumps(doc, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> KeySet:
        doc = json.loads(data.decode("utf-8"))
        return cls(
            kind=doc["kind"],
            repository_id=doc["repository_id"],
            auth_key=_unb64(doc["auth_key"]),
            verify_key=_unb64(doc["verify_key"]),
            sign_key=_unb64(doc["sign_key"]) if "sign_key" in doc else None,
            id_key=_unb64(doc["id_key"]) if "id_key" in doc else None,
            chunker_key=_unb64(doc["chunker_key"]) if "chunker_key" in doc else None,
            index_key=_unb64(doc["index_key"]) if "index_key" in doc else None,
            public_keys={k: _unb64(v) for k, v in doc["public_keys"].items()},
            private_keys={k: _unb64(v) for k, v in doc["private_keys"].items()},
            tag_key=_unb64(doc["tag_key"]) if "tag_key" in doc else None,
            chunk_id_keys={k: _unb64(v) for k, v in doc.get("chunk_id_keys", {}).items()},
            station_key=_unb64(doc["station_key"]) if "station_key" in doc else None,
            retired=[
                RetiredKeys(
                    _unb64(r["index_key"]) if r.get("index_key") else None,
                    {k: _unb64(v) for k, v in r["private_keys"].items()},
                )
                for r in doc.get("retired", [])
            ],
        )
