"""What an attacker can do with their own means only: the storage (no key), or a stolen key file.

Test helpers for tests/security/: each function takes exactly what its attacker holds — a
`Storage` opened on the repository's location, and for a station or category-key thief the key
file — and uses only public format knowledge (docs/format.md), never the owner's secrets.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from agent.keys import primitives, slots
from agent.keys.keyset import KeySet
from agent.repository.config import CHECKSUM_SIZE, CONFIG_NAME, ConfigEnvelope
from agent.storage.base import Storage
from agent.storage.url import open_storage


def storage_of(cli: object) -> Storage:
    """The repository's storage as its provider sees it: raw objects, no key."""
    return open_storage(cli.env["COFFER_REPOSITORY"])  # type: ignore[attr-defined]


def keys_from_key_file(storage: Storage, key_file: Path) -> KeySet:
    """What a thief of `key_file` holds: the key set its slot wraps."""
    doc = slots.read_key_file(key_file)
    kek = primitives.hkdf(base64.b64decode(str(doc["secret"])), salt=None, info=b"coffer key file v1")
    keys = slots.open_keys(kek, storage.get(str(doc["slot"])))
    assert keys is not None
    return keys


def rewrite_clear_config(storage: Storage, change: dict[str, object]) -> None:
    """The provider edits the config's clear fields and fixes up its checksum (no key needed)."""
    data = storage.get(CONFIG_NAME)
    doc = json.loads(data[:-CHECKSUM_SIZE])
    doc.update(change)
    body = json.dumps(doc, sort_keys=True, indent=1).encode()
    storage.put(CONFIG_NAME, body + primitives.sha256(body), if_absent=False)


def clear_config(storage: Storage) -> dict[str, object]:
    return json.loads(storage.get(CONFIG_NAME)[:-CHECKSUM_SIZE])


def envelope(storage: Storage) -> ConfigEnvelope:
    return ConfigEnvelope.decode(storage.get(CONFIG_NAME))


@pytest.fixture(params=["local", "s3"])
def backend_coffer(request: pytest.FixtureRequest) -> object:
    """`coffer` on a fresh repository, on the local backend and on SeaweedFS."""
    if request.param == "local":
        return request.getfixturevalue("coffer")
    return request.getfixturevalue("s3_coffer")
