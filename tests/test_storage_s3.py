"""The S3 backend against a real S3 server (SeaweedFS), with faults injected by a real proxy.

No boto3 or S3 mocks: every test talks HTTP to `weed mini` on loopback, directly
or through `FaultProxy`. Each test gets its own bucket.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from s3server import (
    READONLY_ACCESS_KEY,
    READONLY_SECRET_KEY,
    FaultPlan,
    FaultProxy,
    SeaweedServer,
    free_ports,
)

from agent.errors import ObjectExistsError, ObjectNotFoundError, StorageError, UsageError
from agent.storage.base import ObjectLockedError
from agent.storage.s3 import S3Storage, parse_s3_url
from agent.storage.s3_errors import (
    BucketNotFoundError,
    EndpointUnreachableError,
    S3AccessDeniedError,
    S3CredentialsError,
)
from agent.storage.s3_multipart import MultipartSettings, multipart_etag
from agent.storage.s3_retry import RetryPolicy

MiB = 1024 * 1024


@pytest.fixture
def open_storage(s3: SeaweedServer) -> Iterator[Callable[..., S3Storage]]:
    """Open `S3Storage.from_url` backends that are closed after the test."""
    opened: list[S3Storage] = []

    def opener(url: str, **options: Any) -> S3Storage:
        storage = S3Storage.from_url(url, **options)
        opened.append(storage)
        return storage

    yield opener
    for storage in opened:
        storage.close()


@pytest.fixture
def proxy(s3: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault proxy in front of the server, with AWS_ENDPOINT_URL pointing at it."""
    with FaultProxy(s3.s3_address) as fault_proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", fault_proxy.endpoint_url)
        yield fault_proxy


def test_round_trip(s3: SeaweedServer, open_storage: Callable[..., S3Storage]) -> None:
    bucket = s3.create_bucket()
    storage = open_storage(f"s3://{bucket}/repo/one")
    neighbour = open_storage(f"s3://{bucket}/repo/two")
    assert storage.location == f"s3://{bucket}/repo/one/"
    data = os.urandom(100_000)

    storage.put("data/ab/pack1", data)
    storage.put("snapshots/s1", b"snapshot")
    storage.put("empty", b"")
    neighbour.put("data/ab/other", b"elsewhere")

    assert storage.get("data/ab/pack1") == data
    assert storage.get("empty") == b""
    assert storage.get_range("data/ab/pack1", 1000, 5000) == data[1000:6000]
    assert storage.get_range("data/ab/pack1", 99_990, 100) == data[99_990:]  # short only at the end
    assert storage.get_range("data/ab/pack1", 100_000, 10) == b""
    assert storage.get_range("data/ab/pack1", 5, 0) == b""
    writable = storage.get_range_writable("data/ab/pack1", 99_990, 100)
    assert isinstance(writable, bytearray) and writable == data[99_990:]
    info = storage.stat("data/ab/pack1")
    assert (info.name, info.size) == ("data/ab/pack1", 100_000)
    assert abs(info.mtime - time.time()) < 300
    assert sorted(o.name for o in storage.list()) == ["data/ab/pack1", "empty", "snapshots/s1"]
    assert [o.name for o in storage.list("data/")] == ["data/ab/pack1"]
    assert [(o.name, o.size) for o in neighbour.list()] == [("data/ab/other", 9)]
    assert storage.exists("empty") and not storage.exists("missing")

    storage.put("snapshots/s1", b"replaced", if_absent=False)
    assert storage.get("snapshots/s1") == b"replaced"

    storage.delete("data/ab/pack1")
    storage.delete("data/ab/pack1")  # absent: not an error
    assert sorted(o.name for o in storage.list()) == ["empty", "snapshots/s1"]
    with pytest.raises(ObjectNotFoundError, match="repo/one/data/ab/pack1 does not exist"):
        storage.get("data/ab/pack1")
    with pytest.raises(ObjectNotFoundError):
        storage.stat("data/ab/pack1")
    with pytest.raises(ObjectNotFoundError):
        storage.get_range("data/ab/pack1", 0, 10)


