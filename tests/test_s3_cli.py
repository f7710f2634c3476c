"""The command line against a real S3 server (SeaweedFS), every step through an `s3://` URL: init (which
creates the bucket), import, snapshots, ls, export byte for byte, check --read-data, forget + prune, copy from
a local repository, and the bandwidth limits. No mocks: `coffer` talks HTTP to `weed mini` on loopback."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from conftest import TEST_PASSPHRASE, CofferCli, coffer_cli, sample_library
from ios_helpers import DEVICE, FIXED_DATE, BuiltBackup, assert_same_tree, build_backup
from s3server import SeaweedServer, open_repository, set_pack_sizes

SMALL_PACKS = (256 << 10, 512 << 10)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def bucket_of(cli: CofferCli) -> str:
    return cli.env["COFFER_REPOSITORY"].removeprefix("s3://").split("/")[0]


def data_objects(cli: CofferCli) -> dict[str, int]:
    storage = open_repository(cli).storage
    try:
        return {info.name: info.size for info in storage.list("data/")}
    finally:
        storage.close()


def folder_bytes(built: BuiltBackup) -> int:
    return sum(path.stat().st_size for path in built.path.rglob("*") if path.is_file())


def import_backups(cli: CofferCli, *backups: BuiltBackup) -> list[str]:
    return [cli.inline("--json", "import", built.path).json()["id"] for built in backups]


def test_init_import_list_export_and_check(s3_coffer: CofferCli, s3: SeaweedServer, tmp_path: Path) -> None:
    bucket = bucket_of(s3_coffer)
    document = s3_coffer("--json", "init").json()  # a real process: the AWS_* variables reach boto3
    assert document["location"] == f"s3://{bucket}/repo/"
    assert s3.client.get_bucket_versioning(Bucket=bucket).get("Status") is None, "a plain bucket was created"

    backups = [
        build_backup(tmp_path / name / DEVICE.udid, sample_library(seed))
        for name, seed in (("a", 1), ("b", 2))
    ]
    ids = import_backups(s3_coffer, *backups)
    snapshots = s3_coffer.inline("--json", "snapshots").json()
    assert [s["id"] for s in snapshots] == ids
    assert snapshots[1]["parent"] == ids[0]
    listing = s3_coffer.inline("--json", "ls", "latest").json()
    assert {(i["domain"], i["path"]) for i in listing} == {
        (r.domain, r.relative_path) for r in backups[1].records
    }

    keys = [item["Key"] for item in s3.client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert all(key.startswith("repo/") for key in keys)
    assert {key.split("/")[1] for key in keys} == {"config", "keys", "data", "index", "snapshots"}

    for snapshot_id, built in zip(ids, backups, strict=True):
        target = tmp_path / f"export-{snapshot_id[:8]}"
        s3_coffer.inline("export", snapshot_id, target)
        assert_same_tree(built.path, target)
    check = s3_coffer("--json", "check", "--read-data").json()
    assert check["ok"] and check["snapshots"] == 2 and check["packs_read"] == check["packs"] > 0
    assert check["bytes_read"] == sum(data_objects(s3_coffer).values())


def test_forget_and_prune_reclaim_space(s3_coffer: CofferCli, tmp_path: Path) -> None:
    s3_coffer.inline("init")
    set_pack_sizes(s3_coffer, *SMALL_PACKS)
    old = build_backup(tmp_path / "old" / DEVICE.udid, sample_library(3))
    new = build_backup(tmp_path / "new" / DEVICE.udid, sample_library(4))
    old_id, new_id = import_backups(s3_coffer, old, new)
    before = data_objects(s3_coffer)

    forget = s3_coffer.inline("--json", "forget", "--keep-last", "1").json()
    assert forget["remove"] == [old_id] and forget["keep"] == [new_id]
    marking = s3_coffer.inline("--json", "prune", "--grace", "0").json()
    assert marking["packs_deleted"] == 0 and marking["packs_marked"] > 0
    sweep = s3_coffer("--json", "prune", "--grace", "0").json()
    after = data_objects(s3_coffer)

    forgotten = sum(len(content) for content in old.contents.values())
    reclaimed = sum(before.values()) - sum(after.values())
    print(
        f"\nS3 prune: forgot {forgotten} B of files, reclaimed {reclaimed} B in {sweep['packs_deleted']} packs"
    )
    assert reclaimed >= 0.8 * forgotten
    assert [s["id"] for s in s3_coffer.inline("--json", "snapshots").json()] == [new_id]
    target = tmp_path / "export"
    s3_coffer.inline("export", new_id, target)
    assert_same_tree(new.path, target)
    assert s3_coffer.inline("--json", "check", "--read-data").json()["ok"]


def test_copy_from_a_local_repository(s3_coffer: CofferCli, tmp_path: Path) -> None:
    local = coffer_cli(tmp_path / "local")
    local.inline("init")
    first = build_backup(tmp_path / "first" / DEVICE.udid, sample_library(5), date=FIXED_DATE)
    second = build_backup(tmp_path / "second" / DEVICE.udid, sample_library(6), date=FIXED_DATE + DAY)
    local_ids = import_backups(local, first, second)
    s3_coffer.inline("init")
    # The cloud already holds the first backup's content (a backup made straight to it, an hour earlier):
    # copying the first snapshot must upload none of it again, although the two repositories share no key.
    straight = build_backup(tmp_path / "straight" / DEVICE.udid, sample_library(5), date=FIXED_DATE - HOUR)
    import_backups(s3_coffer, straight)

    source = {"COFFER_FROM_PASSWORD": TEST_PASSPHRASE}
    copied = s3_coffer("--json", "copy", "--from-repo", local.repo, env=source).json()
    assert copied["copied"] == 2 and [s["source_id"] for s in copied["snapshots"]] == local_ids
    second_files = sum(len(content) for content in second.contents.values())
    assert 0.8 * second_files <= copied["new_bytes"] <= folder_bytes(second)
    assert copied["bytes_read"] >= sum(len(c) for b in (first, second) for c in b.contents.values())

    targets = {s["source_id"]: s["target_id"] for s in copied["snapshots"]}
    snapshots = {s["id"]: s for s in s3_coffer.inline("--json", "snapshots").json()}
    assert snapshots[targets[local_ids[1]]]["parent"] == targets[local_ids[0]], "the device's chain is kept"
    for local_id, built in zip(local_ids, (first, second), strict=True):
        target = tmp_path / f"export-{local_id[:8]}"
        s3_coffer.inline("export", targets[local_id], target)
        assert_same_tree(built.path, target)

    again = s3_coffer.inline("--json", "copy", "--from-repo", local.repo, env=source).json()
    assert again["copied"] == 0 and again["skipped"] == 2 and again["uploaded_bytes"] == 0
    assert s3_coffer.inline("--json", "check", "--read-data").json()["ok"]

    missing_secret = s3_coffer.inline("copy", "--from-repo", local.repo, expect=2)
    assert "COFFER_FROM_PASSWORD" in missing_secret.stderr


def test_bandwidth_limits_hold(s3_coffer: CofferCli, tmp_path: Path) -> None:
    s3_coffer.inline("init")
    built = build_backup(tmp_path / "backup" / DEVICE.udid)
    stored = sum(len(content) for content in built.contents.values())  # media is stored raw: about this much
    rate = stored // 2 // 1024 * 1024  # so that each transfer alone needs about two seconds
    upload = s3_coffer.inline("--json", "--limit-upload", f"{rate // 1024}k", "import", built.path)  # units work
    download = s3_coffer.inline("--limit-download", str(rate), "export", "latest", tmp_path / "export")
    uploaded = upload.json()["stored_bytes"]
    print(f"\n{uploaded} B at {rate} B/s: upload {upload.seconds:.2f} s, download {download.seconds:.2f} s")
    assert uploaded >= 0.9 * stored
    assert upload.seconds >= 0.8 * uploaded / rate
    assert download.seconds >= 0.8 * uploaded / rate  # every stored blob is read back once
    assert_same_tree(built.path, tmp_path / "export")
