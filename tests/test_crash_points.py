"""Kill every maintenance command at every storage write: the repository opens, checks, and a rerun finishes.

One test per operation prepares a small repository, then `crash_harness.Campaign` kills the command
after and before each of its mutating storage calls (see that module for what each crash point
must show). The table of operations × crash points × passed is printed at the end of the run and
written to test-artifacts/crash-table.md.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import TEST_PASSPHRASE, CofferCli, CofferRun, coffer_cli
from crash_harness import Campaign, Operation, Workspace, recovery_env
from ios_helpers import FIXED_DATE, Entry, build_backup, directory

from agent.keys import recovery_key
from agent.keys.slots import KeyFile, Passphrase, RecoveryKey
from agent.repository.repository import Repository
from agent.sim.server import SimServer
from agent.storage.local import LocalStorage

SECOND = "second passphrase"
CHANGED = "changed passphrase"
CONTACT = {"COFFER_CONTACT_PASSWORD": "contact passphrase"}


def library(seed: int) -> tuple[Entry, ...]:
    """A few small files in three categories; the note is the same in every seed, so it deduplicates."""
    rng = random.Random(seed)
    return (
        directory("HomeDomain", ""),
        directory("HomeDomain", "Library"),
        Entry("CameraRollDomain", f"Media/DCIM/100APPLE/IMG_{seed:04d}.HEIC", rng.randbytes(30_000)),
        Entry("HomeDomain", "Library/SMS/sms.db", b"SQLite format 3\x00" + rng.randbytes(12_000)),
        Entry("HomeDomain", "Library/Notes/note.txt", b"the same note in every backup\n" * 300),
    )


def make_cli(root: Path) -> CofferCli:
    return coffer_cli(root / "repo")


def prepared(tmp_path: Path, *steps: Callable[[Workspace], None], cli: Callable[[Path], CofferCli] = make_cli) -> Workspace:
    """A workspace with a repository (`init`, one import of backup A) and the given further steps."""
    root = tmp_path / "template"
    for day, seed in enumerate("ABC"):  # imports are dated by the backup itself: one day each
        build_backup(root / "files" / seed, library(ord(seed)), date=FIXED_DATE + timedelta(days=day))
    ws = Workspace(root, cli(root), {})
    ws.facts["recovery_key"] = ws.cli.init()["recovery_key"]
    ws.cli.inline("import", root / "files" / "A")
    for step in steps:
        step(ws)
    return ws


def imported(name: str) -> Callable[[Workspace], None]:
    def step(ws: Workspace) -> None:
        ws.cli.inline("import", ws.root / "files" / name)

    return step


def forgotten(ws: Workspace) -> None:
    ws.cli.inline("forget", "--keep-last", "1")


def pruned(ws: Workspace) -> None:
    ws.cli.inline("prune", "--grace", "0")


def station_key(ws: Workspace) -> None:
    ws.cli.inline("key", "add", "--put-only", "--output", ws.root / "station.key")


def second_passphrase(ws: Workspace) -> None:
    ws.facts["second"] = ws.cli.inline("--json", "key", "add", env={"COFFER_NEW_PASSWORD": SECOND}).json()["id"]


def contact(ws: Workspace) -> None:
    keygen = ws.cli.inline("--json", "recovery", "contact-keygen", "--output", ws.root / "contact.key", env=CONTACT)
    ws.facts["contact"] = keygen.json()["public_key"]


def contact_slot(ws: Workspace) -> None:
    contact(ws)
    ws.cli.inline("recovery", "add-contact", ws.facts["contact"])


def recovery_request(ws: Workspace) -> None:
    """A locked-out owner's request and one contact's answer, ready for `recovery recover`."""
    contact_slot(ws)
    locked_out = {"COFFER_PASSWORD": None}
    code = ws.cli.inline("--json", "recovery", "request", "--output", ws.root / "request", env=locked_out).json()["code"]
    ws.cli.inline(
        "recovery", "assist", ws.root / "request", "--contact-key", ws.root / "contact.key", "--code", code,
        "--output", ws.root / "response", env=CONTACT,
    )


def run_campaign(operation: Operation, template: Workspace, tmp_path: Path, cli: Callable[[Path], CofferCli] = make_cli) -> None:
    result = Campaign(operation, template, tmp_path / "points", cli).run()
    print(f"\n{operation.name}: {result.writes} writes, {result.passed}/{result.points} crash points passed")
    assert result.points >= 2, f"{operation.name} wrote nothing"
    assert not result.failures, "\n".join(result.failures[:10])


def opens(cli: CofferCli, env: dict[str, str | None]) -> int:
    return cli.inline("snapshots", env=env, expect=None).returncode


def passphrase_and_recovery_key(ws: Workspace) -> list[dict[str, str | None]]:
    return [{}, recovery_env(ws)]


# --- backups -------------------------------------------------------------------------------


def test_import(tmp_path: Path) -> None:
    template = prepared(tmp_path)
    run_campaign(Operation("import", ["import", "{ws}/files/B"]), template, tmp_path)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimServer]:
    with SimServer(tmp_path_factory.mktemp("sim")) as server:
        yield server


def test_usb_backup(tmp_path: Path, sim: SimServer) -> None:
    def usb_cli(root: Path) -> CofferCli:
        cli = coffer_cli(root / "repo")
        cli.env.update({"USBMUXD_SOCKET_ADDRESS": sim.address, "HOME": str(root / "home"),
                        "COFFER_PAIR_RECORDS_DIR": str(root / "pair-records")})
        return cli

    udid = sim.add_device(profile="tiny", seed=77).udid

    def backed_up(ws: Workspace) -> None:
        ws.cli("backup", "--udid", udid)  # a subprocess: it needs the simulator's address
        sim.evolve(udid, 2)  # the backup under test has changes to send

    template = prepared(tmp_path, backed_up, cli=usb_cli)
    operation = Operation(
        "backup (USB)", ["backup", "--udid", udid], inline_rerun=False,
        volatile=("Info.plist", "Status.plist", "Manifest.plist"), modes=("after",),
    )
    run_campaign(operation, template, tmp_path, usb_cli)


# --- retention -----------------------------------------------------------------------------


def test_forget(tmp_path: Path) -> None:
    template = prepared(tmp_path, imported("B"))
    run_campaign(Operation("forget", ["forget", "--keep-last", "1"]), template, tmp_path)


def test_prune(tmp_path: Path) -> None:
    # Packs of A are fossils of an earlier prune (one repacked), B was forgotten since: this prune sweeps and marks.
    template = prepared(tmp_path, imported("B"), forgotten, pruned, imported("C"), forgotten)
    run_campaign(Operation("prune", ["prune", "--grace", "0"]), template, tmp_path)


def test_forget_prune(tmp_path: Path) -> None:
    template = prepared(tmp_path, imported("B"), forgotten, pruned, imported("C"))
    run_campaign(Operation("forget --prune", ["forget", "--keep-last", "1", "--prune", "--grace", "0"]), template, tmp_path)


# --- keys ----------------------------------------------------------------------------------


def test_key_add_passphrase(tmp_path: Path) -> None:
    def finished(ws: Workspace, run: CofferRun) -> None:
        assert opens(ws.cli, {"COFFER_PASSWORD": SECOND}) == 0

    operation = Operation(
        "key add", ["key", "add"], env={"COFFER_NEW_PASSWORD": SECOND}, opens=passphrase_and_recovery_key,
        finished=finished,
    )
    run_campaign(operation, prepared(tmp_path), tmp_path)


def test_key_add_put_only(tmp_path: Path) -> None:
    def finished(ws: Workspace, run: CofferRun) -> None:
        station = Repository.open(LocalStorage(ws.cli.repo), KeyFile(ws.root / "station.key"))
        assert station.keys.kind == "put-only"

    operation = Operation(
        "key add --put-only", ["key", "add", "--put-only", "--output", "{ws}/station.key"],
        opens=passphrase_and_recovery_key, finished=finished,
    )
    run_campaign(operation, prepared(tmp_path), tmp_path)


def test_key_remove(tmp_path: Path) -> None:
    def finished(ws: Workspace, run: CofferRun) -> None:
        assert opens(ws.cli, {"COFFER_PASSWORD": SECOND}) == 3

    def rerun(ws: Workspace, operation: Operation) -> CofferRun:
        listing = ws.cli.inline("--json", "key", "list").json()
        if any(slot["id"] == ws.facts["second"] for slot in listing):
            return ws.cli.inline("key", "remove", ws.facts["second"], expect=None)
        return ws.cli.inline("snapshots", expect=None)  # the slot is gone: the removal had finished

    operation = Operation(
        "key remove", ["key", "remove", "{second}"], opens=passphrase_and_recovery_key, rerun=rerun, finished=finished
    )
    run_campaign(operation, prepared(tmp_path, second_passphrase), tmp_path)


def test_key_passwd(tmp_path: Path) -> None:
    old, new = {"COFFER_PASSWORD": TEST_PASSPHRASE}, {"COFFER_PASSWORD": CHANGED}

    def opened(ws: Workspace) -> list[dict[str, str | None]]:
        # The switch is the config: before it the old passphrase opens, after it the new one, never neither.
        assert sorted([opens(ws.cli, old), opens(ws.cli, new)]) == [0, 3]
        return [recovery_env(ws)]

    def rerun(ws: Workspace, operation: Operation) -> CofferRun:
        if opens(ws.cli, old) == 0:
            return ws.cli.inline("key", "passwd", env={"COFFER_NEW_PASSWORD": CHANGED}, expect=None)
        return ws.cli.inline("snapshots", env=new, expect=None)  # the change had landed: nothing to redo

    def finished(ws: Workspace, run: CofferRun) -> None:
        assert opens(ws.cli, old) == 3

    operation = Operation(
        "key passwd", ["key", "passwd"], env={"COFFER_NEW_PASSWORD": CHANGED}, opens=opened, rerun=rerun,
        finished=finished, secret=Passphrase(CHANGED),
    )
    run_campaign(operation, prepared(tmp_path), tmp_path)


def test_key_rotate(tmp_path: Path) -> None:
    def opened(ws: Workspace) -> list[dict[str, str | None]]:
        # The old recovery key opens until the switch, then is refused as a wrong key — never "damaged".
        assert opens(ws.cli, recovery_env(ws)) in (0, 3)
        return [{}]

    def finished(ws: Workspace, run: CofferRun) -> None:
        new_recovery = run.json()["recovery_key"]
        repository = Repository.open(LocalStorage(ws.cli.repo), RecoveryKey(recovery_key.parse_key(new_recovery)))
        assert len(repository.config.key_slots) == 3  # passphrase, recovery, the contact carried over
        assert opens(ws.cli, recovery_env(ws)) == 3
        assert opens(ws.cli, {"COFFER_KEY_FILE": str(ws.root / "station.key")}) == 3
        check = ws.cli.inline("--json", "check").json()
        assert check["warnings"] == [], "the rerun left leftovers of the interrupted rotation"

    operation = Operation("key rotate", ["--json", "key", "rotate"], opens=opened, finished=finished)
    run_campaign(operation, prepared(tmp_path, imported("B"), station_key, contact_slot), tmp_path)


def test_recovery_add_contact(tmp_path: Path) -> None:
    def finished(ws: Workspace, run: CofferRun) -> None:
        listing = ws.cli.inline("--json", "key", "list").json()
        assert "contact" in {slot["kind"] for slot in listing}

    operation = Operation(
        "recovery add-contact", ["recovery", "add-contact", "{contact}"], opens=passphrase_and_recovery_key,
        finished=finished,
    )
    run_campaign(operation, prepared(tmp_path, contact), tmp_path)


def test_recovery_recover(tmp_path: Path) -> None:
    recovered = "recovered passphrase"

    def finished(ws: Workspace, run: CofferRun) -> None:
        assert opens(ws.cli, {"COFFER_PASSWORD": recovered}) == 0

    operation = Operation(
        "recovery recover",
        ["recovery", "recover", "{ws}/response", "--request-secret", "{ws}/request.secret"],
        env={"COFFER_PASSWORD": None, "COFFER_NEW_PASSWORD": recovered},
        opens=passphrase_and_recovery_key,
        finished=finished,
        secret=Passphrase(recovered),
    )
    run_campaign(operation, prepared(tmp_path, recovery_request), tmp_path)
