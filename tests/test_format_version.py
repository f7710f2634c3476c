"""A repository of another format version gets one clear line and exit 1, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CofferCli

from agent.keys import primitives


def _write_config(repo: Path, document: dict[str, object]) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    data = json.dumps(document, sort_keys=True, indent=1).encode()
    (repo / "config").write_bytes(data + primitives.sha256(data))


V1_CONFIG = {
    "config": {
        "version": 1, "repository_id": "ab" * 16, "created": 1.0, "categories": ["photos"],
        "kdf": {"algorithm": "argon2id", "salt": "00" * 16, "memory_kib": 8192, "iterations": 1, "lanes": 1},
        "public_keys": {}, "chunker": {}, "packs": {}, "plain_category_tags": False, "object_lock_days": 0,
        "key_slots": [],
    },
    "mac": "00" * 32,
}


@pytest.mark.parametrize("command", [("snapshots",), ("check",), ("key", "list")])
def test_version_1_repository_is_refused_in_one_line(coffer: CofferCli, command: tuple[str, ...]) -> None:
    _write_config(coffer.repo, V1_CONFIG)
    run = coffer(*command, expect=1)
    assert run.stderr.startswith("coffer: this repository uses format version 1")
    assert len(run.stderr.strip().splitlines()) == 1


def test_newer_version_asks_for_an_upgrade(coffer: CofferCli) -> None:
    _write_config(coffer.repo, {"coffer": 3, "kdf": {}, "slots": [], "body": "", "signature": ""})
    run = coffer("--json", "snapshots", expect=1)
    assert "upgrade Coffer" in json.loads(run.stdout)["error"]["message"]
