"""Recovery contacts end to end, and rollback detection through the host's snapshot ledger."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import CofferCli
from ios_helpers import build_backup

from agent.repository.snapshot import SNAPSHOT_PREFIX


def _contact(coffer: CofferCli, folder: Path, name: str) -> tuple[Path, str]:
    """A contact on their own machine: a key file and passphrase nobody else has."""
    folder.mkdir(exist_ok=True)
    key = folder / f"{name}.key"
    env = {"COFFER_CONTACT_PASSWORD": f"{name}'s own passphrase", "COFFER_REPOSITORY": None, "COFFER_PASSWORD": None}
    public = coffer("--json", "recovery", "contact-keygen", "--output", key, env=env).json()["public_key"]
    return key, public


@pytest.mark.parametrize("threshold, helpers", [(1, ["bob"]), (2, ["alice", "carol"])])
def test_recovery_by_contacts(coffer: CofferCli, tmp_path: Path, threshold: int, helpers: list[str]) -> None:
    coffer.init()
    contacts = {name: _contact(coffer, tmp_path / name, name) for name in ("alice", "bob", "carol")}
    coffer("recovery", "add-contact", *(public for _, public in contacts.values()), "--threshold", str(threshold))
    build_backup(tmp_path / "backup")
    snapshot = coffer("--json", "import", tmp_path / "backup").json()["id"]

    # The owner forgot the passphrase and lost the recovery key; only the storage is left.
    locked_out = {"COFFER_PASSWORD": None}
    request = tmp_path / "owner" / "request.json"
    request.parent.mkdir()
    code = coffer("--json", "recovery", "request", "--output", request, env=locked_out).json()["code"]
    responses = []
    for name in helpers:
        key, _ = contacts[name]
        response = tmp_path / name / "response.json"
        env = {"COFFER_CONTACT_PASSWORD": f"{name}'s own passphrase", "COFFER_REPOSITORY": None, "COFFER_PASSWORD": None}
        coffer("recovery", "assist", request, "--contact-key", key, "--output", response, "--code", code, env=env)
        responses.append(response)
    if threshold > 1:
        too_few = coffer("recovery", "recover", responses[0], "--request-secret", f"{request}.secret",
                         env={**locked_out, "COFFER_NEW_PASSWORD": "the new passphrase"}, expect=2)
        assert "needed" in too_few.stderr
    coffer("recovery", "recover", *responses, "--request-secret", f"{request}.secret",
           env={**locked_out, "COFFER_NEW_PASSWORD": "the new passphrase"})
    out = tmp_path / "export"
    coffer("export", snapshot, out, env={"COFFER_PASSWORD": "the new passphrase"})
    assert (out / "Manifest.db").read_bytes() == (tmp_path / "backup" / "Manifest.db").read_bytes()


def test_a_contact_alone_cannot_open_anything(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    key, public = _contact(coffer, tmp_path, "mallory")
    coffer("recovery", "add-contact", public)
    request = tmp_path / "request.json"
    code = coffer("--json", "recovery", "request", "--output", request, env={"COFFER_PASSWORD": None}).json()["code"]
    wrong = coffer("recovery", "assist", request, "--contact-key", key, "--output", tmp_path / "r.json", "--code", code,
                   env={"COFFER_CONTACT_PASSWORD": "not the passphrase"}, expect=3)
    assert len(wrong.stderr.strip().splitlines()) == 1
    # The contact's answer is sealed to the owner's request key; without the .secret it opens nothing.
    coffer("recovery", "assist", request, "--contact-key", key, "--output", tmp_path / "r.json", "--code", code,
           env={"COFFER_CONTACT_PASSWORD": "mallory's own passphrase"})
    other = tmp_path / "other.json"
    coffer("recovery", "request", "--output", other, env={"COFFER_PASSWORD": None})
    coffer("recovery", "recover", tmp_path / "r.json", "--request-secret", f"{other}.secret",
           env={"COFFER_PASSWORD": None, "COFFER_NEW_PASSWORD": "whatever-123"}, expect=3)


def test_check_reports_a_deleted_or_rolled_back_newest_snapshot(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    build_backup(tmp_path / "backup")
    first = coffer("--json", "import", tmp_path / "backup").json()["id"]
    newest = coffer("--json", "import", tmp_path / "backup").json()["id"]
    coffer("check")
    repo = coffer.repo / SNAPSHOT_PREFIX
    saved = tmp_path / "saved"
    shutil.copy(repo / newest, saved)

    (repo / newest).unlink()  # the provider drops the newest snapshot
    run = coffer("check", expect=4)
    assert newest[:12] in run.stderr and "deleted or rolled back" in run.stderr

    shutil.copy(repo / first, repo / newest)  # ... or puts an older one in its place
    run = coffer("check", expect=4)
    assert newest[:12] in run.stderr

    shutil.copy(saved, repo / newest)
    coffer("check")
    coffer("forget", "--keep-last", "1")  # forgetting on purpose is not an attack
    coffer("check")