def test_list_pages_through_many_keys(s3: SeaweedServer, open_storage: Callable[..., S3Storage]) -> None:
    storage = open_storage(f"s3://{s3.create_bucket()}/p")
    storage.list_page_size = 3
    names = {f"index/{n:02d}" for n in range(10)}
    for name in names:
        storage.put(name, name.encode())
    assert {o.name for o in storage.list("index/")} == names


def test_put_if_absent_race_has_exactly_one_winner(
    s3: SeaweedServer, open_storage: Callable[..., S3Storage]
) -> None:
    bucket = s3.create_bucket()
    writers = [open_storage(f"s3://{bucket}/race"), open_storage(f"s3://{bucket}/race")]

    def contend(
        index: int, name: str, payload: bytes, outcomes: list[str], barrier: threading.Barrier
    ) -> None:
        barrier.wait()
        try:
            writers[index].put(name, payload)
            outcomes[index] = "won"
        except ObjectExistsError:
            outcomes[index] = "lost"

    for round_number, size in enumerate([1000] * 8 + [3 * MiB] * 2):
        name = f"locks/{round_number}"
        payloads = [os.urandom(size), os.urandom(size)]
        outcomes = ["", ""]
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=contend, args=(index, name, payloads[index], outcomes, barrier))
            for index in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["lost", "won"], (name, outcomes)
        assert writers[0].get(name) == payloads[outcomes.index("won")]


def test_multipart_upload_of_40_mib_sends_parts_in_parallel(
    s3: SeaweedServer, open_storage: Callable[..., S3Storage]
) -> None:
    bucket = s3.create_bucket()
    storage = open_storage(f"s3://{bucket}/mp")
    in_flight = 0
    most_in_flight = 0
    counter_lock = threading.Lock()

    def part_started(**_: Any) -> None:
        nonlocal in_flight, most_in_flight
        with counter_lock:
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)

    def part_finished(**_: Any) -> None:
        nonlocal in_flight
        with counter_lock:
            in_flight -= 1

    storage.client.meta.events.register("before-call.s3.UploadPart", part_started)
    storage.client.meta.events.register("after-call.s3.UploadPart", part_finished)
    data = os.urandom(40 * MiB)

    started = time.monotonic()
    storage.put("data/xx/big", data, tags={"category": "photos"})
    seconds = time.monotonic() - started
    print(f"40 MiB multipart put: {seconds:.2f} s, up to {most_in_flight} parts in flight")

    assert most_in_flight >= 2
    head = s3.client.head_object(Bucket=bucket, Key="mp/data/xx/big")
    assert head["ETag"].strip('"') == multipart_etag(data, 8 * MiB)  # five 8 MiB parts
    assert storage.get("data/xx/big") == data
    assert storage.get_range("data/xx/big", 8 * MiB - 10, 20) == data[8 * MiB - 10 : 8 * MiB + 10]
    assert s3.client.get_object_tagging(Bucket=bucket, Key="mp/data/xx/big")["TagSet"] == [
        {"Key": "category", "Value": "photos"}
    ]
    with pytest.raises(ObjectExistsError):
        storage.put("data/xx/big", data)
    assert s3.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_failed_multipart_upload_is_aborted(
    s3: SeaweedServer, proxy: FaultProxy, open_storage: Callable[..., S3Storage]
) -> None:
    bucket = s3.create_bucket()
    no_retries = RetryPolicy(botocore_retries=0, operation_attempts=1)
    storage = open_storage(f"s3://{bucket}/mp", retry=no_retries)
    storage.multipart = MultipartSettings(threshold=6 * MiB, part_size=5 * MiB, threads=1)
    # Requests: create the upload, part 1, part 2 (fails).
    proxy.set_plan(FaultPlan(schedule=[None, None, "error_500"]))

    with pytest.raises(StorageError, match="InternalError"):
        storage.put("data/big", os.urandom(11 * MiB), if_absent=False)

    assert proxy.faults["error_500"] == 1
    assert s3.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert not storage.exists("data/big")


