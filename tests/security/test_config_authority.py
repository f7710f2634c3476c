"""Issue 12, points 1, 5 and 7: the config's authority is the owner's alone.

Attacks mounted with the attacker's own means only — a stolen put-only station key file or
storage write access — against the real CLI, on the local backend and on SeaweedFS.
Each of them succeeded on format version 1 (commit da2648b, reproduced in issue 12): the
config's MAC key was in every station key set, writers sealed to the public keys the config
named, `unlock` accepted any stored slot, and the KDF parameters were not bounds-checked.
"""

from __future__ import annotations

import json
from pathlib import Path

from attacker import (
    backend_coffer,
    clear_config,
    envelope,
    keys_from_key_file,
    rewrite_clear_config,
    storage_of,
)
from conftest import CofferCli, sample_library
from ios_helpers import build_backup

from agent.keys import primitives
from agent.keys.keyset import KeySet
from agent.repository.config import CONFIG_NAME

__all__ = ["backend_coffer"]  # the fixture, re-exported for pytest


def _object_names(cli: CofferCli) -> set[str]:
    return {info.name for prefix in ("data/", "index/", "snapshots/", "keys/") for info in storage_of(cli).list(prefix)}


def test_stolen_station_key_cannot_redirect_later_backups(backend_coffer: CofferCli, tmp_path: Path) -> None:
    """With station.key and write access, rewrite the config to name the attacker's public keys (the body
    re-sealed with the station's auth key, signed with the attacker's own Ed25519 key). The owner's next
    backup must refuse, write nothing, and `check` must name the config (exit 4)."""
    coffer = backend_coffer
    coffer.init()
    build_backup(tmp_path / "one", sample_library(1))
    coffer("import", tmp_path / "one")
    coffer("key", "add", "--put-only", "--output", tmp_path / "station.key")

    storage = storage_of(coffer)
    stolen = keys_from_key_file(storage, tmp_path / "station.key")
    config = envelope(storage).open(stolen)  # a station may read the config...
    attacker = KeySet.generate(config.repository_id, [s for s in stolen.public_keys if not s.startswith("_")])
    attacker.auth_key = stolen.auth_key  # ...and re-seal it, so every field looks right but the signature
    config.public_keys = dict(attacker.public_keys)
    config.object_lock_days = 0
    config.plain_category_tags = True
    genuine = storage.get(CONFIG_NAME)
    storage.put(CONFIG_NAME, config.encode(attacker), if_absent=False)

    before = _object_names(coffer)
    build_backup(tmp_path / "two", sample_library(2))
    run = coffer("import", tmp_path / "two", expect=4)
    assert "config" in run.stderr and "signed" in run.stderr
    run = coffer("import", tmp_path / "two", env={"COFFER_KEY_FILE": str(tmp_path / "station.key")}, expect=4)
    assert "config" in run.stderr
    assert _object_names(coffer) == before, "something was written under a config the owner did not sign"
    assert "config" in coffer("check", expect=4).stderr

    # The provider puts the genuine config back: everything works, and the new backup is the owner's.
    storage.put(CONFIG_NAME, genuine, if_absent=False)
    coffer("import", tmp_path / "two")
    coffer("check", "--read-data")
    new_packs = _object_names(coffer) - before
    assert new_packs
    for name in new_packs:
        if name.startswith("data/"):
            header = storage.get_range(name, 0, 80)
            for private in attacker.private_keys.values():
                try:
                    primitives.open_sealed(private, header, purpose=b"pack key", associated=name.split("/")[1].encode())
                except primitives.DecryptionError:
                    continue
                raise AssertionError(f"pack {name} opens with an attacker key")


def test_slot_put_back_after_removal_is_refused(coffer: CofferCli, tmp_path: Path) -> None:
    """The provider keeps a copy of a station's slot and puts it back after `key remove`: the station's
    key file must stay revoked (exit 3), because the signed config no longer lists the slot."""
    coffer.init()
    build_backup(tmp_path / "one", sample_library(1))
    coffer("key", "add", "--put-only", "--output", tmp_path / "station.key")
    station = {"COFFER_PASSWORD": None, "COFFER_KEY_FILE": str(tmp_path / "station.key")}
    coffer("import", tmp_path / "one", env=station)
    slot = json.loads((tmp_path / "station.key").read_text())["slot"]
    storage = storage_of(coffer)
    kept = storage.get(slot)

    listed = json.loads(coffer("--json", "key", "list").stdout)
    station_id = next(s["id"] for s in listed if s["kind"] == "put-only")
    coffer("key", "remove", station_id)
    storage.put(slot, kept)  # put back

    run = coffer("import", tmp_path / "one", env=station, expect=3)
    assert "no longer lists" in run.stderr
    run = coffer("check")  # a stray slot is noted, not an error: no key can use it
    assert "not listed by the config" in run.stderr + run.stdout


def test_config_rolled_back_by_the_provider_is_reported(coffer: CofferCli, tmp_path: Path) -> None:
    """The provider keeps the config and the station slot from before a `key remove`, then serves both
    again: the station opens the (validly signed, older) config, but the owner's host, which saw a newer
    generation, reports the rollback in `check` (exit 4)."""
    coffer.init()
    coffer("key", "add", "--put-only", "--output", tmp_path / "station.key")
    storage = storage_of(coffer)
    old_config = storage.get(CONFIG_NAME)
    slot = json.loads((tmp_path / "station.key").read_text())["slot"]
    kept = storage.get(slot)
    coffer("check")
    station_id = next(s["id"] for s in json.loads(coffer("--json", "key", "list").stdout) if s["kind"] == "put-only")
    coffer("key", "remove", station_id)

    storage.put(CONFIG_NAME, old_config, if_absent=False)
    storage.put(slot, kept)
    run = coffer("check", expect=4)
    assert "rolled back" in run.stdout + run.stderr


def test_weakened_kdf_parameters_are_refused(coffer: CofferCli, tmp_path: Path) -> None:
    """The provider lowers the Argon2id memory in the config's clear part (checksum fixed up) so that the
    next passphrase slot would be cheap to guess: every command refuses the config (exit 4) instead."""
    coffer.init()
    storage = storage_of(coffer)
    kdf = dict(clear_config(storage)["kdf"])  # type: ignore[arg-type]
    kdf["memory_kib"] = 1024
    kdf["iterations"] = 1
    rewrite_clear_config(storage, {"kdf": kdf})
    run = coffer("key", "add", env={"COFFER_NEW_PASSWORD": "another passphrase 123"}, expect=4)
    assert "weaker than Coffer accepts" in run.stderr and "config" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
