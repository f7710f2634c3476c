"""Immutability with S3 Object Lock on a real server (SeaweedFS): `init --object-lock-days` creates the locked
bucket or refuses clearly; a locked pack version cannot be removed through the backend; prune never tries,
hides what it no longer needs behind delete markers, extends the retention of everything still referenced,
frees hidden objects once their retention ends, and leaves alone what someone else deleted."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from conftest import CofferCli, coffer_cli, sample_library
from ios_helpers import DEVICE, assert_same_tree, build_backup
from s3server import SeaweedServer, open_repository, set_pack_sizes

from agent.repository.prune import prune
from agent.storage.base import ObjectLockedError


def bucket_of(cli: CofferCli) -> str:
    return cli.env["COFFER_REPOSITORY"].removeprefix("s3://").split("/")[0]


def versions(s3: SeaweedServer, bucket: str, key: str) -> tuple[list[str], list[str]]:
    """(data version IDs, delete marker IDs) of exactly `key`."""
    page = s3.client.list_object_versions(Bucket=bucket, Prefix=key)
    return (
        [v["VersionId"] for v in page.get("Versions", []) if v["Key"] == key],
        [m["VersionId"] for m in page.get("DeleteMarkers", []) if m["Key"] == key],
    )


def expire_soon(s3: SeaweedServer, bucket: str, key: str) -> None:
    """Let the retention of every version of `key` end in a second (an administrator's governance bypass;
    for the test it stands for the days passing)."""
    soon = datetime.now(UTC) + timedelta(seconds=1)
    for version_id in versions(s3, bucket, key)[0]:
        s3.client.put_object_retention(
            Bucket=bucket,
            Key=key,
            VersionId=version_id,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": soon},
            BypassGovernanceRetention=True,
        )


def test_init_creates_an_object_lock_bucket_or_refuses(
    s3_coffer: CofferCli, s3: SeaweedServer, tmp_path: Path
) -> None:
    local = coffer_cli(tmp_path / "local").inline("init", "--object-lock-days", "7", expect=2)
    assert "Object Lock needs an s3:// repository" in local.stderr

    plain = s3.create_bucket()
    refused = s3_coffer.inline(
        "init", "--object-lock-days", "7", env={"COFFER_REPOSITORY": f"s3://{plain}/repo"}, expect=1
    )
    assert "exists without Object Lock, which cannot be enabled later" in refused.stderr
    assert s3.client.list_objects_v2(Bucket=plain)["KeyCount"] == 0, "nothing was written"

    s3_coffer("init", "--object-lock-days", "7")
    bucket = bucket_of(s3_coffer)
    configuration = s3.client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert configuration["ObjectLockEnabled"] == "Enabled"
    retention = s3.client.get_object_retention(Bucket=bucket, Key="repo/config")["Retention"]
    assert retention["RetainUntilDate"] > datetime.now(UTC) + timedelta(days=6)


def test_prune_copes_with_object_lock(s3_coffer: CofferCli, s3: SeaweedServer, tmp_path: Path) -> None:
    s3_coffer.inline("init", "--object-lock-days", "1")
    set_pack_sizes(s3_coffer, 256 << 10, 512 << 10)
    bucket = bucket_of(s3_coffer)
    old = build_backup(tmp_path / "old" / DEVICE.udid, sample_library(11))
    new = build_backup(tmp_path / "new" / DEVICE.udid, sample_library(12))
    old_id = s3_coffer.inline("--json", "import", old.path).json()["id"]
    new_id = s3_coffer.inline("--json", "import", new.path).json()["id"]

    repository = open_repository(s3_coffer)
    storage = repository.storage
    packs = sorted(info.name for info in storage.list("data/"))
    before = {name: storage.retained_until(name) for name in packs}
    assert all(
        until is not None and until > datetime.now(UTC) + timedelta(hours=23) for until in before.values()
    )

    # The backend cannot remove a locked pack version: a delete only adds a marker, the version stays.
    with pytest.raises(ObjectLockedError, match="is locked"):
        storage.purge(packs[0])
    (version_id,), _ = versions(s3, bucket, f"repo/{packs[0]}")
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.client.delete_object(Bucket=bucket, Key=f"repo/{packs[0]}", VersionId=version_id)
    assert storage.get(packs[0])

    s3_coffer.inline("forget", "--keep-last", "1")
    s3_coffer.inline("prune", "--grace", "0")  # marks the forgotten snapshot's packs
    time.sleep(1.1)  # so that "one day from now" is later than each put's own retention date
    report = prune(repository, grace_seconds=0)
    print(f"\nprune under Object Lock: {report}")
    listed = {info.name for info in storage.list("data/")}
    hidden_sizes = {info.name: info.size for info in storage.hidden("data/")}
    hidden = set(hidden_sizes)
    assert report.packs_deleted > 0 and report.bytes_deleted == 0, "nothing could be freed yet"
    assert report.objects_locked >= report.packs_deleted
    assert hidden and not hidden & listed and hidden <= set(packs)
    assert any("Object Lock" in note for note in report.notes)
    for name in hidden:
        data_versions, markers = versions(s3, bucket, f"repo/{name}")
        assert len(data_versions) == 1 and len(markers) == 1, "the locked version stays, hidden"
    extended = [name for name in listed if name in before]
    assert extended and all(storage.retained_until(name) > before[name] for name in extended)
    assert report.retention_extended >= len(listed) + 1  # packs, index, snapshot, slots, config
    assert s3_coffer.inline("--json", "check", "--read-data").json()["ok"]

    # Days later the retention of what prune hid has ended: the next prune frees it for good.
    for prefix in ("data/", "index/", "fossils/", "snapshots/"):
        for info in storage.hidden(prefix):
            expire_soon(s3, bucket, f"repo/{info.name}")
    time.sleep(1.5)
    freed = s3_coffer.inline("--json", "prune", "--grace", "0").json()
    assert freed["bytes_deleted"] >= sum(hidden_sizes.values())
    assert all(versions(s3, bucket, f"repo/{name}") == ([], []) for name in hidden)
    assert versions(s3, bucket, f"repo/snapshots/{old_id}") == ([], []), "the forgotten snapshot is gone too"
    assert not list(storage.hidden("index/"))

    # A pack deleted by someone who should not have (a compromised station: it can add delete markers only)
    # stays recoverable, even once its retention has ended: prune never frees a pack the index lists.
    victim = sorted(listed)[0]
    s3.client.delete_object(Bucket=bucket, Key=f"repo/{victim}")
    expire_soon(s3, bucket, f"repo/{victim}")
    time.sleep(1.5)
    assert s3_coffer.inline("--json", "check", expect=4).json()["errors"]
    s3_coffer.inline("prune", "--grace", "0")
    (_,), (marker,) = versions(s3, bucket, f"repo/{victim}")
    s3.client.delete_object(Bucket=bucket, Key=f"repo/{victim}", VersionId=marker)  # the recovery
    assert s3_coffer.inline("--json", "check", "--read-data").json()["ok"]
    target = tmp_path / "export"
    s3_coffer.inline("export", new_id, target)
    assert_same_tree(new.path, target)
    storage.close()