def test_tags_are_stored_as_s3_object_tags(s3: SeaweedServer, open_storage: Callable[..., S3Storage]) -> None:
    bucket = s3.create_bucket()
    storage = open_storage(f"s3://{bucket}/t")
    tags = {"category": "a1b2c3", "note": "spaces & symbols=ok"}
    storage.put("data/a1b2c3/pack", b"x" * 100, tags=tags)
    tag_set = s3.client.get_object_tagging(Bucket=bucket, Key="t/data/a1b2c3/pack")["TagSet"]
    assert {tag["Key"]: tag["Value"] for tag in tag_set} == tags


def test_bad_credentials_and_bucket_give_clear_errors(
    s3: SeaweedServer, monkeypatch: pytest.MonkeyPatch, open_storage: Callable[..., S3Storage]
) -> None:
    bucket = s3.create_bucket()
    open_storage(f"s3://{bucket}/c").put("config", b"c")

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(
        S3CredentialsError, match=r"rejected the credentials.*AWS_SECRET_ACCESS_KEY"
    ) as wrong_secret:
        open_storage(f"s3://{bucket}/c").get("config")
    assert "SignatureDoesNotMatch" in str(wrong_secret.value)

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY")
    with pytest.raises(S3CredentialsError, match="InvalidAccessKeyId"):
        list(open_storage(f"s3://{bucket}/c").list())

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(S3CredentialsError, match=r"no usable S3 credentials.*AWS_ACCESS_KEY_ID"):
        open_storage(f"s3://{bucket}/c").get("config")

    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(S3CredentialsError, match=r"no-such-profile.*AWS_PROFILE"):
        open_storage(f"s3://{bucket}/c")
    monkeypatch.delenv("AWS_PROFILE")

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READONLY_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READONLY_SECRET_KEY)
    reader = open_storage(f"s3://{bucket}/c")
    assert reader.get("config") == b"c"
    with pytest.raises(S3AccessDeniedError, match=r"access denied.*lack this permission"):
        reader.put("snapshots/s", b"s", if_absent=False)

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    missing = open_storage("s3://no-such-bucket-here/c")
    with pytest.raises(
        BucketNotFoundError, match=r"bucket 'no-such-bucket-here' does not exist at http://127\.0\.0\.1"
    ):
        missing.get("config")
    with pytest.raises(BucketNotFoundError):
        list(missing.list())


