"""Retention never loses a full backup: `keep-*` rules count complete snapshots per device, a partial snapshot
(`--categories`, an import of a partial export) never pushes a complete one out, every kept snapshot says why,
and `forget` takes IDs, `--udid`, `--keep-within` and `--dry-run`.

The rules are checked as properties over any set of snapshots (hypothesis), then through the real CLI the way
the issue's user met them: a partial export imported back, `forget --keep-daily 7 --keep-weekly 8 --prune`,
and `ls latest --category health` must still list the Health files."""

from __future__ import annotations

import datetime as dt
import plistlib
from pathlib import Path

import pytest
from conftest import CofferCli
from hypothesis import given, settings
from hypothesis import strategies as st
from ios_helpers import PASSWORD, SAMPLE_ENTRIES, Entry, build_backup

from agent.errors import UsageError
from agent.repository.repository import SnapshotEntry
from agent.repository.retention import Duration, RetentionPolicy, plan
from agent.repository.selection import COMPLETE, counted, coverage, udid_of
from agent.repository.snapshot import ChainRecord, SnapshotHeader

HEALTH = Entry("HealthDomain", "Health/healthdb_secure.sqlite", b"SQLite format 3\x00" + b"h" * 5000)
ENTRIES = (*SAMPLE_ENTRIES, HEALTH)
DAY = 86_400.0
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


# --- the rules as properties -----------------------------------------------------------------------------


def entry(number: int, udid: str, time: float, *, complete: bool, partial: bool) -> SnapshotEntry:
    header = SnapshotHeader(
        time=time, device={"udid": udid, "name": udid}, source="import", host="h", info_plist=b"",
        status_plist=b"", manifest_plist=b"", is_encrypted=complete, categories={},
        complete=complete and not partial, partial=partial, role="import", recorded=float(number),
    )
    return SnapshotEntry(f"{number:064x}", header, ChainRecord("tag", None, time))


snapshot_sets = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]),
        st.one_of(  # a few fixed times, so that snapshots of the same moment occur
            st.floats(min_value=1.6e9, max_value=1.6e9 + 400 * DAY, allow_nan=False), st.sampled_from([1.6e9, 1.7e9])
        ),
        st.booleans(),  # complete (device encryption on)
        st.booleans(),  # partial (a chosen subset of categories)
    ),
    max_size=40,
).map(lambda items: [entry(n, *item[:2], complete=item[2], partial=item[3]) for n, item in enumerate(items)])

counts = st.integers(min_value=0, max_value=4)
policies = st.builds(
    RetentionPolicy,
    last=counts, hourly=counts, daily=counts, weekly=counts, monthly=counts, yearly=counts,
    within=st.one_of(st.none(), st.builds(Duration, days=st.integers(1, 60), text=st.just("Nd"))),
    partial=counts,
).filter(lambda policy: not policy.empty)


def devices(entries: list[SnapshotEntry]) -> dict[str, list[SnapshotEntry]]:
    groups: dict[str, list[SnapshotEntry]] = {}
    for item in entries:
        groups.setdefault(udid_of(item), []).append(item)
    return groups


@settings(max_examples=300, deadline=None)
@given(snapshot_sets, policies)
def test_keep_and_forget_partition_every_snapshot_and_only_kept_ones_have_reasons(
    entries: list[SnapshotEntry], policy: RetentionPolicy
) -> None:
    result = plan(entries, policy)
    kept, forgotten = {e.snapshot_id for e in result.keep}, {e.snapshot_id for e in result.forget}
    assert kept | forgotten == {e.snapshot_id for e in entries} and not kept & forgotten
    assert set(result.reasons) == kept and all(result.reasons[sid] for sid in kept)


@settings(max_examples=300, deadline=None)
@given(snapshot_sets, policies)
def test_the_newest_complete_snapshot_of_every_device_is_kept(
    entries: list[SnapshotEntry], policy: RetentionPolicy
) -> None:
    kept = {e.snapshot_id for e in plan(entries, policy).keep}
    for group in devices(entries).values():
        rank, best = counted(group)
        if best:
            newest = max(best, key=lambda e: (e.header.time, e.header.recorded))
            assert newest.snapshot_id in kept, f"newest {'complete' if rank == COMPLETE else 'whole'} one forgotten"


