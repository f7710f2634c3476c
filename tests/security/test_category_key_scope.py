"""Issue 12, point 6: a category key file sees its own category, not the others' sizes or contents.

The attacker holds `photos.key` (a category share) and read access to storage. On format
version 1 (commit da2648b, reproduced in issue 12) it read the per-category statistics of every
category from the snapshot headers and, holding the repository-wide chunk-ID key, confirmed that a
guessed `keychain-backup.plist` existed by computing its chunk ID and finding it in the index. In
version 2 the statistics of each category are sealed to that category's key, and chunk IDs are
keyed per space: the share holds only its own space's ID key.
"""

from __future__ import annotations

import json
from pathlib import Path

from attacker import keys_from_key_file, storage_of
from conftest import CofferCli, sample_library
from ios_helpers import build_backup

from agent.keys import primitives
from agent.keys.slots import KeyFile
from agent.repository.repository import Repository


def test_category_key_learns_only_its_category(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    library = sample_library(1)
    build_backup(tmp_path / "one", library)
    coffer("import", tmp_path / "one")
    coffer("key", "export-category", "photos", "--output", tmp_path / "photos.key")
    full = json.loads(coffer("--json", "snapshots").stdout)[0]["categories"]
    assert len([c for c, s in full.items() if s["files"]]) > 2

    share = {"COFFER_PASSWORD": None, "COFFER_KEY_FILE": str(tmp_path / "photos.key")}
    seen = json.loads(coffer("--json", "snapshots", env=share).stdout)[0]["categories"]
    assert set(seen) == {"photos"}, seen

    # The guessing attack: every stored file's exact bytes are "guessed" right, yet no chunk ID the
    # share can compute for a non-photos space is in the index.
    storage = storage_of(coffer)
    keys = keys_from_key_file(storage, tmp_path / "photos.key")
    assert keys.id_key is None and keys.chunk_id_key("keychain") is None and keys.chunk_id_key("messages") is None
    index = Repository.open(storage, KeyFile(tmp_path / "photos.key")).load_index()
    photo_key = keys.chunk_id_key("photos")
    assert photo_key is not None
    others = [entry for entry in library if entry.content]
    assert others
    hits = {
        space
        for entry in others
        for space in ("keychain", "messages", "health", "apps", "other")
        if index.lookup(space, primitives.chunk_id(photo_key, entry.content or b"")) is not None
    }
    assert not hits, f"a photos share located chunks of {hits}"
    owner = coffer.open()  # the same guesses with the owner's keys do find them: the check can fail
    assert any(
        index.lookup(space, primitives.chunk_id(owner.keys.chunk_id_key(space) or b"", entry.content or b"")) is not None
        for entry in others
        for space in ("keychain", "messages", "health", "apps", "other")
    )