def test_unreachable_endpoint_fails_fast_with_a_clear_error(
    s3: SeaweedServer, monkeypatch: pytest.MonkeyPatch, open_storage: Callable[..., S3Storage]
) -> None:
    (closed_port,) = free_ports(1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    storage = open_storage("s3://any-bucket/x")  # the default retry policy
    started = time.monotonic()
    with pytest.raises(
        EndpointUnreachableError, match=f"cannot reach the S3 endpoint http://127.0.0.1:{closed_port}"
    ):
        storage.get("config")
    seconds = time.monotonic() - started
    print(f"unreachable endpoint reported after {seconds:.2f} s")
    assert seconds < 20


def test_operations_survive_many_injected_faults(
    s3: SeaweedServer, proxy: FaultProxy, open_storage: Callable[..., S3Storage]
) -> None:
    bucket = s3.create_bucket()
    # Every kind of fault once up front, then a fault on a quarter of the requests.
    proxy.set_plan(
        FaultPlan(
            probability=0.25,
            seed=20240917,
            schedule=["drop_request", "drop_response", "error_503", "error_500", "delay"],
            delay_seconds=0.2,
        )
    )
    storage = open_storage(f"s3://{bucket}/faulty")
    objects = {f"data/{n:02d}": os.urandom(1000 + 37_000 * n) for n in range(10)}
    objects["data/large"] = os.urandom(17 * MiB)  # multipart: 8 + 8 + 1 MiB
    started = time.monotonic()
    for name, data in objects.items():
        storage.put(name, data, tags={"n": name[-2:]})
    for name, data in objects.items():
        assert storage.get(name) == data
        assert storage.get_range(name, 100, 500) == data[100:600]
        assert storage.stat(name).size == len(data)
    assert {o.name for o in storage.list("data/")} == set(objects)
    for name in list(objects)[:4]:
        storage.delete(name)
    assert {o.name for o in storage.list("data/")} == set(list(objects)[4:])
    seconds = time.monotonic() - started

    print(
        f"fault proxy: {proxy.total_faults} faults in {proxy.requests} requests "
        f"({dict(proxy.faults)}), all operations correct, {seconds:.1f} s"
    )
    assert proxy.total_faults >= 12
    assert set(proxy.faults) == {"drop_request", "drop_response", "error_503", "error_500", "delay"}
    assert s3.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize("reply", ["not_implemented", "ignore"])
def test_store_without_conditional_writes_falls_back_to_head_before_put(
    s3: SeaweedServer, proxy: FaultProxy, open_storage: Callable[..., S3Storage], reply: str
) -> None:
    proxy.conditional_put_reply = reply  # type: ignore[assignment]
    storage = open_storage(f"s3://{s3.create_bucket()}/fallback")
    storage.multipart = MultipartSettings(threshold=6 * MiB, part_size=5 * MiB)
    storage.put("keys/k1", b"key one")
    with pytest.raises(ObjectExistsError):
        storage.put("keys/k1", b"key two")
    storage.put("data/big", os.urandom(7 * MiB))  # multipart, completed without the header
    with pytest.raises(ObjectExistsError):
        storage.put("data/big", os.urandom(7 * MiB))
    assert storage.get("keys/k1") == b"key one"
    # The probe met the store's behaviour once; later puts no longer send the header.
    assert proxy.conditional_replies == (1 if reply == "not_implemented" else 2)
    assert [o.name for o in storage.list("") if o.name.startswith(".coffer-probe")] == []


def test_url_parsing_and_path_style_setting(s3: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b/")
    for bad in ("http://bucket/x", "s3:///x", "s3://bucket/x?versionId=1"):
        with pytest.raises(UsageError):
            parse_s3_url(bad)
    monkeypatch.setenv("COFFER_S3_PATH_STYLE", "maybe")
    with pytest.raises(UsageError, match="COFFER_S3_PATH_STYLE"):
        S3Storage.from_url("s3://bucket/x")


# -- Object Lock and versioning --------------------------------------------------------------


def _versions(s3: SeaweedServer, bucket: str, key: str) -> tuple[list[str], list[str]]:
    listing = s3.client.list_object_versions(Bucket=bucket, Prefix=key)
    versions = [v["VersionId"] for v in listing.get("Versions", []) if v["Key"] == key]
    markers = [m["VersionId"] for m in listing.get("DeleteMarkers", []) if m["Key"] == key]
    return versions, markers


def test_object_lock_protects_versions_and_retention_can_be_extended(
    s3: SeaweedServer, open_storage: Callable[..., S3Storage]
) -> None:
    bucket = s3.bucket_name()
    storage = open_storage(f"s3://{bucket}/locked", object_lock_days=1)
    storage.create_bucket(object_lock=True)
    storage.create_bucket(object_lock=True)  # again: our own bucket is accepted
    assert storage.object_lock_enabled()

    storage.put("data/p1", b"pack one")
    storage.put("locks/l1", b"lease")
    mode, until = storage.retention("data/p1") or ("", datetime.min)
    assert mode == "GOVERNANCE"
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(days=1)
    assert storage.retention("locks/l1") is None  # leases stay removable

    # delete adds a delete marker: the name is gone from listings, the locked version stays.
    storage.delete("data/p1")
    assert [o.name for o in storage.list()] == ["locks/l1"]
    with pytest.raises(ObjectNotFoundError):
        storage.stat("data/p1")
    versions, markers = _versions(s3, bucket, "locked/data/p1")
    assert len(versions) == 1 and len(markers) == 1
    with pytest.raises(
        ObjectLockedError, match=r"data/p1 cannot be removed: version .* is locked \(GOVERNANCE\) until"
    ):
        storage.purge("data/p1")
    kept = s3.client.get_object(Bucket=bucket, Key="locked/data/p1", VersionId=versions[0])
    assert kept["Body"].read() == b"pack one"

    # An overwrite makes a new version; the locked one is still there and still locked.
    storage.put("data/p2", b"original")
    with pytest.raises(ObjectExistsError):
        storage.put("data/p2", b"clobber")
    storage.put("data/p2", b"overwritten", if_absent=False)
    assert storage.get("data/p2") == b"overwritten"
    versions, _ = _versions(s3, bucket, "locked/data/p2")
    assert len(versions) == 2
    with pytest.raises(ObjectLockedError):
        storage.purge("data/p2")
    assert len(_versions(s3, bucket, "locked/data/p2")[0]) >= 1

    later = datetime.now(UTC) + timedelta(days=3)
    storage.extend_retention("data/p2", later)
    assert abs((storage.retention("data/p2") or ("", datetime.min))[1] - later) < timedelta(seconds=2)
    storage.extend_retention("data/p2", later - timedelta(days=2))  # never shortens
    assert abs((storage.retention("data/p2") or ("", datetime.min))[1] - later) < timedelta(seconds=2)

    storage.purge("locks/l1")  # unlocked: every version goes
    assert _versions(s3, bucket, "locked/locks/l1") == ([], [])


def test_compliance_mode_cannot_be_bypassed_governance_can(
    s3: SeaweedServer, open_storage: Callable[..., S3Storage]
) -> None:
    bucket = s3.create_bucket(object_lock=True)
    for mode in ("GOVERNANCE", "COMPLIANCE"):
        storage = open_storage(f"s3://{bucket}/{mode}", object_lock_days=1, object_lock_mode=mode)
        storage.put("data/p", mode.encode())
        with pytest.raises(ObjectLockedError, match=mode):
            storage.purge("data/p")
        (version,), _ = _versions(s3, bucket, f"{mode}/data/p")
        client = s3.client
        if mode == "GOVERNANCE":  # an admin holding s3:BypassGovernanceRetention may still remove it
            client.delete_object(
                Bucket=bucket, Key=f"{mode}/data/p", VersionId=version, BypassGovernanceRetention=True
            )
            assert _versions(s3, bucket, f"{mode}/data/p")[0] == []
        else:
            with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
                client.delete_object(
                    Bucket=bucket, Key=f"{mode}/data/p", VersionId=version, BypassGovernanceRetention=True
                )


def test_object_lock_on_a_bucket_without_it_is_refused_clearly(
    s3: SeaweedServer, open_storage: Callable[..., S3Storage]
) -> None:
    bucket = s3.create_bucket()
    storage = open_storage(f"s3://{bucket}/x", object_lock_days=3)
    assert not storage.object_lock_enabled()
    with pytest.raises(StorageError, match="Object Lock must be enabled when the bucket is created"):
        storage.put("data/p", b"p")
    with pytest.raises(StorageError, match="exists without Object Lock"):
        storage.create_bucket(object_lock=True)
    storage.object_lock_days = None
    storage.put("data/p", b"p")
    storage.purge("data/p")  # an unversioned bucket: the one "null" version goes
    assert not storage.exists("data/p")
    with pytest.raises(UsageError):
        storage.object_lock_days = -1


# -- bandwidth limits ------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_bandwidth_limit_slows_transfers(
    s3: SeaweedServer, open_storage: Callable[..., S3Storage], direction: str
) -> None:
    rate = 2 * MiB
    size = 4 * MiB
    bucket = s3.create_bucket()
    limit = {f"limit_{direction}": rate}
    storage = open_storage(f"s3://{bucket}/bw", **limit)
    data = os.urandom(size)
    if direction == "download":
        open_storage(f"s3://{bucket}/bw").put("data/p", data)
    started = time.monotonic()
    if direction == "upload":
        storage.put("data/p", data)
    else:
        assert storage.get("data/p") == data
    seconds = time.monotonic() - started
    # The bucket may start with a tenth of a second's worth of bytes; the rest waits for the rate.
    bound = (size - 0.1 * rate) / rate
    print(f"{direction} of 4 MiB at 2 MiB/s: {seconds:.2f} s (bound {bound:.2f} s)")
    assert seconds >= bound - 0.05
    if direction == "upload":
        assert storage.get("data/p") == data
