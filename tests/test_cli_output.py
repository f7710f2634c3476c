"""Output a person reads: counts in the singular when there is one, `-q` silencing notes but not warnings,
and times to the second — through the real `coffer` command on a tiny imported backup."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import CofferCli, coffer_cli
from ios_helpers import Entry, build_backup, directory, symlink

ENTRIES = (
    directory("HomeDomain", "Library"),
    Entry("HomeDomain", "Library/Notes/notes.txt", b"buy milk\n" * 50),
    symlink("HomeDomain", "Library/Links/latest", "../Notes/notes.txt"),
)
# "1 files", "1 snapshots", "1 errors", … anywhere in the text
_WRONG_SINGULAR = re.compile(r"(?<![\d.])1 (file|snapshot|pack|blob|error|device|contact)s\b")


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory) -> tuple[CofferCli, Path]:
    base = tmp_path_factory.mktemp("output")
    cli = coffer_cli(base / "repo")
    cli.init()
    built = build_backup(base / "backup" / "udid", ENTRIES)
    cli.inline("import", built.path)
    return cli, base


def test_one_of_a_kind_is_singular(one: tuple[CofferCli, Path]) -> None:
    cli, base = one
    extract = cli.inline("extract", "latest", base / "out")
    check = cli.inline("check", "--read-data")
    for run in (extract, check):
        assert not _WRONG_SINGULAR.search(run.stdout), run.describe()
    assert "extracted 1 file," in extract.stdout
    assert check.stdout.startswith("1 snapshot, ") and "no errors" in check.stdout, check.stdout


def test_quiet_silences_notes(one: tuple[CofferCli, Path]) -> None:
    cli, base = one
    loud = cli.inline("extract", "latest", base / "loud")
    assert "skipped HomeDomain/Library/Links/latest" in loud.stderr, loud.describe()
    quiet = cli.inline("extract", "-q", "latest", base / "quiet")
    assert quiet.stderr == "" and "extracted 1 file," in quiet.stdout, quiet.describe()


def test_times_have_no_fraction_of_a_second(one: tuple[CofferCli, Path]) -> None:
    cli, _ = one
    snapshot = cli.inline("--json", "snapshots").json()[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", snapshot["time"]), snapshot["time"]
    text = cli.inline("snapshots").stdout
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", text), text