@settings(max_examples=200, deadline=None)
@given(snapshot_sets, st.integers(min_value=1, max_value=5))
def test_keep_last_keeps_that_many_counted_snapshots_even_of_the_same_time(
    entries: list[SnapshotEntry], count: int
) -> None:
    result = plan(entries, RetentionPolicy(last=count))
    for group in devices(entries).values():
        _rank, best = counted(group)
        newest = sorted(best, key=lambda e: (e.header.time, e.header.recorded))[-count:]
        assert all(result.reasons.get(e.snapshot_id) and "last snapshot" in result.reasons[e.snapshot_id]
                   for e in newest)
        assert sum("last snapshot" in result.reasons.get(e.snapshot_id, []) for e in group) == len(newest)


@settings(max_examples=300, deadline=None)
@given(snapshot_sets, st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.floats(1.6e9, 1.6e9 + 400 * DAY)),
                               min_size=1, max_size=10), policies)
def test_no_partial_snapshot_makes_a_complete_one_go(
    entries: list[SnapshotEntry], partials: list[tuple[str, float]], policy: RetentionPolicy
) -> None:
    """Adding partial snapshots changes the fate of no snapshot that is not partial (complete or unencrypted)."""
    added = [entry(1000 + n, udid, time, complete=False, partial=True) for n, (udid, time) in enumerate(partials)]
    whole = {e.snapshot_id for e in entries if not e.header.partial}
    before = {e.snapshot_id for e in plan(entries, policy).forget} & whole
    after = {e.snapshot_id for e in plan(entries + added, policy).forget} & whole
    assert after == before


@settings(max_examples=300, deadline=None)
@given(snapshot_sets, policies)
def test_applying_a_policy_twice_forgets_nothing_more(entries: list[SnapshotEntry], policy: RetentionPolicy) -> None:
    kept = plan(entries, policy).keep
    assert plan(kept, policy).forget == []


@settings(max_examples=200, deadline=None)
@given(snapshot_sets, policies)
def test_a_partial_snapshot_newer_than_every_complete_one_of_its_device_is_kept(
    entries: list[SnapshotEntry], policy: RetentionPolicy
) -> None:
    kept = {e.snapshot_id for e in plan(entries, policy).keep}
    for group in devices(entries).values():
        _rank, best = counted(group)
        newest = max(((e.header.time, e.header.recorded) for e in best), default=(0.0, 0.0))
        for item in group:
            if coverage(item) != COMPLETE and item not in best and (item.header.time, item.header.recorded) > newest:
                assert item.snapshot_id in kept


def test_durations_parse_as_calendar_spans() -> None:
    moment = dt.datetime(2025, 3, 31, 12, tzinfo=dt.UTC)
    assert Duration.parse("1m").before(moment) == dt.datetime(2025, 2, 28, 12, tzinfo=dt.UTC)
    assert Duration.parse("1y2m").before(moment) == dt.datetime(2024, 1, 31, 12, tzinfo=dt.UTC)
    assert Duration.parse("2w").before(moment) == dt.datetime(2025, 3, 17, 12, tzinfo=dt.UTC)
    assert Duration.parse("1d12h").before(moment) == dt.datetime(2025, 3, 30, 0, tzinfo=dt.UTC)
    for bad in ("", "7", "d7", "7x", "0d", "7d-1h"):
        with pytest.raises(UsageError):
            Duration.parse(bad)


# --- through the command line ----------------------------------------------------------------------------


def dated_backup(path: Path, when: dt.datetime, entries: tuple[Entry, ...] = ENTRIES) -> Path:
    """An encrypted backup folder (so complete: Health included) whose Status.plist says it was made `when`."""
    built = build_backup(path, entries, password=PASSWORD)
    status_path = path / "Status.plist"
    status = plistlib.loads(status_path.read_bytes())
    status["Date"] = when.astimezone(dt.UTC).replace(tzinfo=None)
    status_path.write_bytes(plistlib.dumps(status, fmt=plistlib.FMT_BINARY))
    return built.path


@pytest.fixture
def encrypted_repo(coffer: CofferCli, tmp_path: Path) -> tuple[CofferCli, Path]:
    coffer.init()
    password_file = tmp_path / "backup-password"
    password_file.write_text(PASSWORD)
    return coffer, password_file


