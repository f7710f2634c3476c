"""The command-line contract of DESIGN.md section 4: global options anywhere, the `--json` shapes scripts rely
on, and usage errors that exit 2 with one line and never a traceback."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from conftest import CofferCli, coffer_cli
from ios_helpers import DEVICE, SAMPLE_ENTRIES, BuiltBackup, build_backup

from agent.ios.categories import classify


@dataclass
class Contract:
    cli: CofferCli
    base: Path
    backup: BuiltBackup
    init: dict[str, object]
    imports: list[dict[str, object]]


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    base = tmp_path_factory.mktemp("cli")
    cli = coffer_cli(base / "repo")
    document = cli("--json", "init").json()
    backup = build_backup(base / "backup" / DEVICE.udid)
    imports = [cli.inline("--json", "import", backup.path).json() for _ in range(2)]
    return Contract(cli, base, backup, document, imports)


def test_init_prints_the_recovery_key(contract: Contract) -> None:
    assert re.fullmatch(r"([A-Z2-7]{4}-){13}[A-Z2-7]{4}", str(contract.init["recovery_key"]))
    assert contract.init["repository_id"]


def test_global_options_before_or_after_the_command(contract: Contract) -> None:
    repo = str(contract.cli.repo)
    env = {"COFFER_REPOSITORY": None}
    before = contract.cli("--repo", repo, "--json", "snapshots", env=env).json()
    after = contract.cli("snapshots", "--json", "--repo", repo, env=env).json()
    mixed = contract.cli.inline("--json", "snapshots", "--repo", repo, env=env).json()
    assert before == after == mixed and len(before) == 2
    nested = contract.cli.inline("key", "list", "--json", "--repo", repo, env=env).json()
    assert nested == contract.cli.inline("--repo", repo, "--json", "key", "list", env=env).json()


def test_snapshots_shape_oldest_first(contract: Contract) -> None:
    snapshots = contract.cli.inline("--json", "snapshots").json()
    assert [s["id"] for s in snapshots] == [i["id"] for i in contract.imports]
    times = [datetime.fromisoformat(s["time"]) for s in snapshots]
    assert times == sorted(times)
    for snapshot in snapshots:
        assert snapshot["short_id"] == snapshot["id"][:8] and len(snapshot["id"]) == 64
        assert snapshot["device"]["udid"] == DEVICE.udid and snapshot["device"]["name"] == DEVICE.name
        assert {"photos", "messages", "keychain"} <= set(snapshot["categories"])
        assert snapshot["categories"]["photos"]["files"] == 1
    assert snapshots[1]["parent"] == snapshots[0]["id"]


def test_ls_shape(contract: Contract) -> None:
    listing = contract.cli.inline("--json", "ls", "latest").json()
    expected = {
        (r.domain, r.relative_path, classify(r.domain, r.relative_path).value, r.size if r.is_file else 0)
        for r in contract.backup.records
    }
    assert {(i["domain"], i["path"], i["category"], i["size"]) for i in listing} == expected
    assert len(listing) == len(SAMPLE_ENTRIES)
    only_photos = contract.cli.inline(
        "--json", "ls", contract.imports[0]["id"][:8], "--category", "photos"
    ).json()
    assert {i["category"] for i in only_photos} == {"photos"}


def test_key_list_shape(contract: Contract) -> None:
    listing = contract.cli.inline("--json", "key", "list").json()
    assert sorted(slot["kind"] for slot in listing) == ["passphrase", "recovery"]
    assert all(slot["id"] and "created" in slot for slot in listing)


def test_import_shape(contract: Contract) -> None:
    first, second = contract.imports
    assert first["device"]["udid"] == DEVICE.udid
    assert first["reused_bytes"] == 0 and second["new_bytes"] == 0
    assert second["reused_bytes"] == second["bytes"] == first["bytes"] > 0


@pytest.mark.parametrize("share", ["1/1", "100%", "1/5", "20%"])
def test_read_data_subset_as_a_fraction_or_a_percentage(contract: Contract, share: str) -> None:
    report = contract.cli.inline("--json", "check", "--read-data-subset", share).json()
    whole = share in ("1/1", "100%")
    expected = report["packs"] if whole else max(1, round(report["packs"] / 5))
    assert report["ok"] and report["packs_read"] == expected > 0


USAGE_ERRORS = [
    [],
    ["frobnicate"],
    ["export"],
    ["export", "latest"],
    ["export", "latest", "{base}/out", "--categories", "photos,nonsense"],
    ["export", "latest", "{base}/backup"],  # not an empty folder
    ["export", "no-such-snapshot", "{base}/out"],
    ["ls", "no-such-snapshot"],
    ["ls", "latest", "--category", "nonsense"],
    ["check", "--read-data-subset", "abc"],
    ["check", "--read-data-subset", "150%"],
    ["check", "--read-data-subset", "1/0"],
    ["check", "--read-data-subset", "6/5"],
    ["check", "--read-data", "--read-data-subset", "10%"],
    ["forget"],
    ["forget", "--keep-last", "-1"],  # would keep nothing
    ["forget", "--keep-daily", "two"],
    ["prune", "--grace", "soon"],
    ["import", "{base}/no-such-folder"],
    ["init"],  # exists already
    ["key", "remove", "ffffffffffff"],
    ["key", "add", "--output", "{base}/x.key"],
    ["snapshots", "--limit-upload", "fast"],
    ["snapshots", "--limit-download", "0"],
    ["--repo", "ftp://example.com/repo", "snapshots"],
    ["--repo", "{base}/empty-folder", "snapshots"],
    ["--repo", "{base}/backup", "snapshots"],  # a folder, but no repository
]


@pytest.mark.parametrize("arguments", USAGE_ERRORS, ids=lambda a: " ".join(a) or "(nothing)")
def test_usage_errors_exit_2_with_one_line(contract: Contract, arguments: list[str]) -> None:
    argv = [a.format(base=contract.base) for a in arguments]
    run = contract.cli.inline(*argv, expect=2)
    assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("coffer: "), run.describe()
    assert run.stdout == ""


def test_usage_error_through_the_command(contract: Contract) -> None:
    run = contract.cli("frobnicate", "--json", expect=2)
    assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("coffer: ")
    assert run.json() == {"error": {"message": run.stderr.removeprefix("coffer: ").strip(), "exit_code": 2}}


@pytest.mark.parametrize("command", ["export", "extract"])
def test_a_target_that_cannot_be_a_folder_is_a_plain_failure(contract: Contract, command: str) -> None:
    run = contract.cli.inline(command, "latest", "/dev/null/out", expect=1)
    assert run.stderr.splitlines() == ["coffer: cannot create the folder /dev/null/out: Not a directory"]
