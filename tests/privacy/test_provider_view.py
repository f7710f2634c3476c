"""What the storage provider sees, measured by `coffer debug storage-view` with no key (issue 17).

A demo-like repository is built once per backend (a local folder, and S3 on SeaweedFS): an
import of a backup folder with a dozen categories into a fresh repository, a second import of
the same device after a day of changes to two categories, a USB backup of a second (simulated)
device by a put-only station key, and a recovery contact. A second, small repository holds the
lease of a backup killed midway, the way a crashed writer leaves it.

Two kinds of tests:
* the scanner's own correctness (these pass on any format): it finds and classifies every object,
  counts packs per category tag, tells which tags each backup touched, flags a planted clear-JSON
  object and a planted tiny one, computes Padmé classes, and its randomness tests neither cry wolf
  on random bytes nor miss structure;
* one test per goal of the issue, asserting on the scanner's JSON, so a repository whose objects
  still vary with their content fails. Each of them failed on format 1 (commit da2648b, run with
  `--runxfail` while they were marked strict-xfail) and passes on format 2.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import CofferCli, coffer_cli
from ios_helpers import DEVICE, Entry, build_backup
from s3server import _AWS_VARIABLES_TO_CLEAR, SeaweedServer, open_repository

from agent.storage.provider_view import ObjectView, measure, on_padme_class, padme
from agent.storage.url import open_storage

BACKENDS = ["local", "s3"]
KDF_FIELD_WORDS = ("kdf", "salt", "memory", "iterations", "lanes", "algorithm", "params", "parallelism")
VERSION_FIELDS = {"v", "version", "coffer", "format"}


def library(seed: int, changed: bool = False) -> tuple[Entry, ...]:
    """A dozen categories with two small files each (so each category gets a pack or two) and a few photos;
    `changed` is the same phone a day later: a new photo and a changed message database, nothing else."""
    rng = random.Random(seed)
    small = {
        "messages": ("HomeDomain", "Library/SMS"),
        "contacts": ("HomeDomain", "Library/AddressBook"),
        "calendars": ("HomeDomain", "Library/Calendar"),
        "reminders": ("HomeDomain", "Library/Reminders"),
        "mail": ("HomeDomain", "Library/Mail"),
        "call_history": ("HomeDomain", "Library/CallHistory"),
        "safari": ("HomeDomain", "Library/Safari"),
        "settings": ("HomeDomain", "Library/Preferences"),
        "notes": ("AppDomainGroup-group.com.apple.notes", "Notes"),
        "apps": ("AppDomain-com.example.chat", "Documents"),
        "keychain": ("KeychainDomain", "Keychain"),
    }
    entries = [
        Entry(domain, f"{folder}/{name}.bin", rng.randbytes(rng.randint(3_000, 40_000)))
        for domain, folder in small.values()
        for name in ("first", "second")
    ]
    photos = 4 + changed
    entries += [
        Entry("CameraRollDomain", f"Media/DCIM/100APPLE/IMG_{n:04d}.HEIC", rng.randbytes(rng.randint(200_000, 600_000)))
        for n in range(photos)
    ]
    if changed:
        entries = [
            Entry(e.domain, e.relative_path, os.urandom(len(e.content or b"")))
            if e.relative_path == "Library/SMS/first.bin" else e
            for e in entries
        ]
    return tuple(entries)


@dataclass
class Scanned:
    """A repository, the `coffer` runner on it, and what the keyless scanner reported."""

    cli: CofferCli
    backend: str
    view: dict[str, Any]
    snapshots: list[dict[str, Any]]  # those left, oldest write first
    tags: dict[str, str]
    written: dict[str, Any] | None = None  # the scan before `forget` and `prune`
    written_order: tuple[str, ...] = ()  # the IDs of every snapshot written, in that order

    def objects(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.view["objects"] if kind is None or o["kind"] == kind]


def scan(cli: CofferCli) -> dict[str, Any]:
    """`coffer --json debug storage-view` with no passphrase or key file in reach."""
    return cli("--json", "debug", "storage-view", env={"COFFER_PASSWORD": None}).json()


def _runner(root: Path, backend: str, request: pytest.FixtureRequest) -> CofferCli:
    cli = coffer_cli(root / "repo")
    if backend == "s3":
        server: SeaweedServer = request.getfixturevalue("s3_server")
        for name in _AWS_VARIABLES_TO_CLEAR:
            cli.env.pop(name, None)
        cli.env.update(server.env())
        cli.env["COFFER_REPOSITORY"] = f"s3://{server.bucket_name()}/repo"
    return cli


def _next_second(backend: str) -> None:
    """S3 keeps modification times to the second: let each backup start in a second of its own."""
    if backend == "s3":
        time.sleep(1.1)


@pytest.fixture(scope="module", params=BACKENDS)
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scanned]:
    from agent.sim.server import SimServer

    root = tmp_path_factory.mktemp(f"demo-{request.param}")
    cli = _runner(root, request.param, request)
    cli("init")
    order = [cli("--json", "import", build_backup(root / "day1" / DEVICE.udid, library(1)).path).json()["id"]]
    _next_second(request.param)
    order.append(cli("--json", "import", build_backup(root / "day2" / DEVICE.udid, library(1, changed=True)).path).json()["id"])
    cli("key", "add", "--put-only", "--output", root / "station.key", "--label", "Kiosk Station 7")
    contact = {"COFFER_CONTACT_PASSWORD": "bob's own passphrase", "COFFER_REPOSITORY": None, "COFFER_PASSWORD": None}
    public = cli("--json", "recovery", "contact-keygen", "--output", root / "bob.key", env=contact).json()["public_key"]
    cli("recovery", "add-contact", public)
    _next_second(request.param)
    with SimServer(root / "sim") as sim:
        udid = sim.add_device(profile="tiny", seed=17, name="Second iPhone").udid
        usb = {"USBMUXD_SOCKET_ADDRESS": sim.address, "HOME": str(root / "home"),
               "COFFER_PAIR_RECORDS_DIR": str(root / "pair-records"), "COFFER_PASSWORD": None}
        order.append(cli("--json", "--key-file", root / "station.key", "backup", "--udid", udid, env=usb).json()["snapshot"])
    written = scan(cli)
    _next_second(request.param)
    cli("forget", "--keep-last", "1", "--prune")  # the first import goes: a tombstone, fossils, a new index
    by_id = {s["id"]: s for s in cli("--json", "snapshots").json()}
    snapshots = [by_id[snapshot_id] for snapshot_id in order if snapshot_id in by_id]
    assert len(snapshots) == 2 and len({s["device"]["udid"] for s in snapshots}) == 2
    yield Scanned(cli, request.param, scan(cli), snapshots, cli("--json", "tags").json(), written, tuple(order))


@pytest.fixture(scope="module", params=BACKENDS)
def leased(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Scanned:
    """A repository with the lease a backup leaves when it is killed while it runs."""
    root = tmp_path_factory.mktemp(f"leased-{request.param}")
    cli = _runner(root, request.param, request)
    cli("init")
    videos = tuple(Entry("CameraRollDomain", f"Media/DCIM/100APPLE/IMG_{n:04d}.MOV", os.urandom(2 << 20)) for n in range(8))
    folder = build_backup(root / "backup" / DEVICE.udid, library(2) + videos).path  # seconds of work to kill it in
    with pytest.MonkeyPatch.context() as patch:
        for name, value in cli.env.items():
            if name.startswith("AWS_"):
                patch.setenv(name, value)
        storage = open_storage(cli.env["COFFER_REPOSITORY"])
        process = cli.start("import", folder)
        try:
            deadline = time.monotonic() + 60
            while not any(storage.list("locks/")):
                assert process.poll() is None and time.monotonic() < deadline, "the import ended before its lease was seen"
                time.sleep(0.005)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        storage.close()
    return Scanned(cli, request.param, scan(cli), [], cli("--json", "tags").json())


# --- the scanner is right ----------------------------------------------------------------------


def test_scanner_finds_and_classifies_every_object(demo: Scanned) -> None:
    kinds = demo.view["kinds"]
    assert kinds["config"]["count"] == 1
    assert kinds["snapshots"]["count"] == len(demo.snapshots)
    assert kinds["keys"]["count"] == len(demo.cli("--json", "key", "list").json())
    assert kinds["tombstones"]["count"] >= 1 and kinds["fossils"]["count"] >= 1
    assert "other" not in kinds and "locks" not in kinds
    with pytest.MonkeyPatch.context() as patch:
        for name, value in demo.cli.env.items():
            if name.startswith("AWS_"):
                patch.setenv(name, value)
        storage = open_storage(demo.cli.env["COFFER_REPOSITORY"])
        listed = {info.name: info.size for info in storage.list()}
        storage.close()
    assert {o["name"]: o["size"] for o in demo.objects()} == listed
    assert demo.view["totals"]["count"] == len(listed) == sum(k["count"] for k in kinds.values())
    assert demo.view["totals"]["unreadable"] == []


def test_scanner_counts_packs_per_category_tag(demo: Scanned) -> None:
    packs = Counter(o["name"].split("/")[1] for o in demo.objects("data"))
    assert {tag: t["packs"] for tag, t in demo.view["tags"].items()} == dict(packs)
    assert set(packs) <= set(demo.tags.values())
    for category in ("photos", "messages", "contacts", "keychain", "apps"):
        assert packs[demo.tags[category]] >= 1, category
    assert not set(packs) & set(demo.tags), "tags are opaque, not category names"


def test_bursts_show_which_tags_each_backup_touched(demo: Scanned) -> None:
    """The residual leak that stays in format 2: which categories received new packs in each backup."""
    assert demo.written is not None
    bursts = demo.written["bursts"]
    assert [b["snapshot"] for b in bursts] == [f"snapshots/{snapshot_id}" for snapshot_id in demo.written_order]
    first, second, _device2 = (set(b["tags"]) for b in bursts)
    assert {demo.tags[c] for c in ("photos", "messages", "contacts", "notes", "keychain")} <= first
    assert {demo.tags["photos"], demo.tags["messages"]} <= second
    unchanged = {demo.tags[c] for c in ("contacts", "calendars", "reminders", "mail", "notes", "settings", "apps", "keychain")}
    assert not second & unchanged


def test_s3_object_tags_are_what_the_provider_reads(demo: Scanned) -> None:
    if demo.backend != "s3":
        pytest.skip("a local folder has no object tags")
    for pack in demo.objects("data"):
        assert pack["metadata"]["tags"] == {"coffer-category": pack["tag"]}
    assert demo.view["kinds"]["data"]["metadata"]["tags.coffer-category"]["distinct"] == len(demo.view["tags"])


def test_scanner_flags_a_planted_clear_json_object_and_a_tiny_one(demo: Scanned, tmp_path: Path) -> None:
    if demo.backend != "local":
        pytest.skip("planting needs only one backend")
    copy = tmp_path / "copy"
    shutil.copytree(demo.cli.repo, copy)
    tag = next(iter(demo.view["tags"]))
    planted = json.dumps({"device": "Alice's iPhone", "files": [f"IMG_{n:04d}.HEIC" for n in range(40)]}).encode()
    assert len(planted) > 512
    (copy / "extra").mkdir()
    (copy / "extra" / "note.json").write_bytes(planted)
    (copy / "data" / tag / "tiny").write_bytes(os.urandom(17))  # 17: not a Padmé class
    damaged = copy / "snapshots" / demo.snapshots[0]["id"]
    damaged.write_bytes(damaged.read_bytes()[:100])  # truncated, no longer parses: still counted
    view = demo.cli("--json", "--repo", copy, "debug", "storage-view", env={"COFFER_PASSWORD": None}).json()
    other = view["kinds"]["other"]
    assert other["count"] == 1 and other["clear_json"] == ["extra/note.json"]
    assert other["plain_fields"]["device"]["values"] == ["Alice's iPhone"]
    assert view["totals"]["smallest"] == {"name": f"data/{tag}/tiny", "size": 17}
    assert view["tags"][tag]["packs"] == demo.view["tags"][tag]["packs"] + 1
    tiny = next(o for o in view["objects"] if o["name"] == f"data/{tag}/tiny")
    assert tiny["looks_random"] is None and not tiny["on_padme_class"]
    assert view["kinds"]["snapshots"]["count"] == len(demo.snapshots)
    text = demo.cli("--repo", copy, "debug", "storage-view", env={"COFFER_PASSWORD": None}).stdout
    assert "extra/note.json" in text and "anything else" in text and f"data/{tag}/tiny (17 B)" in text


def test_storage_view_of_a_missing_folder_is_one_line(coffer: CofferCli, tmp_path: Path) -> None:
    run = coffer("debug", "storage-view", "--repo", tmp_path / "nothing", expect=1)
    assert run.stderr.startswith("coffer: ") and run.stderr.count("\n") == 1 and "nothing" in run.stderr


@pytest.mark.parametrize(
    "length, padded",
    [(0, 0), (1, 1), (9, 10), (100, 104), (120, 120), (512, 512), (513, 544), (1000, 1024),
     (4646, 4864), ((1 << 24) + 1, (1 << 24) + (1 << 19))],
)
def test_padme_classes_of_known_sizes(length: int, padded: int) -> None:
    assert padme(length) == padded
    assert on_padme_class(padded) and (padded == length or not on_padme_class(length))


def test_padme_overhead_is_at_most_12_percent() -> None:
    rng = random.Random(3)
    for length in [rng.randint(2, 1 << 32) for _ in range(5000)] + list(range(2, 5000)):
        padded = padme(length)
        assert length <= padded <= length * 1.12 and padme(padded) == padded


def _verdict(data: bytes) -> ObjectView:
    view = ObjectView("x", "other", None, len(data), 0.0)
    measure(view, [data], True)
    return view


def test_random_bytes_are_never_flagged() -> None:
    rng = random.Random(11)
    for size in [512] * 150 + [rng.randint(513, 200_000) for _ in range(150)]:
        view = _verdict(rng.randbytes(size))
        assert view.looks_random is True, (size, view.findings)
    assert _verdict(rng.randbytes(100)).looks_random is None  # too small to tell


@pytest.mark.parametrize(
    "name, data, test",
    [
        ("JSON envelope", json.dumps({"v": 1, "chain": "QUJD" * 40, "parts": {"a1b2c3d4e5f60718": "QUJD" * 100}}).encode(), "json"),
        ("lease", json.dumps({"start": 1.7e9, "expires": 1.7e9 + 1800}).encode(), "json"),
        ("base64 text", __import__("base64").b64encode(random.Random(1).randbytes(3000)), "printable"),
        ("zero padding", random.Random(2).randbytes(4000) + bytes(64), "zeros"),
        ("low-entropy bytes", bytes(random.Random(3).choice(range(16)) for _ in range(4096)), "chi_square"),
        ("repeated block", random.Random(4).randbytes(300) * 3, "compressible"),
    ],
)
def test_structure_is_flagged(name: str, data: bytes, test: str) -> None:
    view = _verdict(data)
    assert view.looks_random is False and test in {f["test"] for f in view.findings}, (name, view.findings)


# --- the goals of issue 17 (format 2) -------------------------------------------------------------


def _is_kdf_field(path: str) -> bool:
    return path in VERSION_FIELDS or any(word in path.lower() for word in KDF_FIELD_WORDS)


def _kdf_only_slot(slot: dict[str, Any]) -> bool:
    """A slot that is JSON holding only what the KDF needs before unlocking (salt, parameters) and sealed blobs."""
    return slot["clear_json"] and all(
        _is_kdf_field(path) for path, found in slot["fields"].items() if found["type"] != "blob"
    )


def test_goal_every_object_is_padded(demo: Scanned) -> None:
    unpadded = [(o["name"], o["size"]) for o in demo.objects() if not o["on_padme_class"]]
    assert unpadded == []


def test_goal_no_object_but_config_is_smaller_than_512_bytes(demo: Scanned) -> None:
    small = [(o["name"], o["size"]) for o in demo.objects() if o["kind"] != "config" and o["size"] < 512]
    assert small == []


def test_goal_every_object_but_config_and_kdf_fields_looks_random(demo: Scanned) -> None:
    structured = [
        (o["name"], o["findings"][:1])
        for o in demo.objects()
        if o["kind"] != "config" and o["looks_random"] is not True and not (o["kind"] == "keys" and _kdf_only_slot(o))
    ]
    assert structured == []


def test_goal_no_per_category_snapshot_parts_or_sizes(demo: Scanned) -> None:
    for snapshot in demo.view["snapshots"]:
        assert snapshot["visible_lengths"] == {}, snapshot["name"]
    assert demo.view["kinds"]["snapshots"]["plain_fields"] == {}
    assert all(o["looks_random"] is True for o in demo.objects("snapshots"))


def test_goal_a_snapshot_is_one_sealed_padded_object_whatever_its_categories(demo: Scanned) -> None:
    categories = {len([c for c, s in snap["categories"].items() if s["files"]]) for snap in demo.snapshots}
    assert len(categories) > 1, "the snapshots differ in their number of categories"
    objects = demo.objects("snapshots")
    assert len(objects) % len(demo.snapshots) == 0
    for snapshot in objects:
        assert snapshot["looks_random"] is True and snapshot["on_padme_class"] and snapshot["fields"] == {}, snapshot


def test_goal_chain_records_have_a_fixed_width(demo: Scanned) -> None:
    """A device's first snapshot (no previous one) must look like any other: no visible length varies."""
    varying = {path: lengths for path, lengths in demo.view["kinds"]["snapshots"]["visible_lengths"].items() if len(lengths) > 1}
    assert varying == {}
    assert all(o["looks_random"] is True for o in demo.objects("snapshots"))