def test_retention_with_a_partial_snapshot_keeps_the_complete_one(
    encrypted_repo: tuple[CofferCli, Path], tmp_path: Path
) -> None:
    coffer, password_file = encrypted_repo
    older = dated_backup(tmp_path / "older" / "dev", NOW - dt.timedelta(days=3))
    today = dated_backup(tmp_path / "today" / "dev", NOW - dt.timedelta(hours=2))
    for folder in (older, today):
        coffer.inline("import", folder, "--backup-password-file", password_file)
    complete = coffer.inline("--json", "snapshots").json()
    assert [s["complete"] for s in complete] == [True, True]
    # The user's steps from the issue: a partial export, imported back, then retention and prune.
    coffer.inline("export", "latest", tmp_path / "partial", "--categories", "photos,messages")
    imported = coffer.inline("--json", "import", tmp_path / "partial", "--backup-password-file", password_file).json()
    listed = {s["id"]: s for s in coffer.inline("--json", "snapshots").json()}
    assert listed[imported["id"]]["complete"] is False and listed[imported["id"]]["partial"] is True

    document = coffer("--json", "forget", "--keep-daily", "7", "--keep-weekly", "8", "--prune", "--grace", "0").json()
    assert complete[-1]["id"] in document["keep"]
    assert "daily snapshot" in document["reasons"][complete[-1]["id"]]
    assert document["reasons"][imported["id"]] == ["partial, newer than the newest kept complete snapshot"]
    health = coffer("--json", "ls", "latest", "--category", "health").json()
    assert [item["path"] for item in health] == [HEALTH.relative_path]

    # The old behaviour's trap: keep-last 1 would have kept only the (newest) partial snapshot.
    again = coffer("--json", "forget", "--keep-last", "1", "--prune", "--grace", "0").json()
    assert complete[-1]["id"] in again["keep"] and imported["id"] in again["keep"]
    assert again["remove"] == [complete[0]["id"]]
    assert coffer("--json", "ls", "latest", "--category", "health").json()
    assert coffer.inline("--json", "check", "--read-data").json()["ok"]


def test_an_older_partial_snapshot_goes_unless_keep_partial_says_otherwise(
    encrypted_repo: tuple[CofferCli, Path], tmp_path: Path
) -> None:
    coffer, password_file = encrypted_repo
    coffer.inline("import", dated_backup(tmp_path / "a" / "dev", NOW - dt.timedelta(days=3)),
                  "--backup-password-file", password_file)
    coffer.inline("export", "latest", tmp_path / "partial", "--categories", "photos")
    coffer.inline("import", dated_backup(tmp_path / "b" / "dev", NOW - dt.timedelta(days=1)),
                  "--backup-password-file", password_file)
    partial = coffer.inline(  # dated 3 days ago, like the snapshot it came from
        "--json", "import", tmp_path / "partial", "--backup-password-file", password_file
    ).json()["id"]

    dry = coffer("forget", "--keep-last", "1", "--dry-run")
    assert "would remove" in dry.stdout and "dry run: nothing removed" in dry.stdout
    assert "would remove 2 of 3 snapshots" in dry.stdout
    kept = coffer("--json", "forget", "--keep-last", "1", "--keep-partial", "1", "--dry-run").json()
    assert kept["reasons"][partial] == ["partial snapshot (keep-partial)"]
    assert len(coffer.inline("--json", "snapshots").json()) == 3, "a dry run removes nothing"
    removed = coffer("--json", "forget", "--keep-last", "1").json()
    assert partial in removed["remove"] and len(removed["keep"]) == 1


def test_forget_by_id_by_device_and_within_a_span(encrypted_repo: tuple[CofferCli, Path], tmp_path: Path) -> None:
    coffer, password_file = encrypted_repo
    ages = (40, 10, 1)
    for age in ages:
        folder = dated_backup(tmp_path / f"age-{age}" / "dev", NOW - dt.timedelta(days=age))
        coffer.inline("import", folder, "--backup-password-file", password_file)
    ids = [s["id"] for s in coffer.inline("--json", "snapshots").json()]

    within = coffer("--json", "forget", "--udid", "test iphone", "--keep-within", "2w", "--dry-run").json()
    assert within["remove"] == [ids[0]] and within["reasons"][ids[1]] == ["within 2w"]
    text = coffer("forget", "--keep-within", "2w", "--dry-run").stdout
    assert "within 2w" in text and text.count("would remove") == 2  # the row and the summary

    coffer("forget", ids[1][:7], expect=2)  # too short a prefix never names a snapshot
    coffer("forget", ids[1][:8], "--keep-last", "1", expect=2)  # IDs or rules, not both
    coffer("forget", ids[1][:8], "--udid", "00000000-0000000000000000", expect=2)
    named = coffer("--json", "forget", ids[1][:8]).json()
    assert named["remove"] == [ids[1]] and sorted(named["keep"]) == sorted([ids[0], ids[2]])
    assert [s["id"] for s in coffer.inline("--json", "snapshots").json()] == [ids[0], ids[2]]


