"""Issue 12, point 2 (and 7: a forgotten snapshot put back): storage alone cannot make a snapshot `latest`.

The attacker is the storage provider, holding no key. On format version 1 (commit da2648b,
reproduced in issue 12) it copied the newest chain record, forged a header one hour later that
reused an older snapshot's parts, and `extract latest` returned the old state while `check
--read-data` passed. In version 2 a snapshot is one object sealed under the index key whose chain
record commits to its pieces, so all the provider can add is bytes that fail authentication,
copies of other repositories' snapshots, or snapshots the owner forgot.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from attacker import backend_coffer, storage_of
from conftest import CofferCli, sample_library, tree_digest
from ios_helpers import build_backup

from agent.repository.snapshot import SNAPSHOT_PREFIX

__all__ = ["backend_coffer"]


def _two_snapshots(coffer: CofferCli, tmp_path: Path) -> list[dict[str, object]]:
    coffer.init()
    build_backup(tmp_path / "old", sample_library(1))
    build_backup(tmp_path / "new", sample_library(2))
    coffer("import", tmp_path / "old")
    coffer("import", tmp_path / "new")
    coffer("export", "latest", tmp_path / "expected")
    return json.loads(coffer("--json", "snapshots").stdout)


def test_provider_cannot_inject_a_latest_snapshot(backend_coffer: CofferCli, tmp_path: Path) -> None:
    coffer = backend_coffer
    genuine = _two_snapshots(coffer, tmp_path)
    storage = storage_of(coffer)
    old_id = str(genuine[0]["id"])
    old_bytes = storage.get(SNAPSHOT_PREFIX + old_id)

    # 1. Bytes of the provider's choosing under a name that matches them: an old snapshot with a
    #    byte changed, and random bytes of a snapshot's size.
    forged = bytearray(old_bytes)
    forged[len(forged) // 2] ^= 1
    for payload in (bytes(forged), os.urandom(len(old_bytes))):
        storage.put(SNAPSHOT_PREFIX + hashlib.sha256(payload).hexdigest(), payload)
    # 2. A genuine snapshot of another repository on the same storage.
    other = CofferCli(tmp_path / "other-repo", dict(coffer.env, COFFER_REPOSITORY=str(tmp_path / "other-repo")))
    other.init()
    other("import", tmp_path / "old")
    foreign = next(iter(storage_of(other).list(SNAPSHOT_PREFIX))).name
    storage.put(foreign, storage_of(other).get(foreign))

    listed = json.loads(coffer("--json", "snapshots").stdout)
    assert [s["id"] for s in listed] == [s["id"] for s in genuine], "an injected object was listed as a snapshot"
    coffer("export", "latest", tmp_path / "got")
    assert tree_digest(tmp_path / "got") == tree_digest(tmp_path / "expected")
    run = coffer("check", expect=4)
    for name in (hashlib.sha256(bytes(forged)).hexdigest(), foreign.removeprefix(SNAPSHOT_PREFIX)):
        assert name[:12] in run.stdout + run.stderr


def test_forgotten_snapshot_put_back_is_never_selected(coffer: CofferCli, tmp_path: Path) -> None:
    """The provider keeps a copy of a snapshot the owner then forgets, and puts it back: it is never listed
    or selected, and `check` notes it (a tombstone names it)."""
    genuine = _two_snapshots(coffer, tmp_path)
    storage = storage_of(coffer)
    older = str(genuine[0]["id"])
    kept = storage.get(SNAPSHOT_PREFIX + older)
    coffer("forget", "--keep-last", "1")
    storage.put(SNAPSHOT_PREFIX + older, kept)

    listed = [s["id"] for s in json.loads(coffer("--json", "snapshots").stdout)]
    assert listed == [genuine[-1]["id"]]
    coffer("export", older[:12], tmp_path / "older-export", expect=2)
    run = coffer("check")
    assert "was forgotten but is still in storage" in run.stdout + run.stderr