def test_goal_slot_kind_time_threshold_and_contact_keys_are_sealed(demo: Scanned) -> None:
    kinds = demo.cli("--json", "key", "list").json()
    assert {"passphrase", "recovery", "put-only", "contact"} <= {k["kind"] for k in kinds}
    slot_objects = sorted(o["name"] for o in demo.objects("keys"))
    for kind in ("keys", "config"):
        plain = demo.view["kinds"][kind]["plain_fields"]
        # The config may also show the slot names (the scanner records a list by its length), which the
        # listing shows anyway, and its zero padding.
        allowed = {"slots": [len(slot_objects)], "pad": None} if kind == "config" else {}
        leaks = [p for p in plain if not _is_kdf_field(p) and p not in allowed]
        assert leaks == [], kind
        assert all(allowed[p] is None or plain[p]["values"] == allowed[p] for p in plain if p in allowed), plain
        assert not any(v in ("passphrase", "recovery", "put-only", "contact") for e in plain.values() for v in e["values"])
    # No key, contact key or identifier in clear: the config's only blobs are the KDF salt and sealed or
    # signed bytes, never the 32-byte public keys or a 16-byte repository ID.
    short = [p for p, lengths in demo.view["kinds"]["config"]["visible_lengths"].items() if not _is_kdf_field(p) and min(lengths) < 64]
    assert short == []


def test_goal_no_empty_packs(demo: Scanned) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in demo.cli.env.items():
            if name.startswith(("AWS_", "COFFER_")):
                patch.setenv(name, value)
        repository = open_repository(demo.cli)
        blobs = {record.pack_id: len(record.blobs) for record in repository.load_index().packs()}
        repository.storage.close()
    empty = [o["name"] for o in demo.objects("data") if blobs.get(o["name"].rsplit("/", 1)[-1], 0) == 0]
    assert empty == []
    assert all(o["size"] >= 512 for o in demo.objects("data"))


def test_category_tags_are_unlinkable_across_repositories(demo: Scanned, coffer: CofferCli) -> None:
    coffer.init()
    other = coffer("--json", "tags").json()
    assert other.keys() == demo.tags.keys() and len(set(demo.tags.values())) == len(demo.tags)
    assert not set(demo.tags.values()) & set(other.values())


def test_goal_leases_reveal_only_that_a_writer_is_active(leased: Scanned) -> None:
    leases = leased.objects("locks")
    assert leases, "the killed backup left its lease"
    for lease in leases:
        assert lease["fields"] == {} and lease["looks_random"] is True, lease
        assert lease["on_padme_class"] and lease["size"] >= 512, lease
