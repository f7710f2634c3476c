"""The S3 storage backend: a Coffer repository in `s3://bucket/prefix`.

Endpoint, region and credentials come from boto3's default chain (the `AWS_*`
variables, `AWS_ENDPOINT_URL` included, then `~/.aws`). Every write of a name
that must not be overwritten uses `If-None-Match: *` on PutObject and
CompleteMultipartUpload, which AWS S3 (since 2024), MinIO and SeaweedFS honour;
a 412 becomes `ObjectExistsError`. (SeaweedFS 4.48 makes PutObject atomic but
checks CompleteMultipartUpload without a lock: two racing completions of one
name can both succeed there.)

Stores without conditional writes are detected once per backend by a probe
(write a throwaway object twice with the header: a store that honours it
refuses the second write; one that answers 501 or accepts both does not) and
then served by HEAD-before-PUT. That fallback is racy: two writers could both
see a name free and both write it. Repository names are random 256-bit IDs, so
two writers only pick the same name with a broken random number generator;
the race matters for nothing else.

On a versioned bucket `delete` adds a delete marker (the data stays as a
noncurrent version, and `list` no longer shows the name; `hidden` lists such
names); `purge` removes every version, and `retained_until` says until when
any of them is locked. With Object Lock (`object_lock_days`), every put outside `locks/`
(whose leases must stay removable) carries a retention date; S3 refuses to
remove a locked version before that date, and `purge` then raises
`ObjectLockedError`. Overwriting a locked name (`if_absent=False`) only adds a
newer version; the locked one stays.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode, urlsplit

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import Loader, create_loader

from agent.errors import ObjectExistsError, StorageError, UsageError
from agent.storage.base import ObjectInfo, ObjectLockedError, Storage
from agent.storage.s3_errors import (
    S3AccessDeniedError,
    S3Target,
    error_code,
    http_status,
    is_not_found,
    is_not_implemented,
    is_precondition_failed,
    retried_by_botocore,
    translate,
)
from agent.storage.s3_multipart import MultipartSettings, MultipartUpload
from agent.storage.s3_ratelimit import TokenBucket
from agent.storage.s3_retry import RetryPolicy, run_with_retry

log = logging.getLogger(__name__)

T = TypeVar("T")

PATH_STYLE_VARIABLE = "COFFER_S3_PATH_STYLE"
_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn")
_DOWNLOAD_CHUNK = 64 * 1024
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_NO_LOCK_CONFIGURATION_CODES = frozenset(
    {"NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"}
)


LockMode = Literal["GOVERNANCE", "COMPLIANCE"]
LOCK_EXEMPT_PREFIXES = ("locks/",)  # leases must stay removable


_shared_loader: Loader | None = None
_shared_loader_lock = threading.Lock()


def _new_session() -> botocore.session.Session:
    """A botocore session (fresh credential and endpoint resolution) sharing one model loader.

    Parsing the S3 service model costs a few hundred milliseconds; every backend
    after the first reuses the parsed copy. This is the session boto3 itself
    wraps: the same `AWS_*` variables and `~/.aws` files apply.
    """
    global _shared_loader
    with _shared_loader_lock:
        if _shared_loader is None:
            _shared_loader = create_loader()
        loader = _shared_loader
    session = botocore.session.Session()
    session.register_component("data_loader", loader)
    return session


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split `s3://bucket/prefix` into the bucket and a key prefix ending in `/` (or empty)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise UsageError(f"not an S3 repository URL: {url!r} (expected s3://bucket/prefix)")
    if parts.query or parts.fragment:
        raise UsageError(f"an S3 repository URL takes no query or fragment: {url!r}")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def _path_style_from_environment() -> bool | None:
    value = os.environ.get(PATH_STYLE_VARIABLE, "").strip().lower()
    if not value:
        return None
    if value in _TRUE_WORDS:
        return True
    if value in _FALSE_WORDS:
        return False
    raise UsageError(f"{PATH_STYLE_VARIABLE} must be 1 or 0, got {value!r}")


def _is_aws_endpoint(endpoint_url: str) -> bool:
    host = urlsplit(endpoint_url).hostname or ""
    return host.endswith(_AWS_HOST_SUFFIXES)


@dataclass(frozen=True)
class _Version:
    version_id: str
    delete_marker: bool


class S3Storage(Storage):
    """Objects under one prefix of one S3 bucket."""

    list_page_size = 1000  # keys per ListObjectsV2 request (S3's maximum)
    supports_object_lock = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        path_style: bool | None = None,
        limit_upload: int | None = None,
        limit_download: int | None = None,
        object_lock_days: int | None = None,
        object_lock_mode: LockMode = "GOVERNANCE",
        retry: RetryPolicy | None = None,
        multipart: MultipartSettings | None = None,
        conditional_writes: bool | None = None,
    ) -> None:
        """Connect to `bucket` through boto3's default credential and endpoint chain.

        `endpoint_url` overrides `AWS_ENDPOINT_URL`. `path_style` None means
        path-style addressing for any endpoint that is not AWS's own.
        `limit_upload`/`limit_download` cap bytes per second across all of this
        backend's threads. `object_lock_days` (also settable later) makes every
        put outside `locks/` carry an Object Lock retention of that many days in
        `object_lock_mode`. `conditional_writes` None probes the store on the
        first put-if-absent; True trusts it; False always uses HEAD-before-PUT.
        """
        self.bucket = bucket
        self.prefix = prefix
        self.retry = retry or RetryPolicy()
        self.multipart = multipart or MultipartSettings()
        self.object_lock_days = object_lock_days
        self.object_lock_mode = object_lock_mode
        self._conditional_writes = conditional_writes
        self._versioning: bool | None = None
        self._probe_lock = threading.Lock()
        self._upload_limit = TokenBucket(limit_upload) if limit_upload else None
        self._download_limit = TokenBucket(limit_download) if limit_download else None
        self._session = _new_session()
        self._client = self._make_client(endpoint_url, path_style)
        self.endpoint = str(self._client.meta.endpoint_url)
        if self._upload_limit is not None:
            for operation in ("PutObject", "UploadPart"):
                self._client.meta.events.register(f"before-send.s3.{operation}", self._pace_upload)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        path_style: bool | None = None,
        limit_upload: int | None = None,
        limit_download: int | None = None,
        object_lock_days: int | None = None,
        object_lock_mode: LockMode = "GOVERNANCE",
        retry: RetryPolicy | None = None,
    ) -> S3Storage:
        """Open `s3://bucket/prefix`; `COFFER_S3_PATH_STYLE=1/0` overrides `path_style`.

        Without `retry`, boto3's `AWS_RETRY_MODE` and `AWS_MAX_ATTEMPTS` adjust the default policy.
        """
        bucket, prefix = parse_s3_url(url)
        environment_style = _path_style_from_environment()
        return cls(
            bucket,
            prefix,
            path_style=environment_style if environment_style is not None else path_style,
            limit_upload=limit_upload,
            limit_download=limit_download,
            object_lock_days=object_lock_days,
            object_lock_mode=object_lock_mode,
            retry=retry or RetryPolicy.from_environment(),
        )

    def _make_client(self, endpoint_url: str | None, path_style: bool | None) -> Any:
        def build(style: bool) -> Any:
            config = self.retry.botocore_config(
                path_style=style, max_pool_connections=max(10, 2 * self.multipart.threads)
            )
            try:
                return self._session.create_client("s3", endpoint_url=endpoint_url, config=config)
            except ValueError as error:
                raise UsageError(f"invalid S3 endpoint or region: {error}") from error
            except BotoCoreError as error:
                raise translate(error, "connect to", S3Target(endpoint_url or "S3", self.bucket)) from error

        if path_style is not None:
            return build(path_style)
        client = build(False)
        if _is_aws_endpoint(str(client.meta.endpoint_url)):
            return client
        client.close()
        return build(True)

    @property
    def object_lock_days(self) -> int | None:
        """Days of Object Lock retention each protected put carries; None (or 0) for no lock."""
        return self._object_lock_days

    @object_lock_days.setter
    def object_lock_days(self, days: int | None) -> None:
        if days is not None and days < 0:
            raise UsageError(f"object lock retention cannot be negative, got {days} days")
        self._object_lock_days = days or None

    @property
    def object_lock_mode(self) -> LockMode:
        return self._object_lock_mode

    @object_lock_mode.setter
    def object_lock_mode(self, mode: LockMode) -> None:
        if mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise UsageError(f"object lock mode must be GOVERNANCE or COMPLIANCE, got {mode!r}")
        self._object_lock_mode = mode

    @property
    def client(self) -> Any:
        """The botocore S3 client (what boto3's `client("s3")` is), for S3 features beyond `Storage`."""
        return self._client

    # -- the Storage interface ------------------------------------------------------------

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def put(
        self, name: str, data: bytes, *, if_absent: bool = True, tags: dict[str, str] | None = None
    ) -> None:
        """Store `data`; multipart above the threshold. See the module docstring for put-if-absent."""
        key = self._key(name)
        write_args = self._write_args(name, tags)
        with self._translated("store", key):
            if if_absent and not self._conditional_writes_work():
                self._put_after_head(key, data, write_args)
                return
            try:
                self._write(key, data, write_args, if_absent=if_absent)
            except ClientError as error:
                if not (if_absent and is_not_implemented(error)):
                    raise
                log.warning(
                    "%s does not implement conditional writes; falling back to HEAD-before-PUT", self.endpoint
                )
                self._conditional_writes = False
                self._put_after_head(key, data, write_args)

    def get(self, name: str) -> bytes:
        key = self._key(name)
        with self._translated("read", key):
            return self._retrying(f"read {key}", lambda: self._download(key, None))

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError(f"invalid range: offset {offset}, length {length}")
        if length == 0:
            return b""
        key = self._key(name)
        byte_range = f"bytes={offset}-{offset + length - 1}"
        with self._translated("read", key):
            try:
                return self._retrying(f"read {key}", lambda: self._download(key, byte_range))
            except ClientError as error:
                if error_code(error) == "InvalidRange":  # the range starts at or after the end
                    return b""
                raise

    def stat(self, name: str) -> ObjectInfo:
        key = self._key(name)
        with self._translated("inspect", key):
            head = self._retrying(
                f"inspect {key}", lambda: self._client.head_object(Bucket=self.bucket, Key=key)
            )
        return ObjectInfo(name=name, size=int(head["ContentLength"]), mtime=head["LastModified"].timestamp())

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield the current objects; names whose latest version is a delete marker are not listed."""
        full_prefix = self._key(prefix)
        arguments: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": full_prefix,
            "MaxKeys": self.list_page_size,
        }
        while True:
            with self._translated("list", full_prefix):
                page = self._retrying(
                    f"list {full_prefix}",
                    lambda arguments=arguments: self._client.list_objects_v2(**arguments),
                )
            for entry in page.get("Contents", []):
                yield ObjectInfo(
                    name=entry["Key"][len(self.prefix) :],
                    size=int(entry["Size"]),
                    mtime=entry["LastModified"].timestamp(),
                )
            if not page.get("IsTruncated"):
                return
            arguments = {**arguments, "ContinuationToken": page["NextContinuationToken"]}

    def delete(self, name: str) -> None:
        """Remove `name`; on a versioned bucket this adds a delete marker and keeps the old versions."""
        key = self._key(name)
        with self._translated("delete", key):
            self._retrying(f"delete {key}", lambda: self._client.delete_object(Bucket=self.bucket, Key=key))

    def close(self) -> None:
        self._client.close()

    # -- S3-specific capabilities ---------------------------------------------------------

    def create_bucket(self, *, object_lock: bool = False) -> None:
        """Create this backend's bucket (with Object Lock, hence versioning, if asked).

        An existing bucket of ours is accepted, but not one without Object Lock
        when Object Lock is asked for: that cannot be turned on afterwards.
        """
        arguments: dict[str, Any] = {"Bucket": self.bucket}
        if object_lock:
            arguments["ObjectLockEnabledForBucket"] = True
        region = self._client.meta.region_name
        if region and region != "us-east-1" and _is_aws_endpoint(self.endpoint):
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with self._translated("create bucket", ""):
            try:
                self._retrying(
                    f"create bucket {self.bucket}", lambda: self._client.create_bucket(**arguments)
                )
            except ClientError as error:
                if error_code(error) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise
                # SeaweedFS says BucketAlreadyExists even to the owner: whether
                # we can reach the bucket tells ours from someone else's.
                if not self._bucket_reachable():
                    raise StorageError(
                        f"the bucket name {self.bucket!r} is taken by another account; choose another name"
                    ) from error
                if object_lock and not self.object_lock_enabled():
                    raise self._no_object_lock_error() from error

    def prepare(self, *, object_lock_days: int = 0) -> None:
        """Create the bucket unless it exists (with Object Lock if `object_lock_days`), then lock puts.

        An existing bucket is used as it is, so credentials without
        s3:CreateBucket can still create a repository in it; with
        `object_lock_days` it must have been created with Object Lock.
        """
        if not self._bucket_reachable():
            self.create_bucket(object_lock=bool(object_lock_days))
        elif object_lock_days and not self.object_lock_enabled():
            raise self._no_object_lock_error()
        self.object_lock_days = object_lock_days

    def object_lock_enabled(self) -> bool:
        """Whether the bucket was created with Object Lock."""
        with self._translated("read the object lock configuration of", ""):
            try:
                reply = self._retrying(
                    f"read object lock configuration of {self.bucket}",
                    lambda: self._client.get_object_lock_configuration(Bucket=self.bucket),
                )
            except ClientError as error:
                if error_code(error) in _NO_LOCK_CONFIGURATION_CODES:
                    return False
                raise
        return reply.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def retention(self, name: str) -> tuple[str, datetime] | None:
        """The (mode, retain-until) of the current version of `name`, or None if it has no retention."""
        key = self._key(name)
        with self._translated("read the retention of", key):
            try:
                reply = self._retrying(
                    f"read retention of {key}",
                    lambda: self._client.get_object_retention(Bucket=self.bucket, Key=key),
                )
            except ClientError as error:
                if error_code(error) in _NO_LOCK_CONFIGURATION_CODES:
                    return None
                if error_code(error) == "InvalidRequest":
                    raise self._lock_disabled_error(error) from error
                raise
        retention = reply.get("Retention", {})
        return (retention["Mode"], retention["RetainUntilDate"]) if retention else None

    def extend_retention(self, name: str, until: datetime) -> None:
        """Keep the current version of `name` locked until at least `until` (never shortens a lock)."""
        if until.tzinfo is None:
            raise ValueError("retention dates must be timezone-aware")
        current = self.retention(name)
        if current is not None and current[1] >= until:
            return
        mode = current[0] if current else self._object_lock_mode
        key = self._key(name)
        with self._translated("extend the retention of", key):
            self._retrying(
                f"extend retention of {key}",
                lambda: self._client.put_object_retention(
                    Bucket=self.bucket, Key=key, Retention={"Mode": mode, "RetainUntilDate": until}
                ),
            )

    def retained_until(self, name: str) -> datetime | None:
        """The latest retain-until date over every stored version of `name` (None: nothing locks it)."""
        if not self._versioned():
            return None  # Object Lock implies versioning
        key = self._key(name)
        dates = []
        with self._translated("read the retention of", key):
            for version in self._versions(key):
                if version.delete_marker:
                    continue
                head = self._retrying(
                    f"inspect version {version.version_id} of {key}",
                    lambda version=version: self._client.head_object(
                        Bucket=self.bucket, Key=key, VersionId=version.version_id
                    ),
                )
                if head.get("ObjectLockRetainUntilDate") is not None:
                    dates.append(head["ObjectLockRetainUntilDate"])
        return max(dates, default=None)

    def purge(self, name: str) -> None:
        """Remove every version and delete marker of `name`, freeing its storage.

        Data versions go first and delete markers last, so a version that turns
        out to be locked leaves the name exactly as hidden (or visible) as it was.
        Raises `ObjectLockedError` if a version is still under retention.
        """
        if not self._versioned():
            self.delete(name)
            return
        key = self._key(name)
        with self._translated("purge", key):
            for version in self._versions(key):
                try:
                    self._retrying(
                        f"delete version {version.version_id} of {key}",
                        lambda version=version: self._client.delete_object(
                            Bucket=self.bucket, Key=key, VersionId=version.version_id
                        ),
                    )
                except ClientError as error:
                    if error_code(error) == "AccessDenied":
                        raise self._locked_version_error(name, key, version.version_id) from error
                    raise

    def hidden(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Names under `prefix` whose newest version is a delete marker, with their newest data version."""
        if not self._versioned():
            return
        full_prefix = self._key(prefix)
        deleted: set[str] = set()
        newest: dict[str, ObjectInfo] = {}
        with self._translated("list versions under", full_prefix):
            for page in self._version_pages(full_prefix):
                for marker in page.get("DeleteMarkers", []):
                    if marker.get("IsLatest"):
                        deleted.add(marker["Key"])
                for entry in page.get("Versions", []):
                    info = ObjectInfo(
                        entry["Key"][len(self.prefix) :],
                        int(entry["Size"]),
                        entry["LastModified"].timestamp(),
                    )
                    known = newest.get(entry["Key"])
                    if known is None or known.mtime < info.mtime:
                        newest[entry["Key"]] = info
        for key in sorted(deleted):
            yield newest.get(key, ObjectInfo(key[len(self.prefix) :], 0, 0.0))

    # -- internals ------------------------------------------------------------------------

    def _key(self, name: str) -> str:
        return self.prefix + name

    @contextmanager
    def _translated(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as error:
            raise translate(error, action, S3Target(self.endpoint, self.bucket, key)) from error

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        return run_with_retry(call, self.retry, what)

    def _write_args(self, name: str, tags: dict[str, str] | None) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        if tags:
            arguments["Tagging"] = urlencode(tags)
        if self._object_lock_days and not name.startswith(LOCK_EXEMPT_PREFIXES):
            arguments["ObjectLockMode"] = self._object_lock_mode
            arguments["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(
                days=self._object_lock_days
            )
        return arguments

    def _write(self, key: str, data: bytes, write_args: dict[str, Any], *, if_absent: bool) -> None:
        try:
            if len(data) > self.multipart.threshold:
                # The conditional completion settles races; the HEAD only spares
                # uploading every part of a name that is visibly taken already.
                if if_absent and self._current_etag(key) is not None:
                    raise ObjectExistsError(f"s3://{self.bucket}/{key} already exists")
                MultipartUpload(
                    client=self._client,
                    bucket=self.bucket,
                    key=key,
                    data=data,
                    settings=self.multipart,
                    retrying=self._retrying,
                    current_etag=lambda: self._current_etag(key),
                ).run(write_args, if_absent=if_absent)
            else:
                self._single_put(key, data, write_args, if_absent=if_absent)
        except ClientError as error:
            if "ObjectLockMode" in write_args and error_code(error) in {"InvalidRequest", "InvalidArgument"}:
                raise self._lock_disabled_error(error) from error
            raise

    def _single_put(self, key: str, data: bytes, write_args: dict[str, Any], *, if_absent: bool) -> None:
        conditional = {"IfNoneMatch": "*"} if if_absent else {}
        expected_etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            try:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=data, **write_args, **conditional)
            except ClientError as error:
                # A retried write that meets "already exists" may have met itself: an
                # earlier attempt landed and only its reply was lost. Same bytes, same ETag.
                retried = attempts > 1 or retried_by_botocore(error)
                if is_precondition_failed(error) and retried and self._current_etag(key) == expected_etag:
                    return
                raise

        self._retrying(f"store {key}", attempt)

    def _put_after_head(self, key: str, data: bytes, write_args: dict[str, Any]) -> None:
        """Put-if-absent without server support: racy, see the module docstring."""
        if self._current_etag(key) is not None:
            raise ObjectExistsError(f"s3://{self.bucket}/{key} already exists")
        self._write(key, data, write_args, if_absent=False)

    def _current_etag(self, key: str) -> str | None:
        try:
            head = self._retrying(
                f"inspect {key}", lambda: self._client.head_object(Bucket=self.bucket, Key=key)
            )
        except ClientError as error:
            if is_not_found(error):
                return None
            raise
        return str(head["ETag"]).strip('"')

    def _bucket_reachable(self) -> bool:
        try:
            self._retrying(
                f"inspect bucket {self.bucket}", lambda: self._client.head_bucket(Bucket=self.bucket)
            )
        except ClientError as error:
            if http_status(error) in {403, 404}:
                return False
            raise
        return True

    def _conditional_writes_work(self) -> bool:
        with self._probe_lock:
            if self._conditional_writes is None:
                self._conditional_writes = self._probe_conditional_writes()
            return self._conditional_writes

    def _probe_conditional_writes(self) -> bool:
        """Write a throwaway object twice with `If-None-Match: *`; only a refused second write proves support."""
        key = self._key(f".coffer-probe-{secrets.token_hex(8)}")
        try:
            # Different bytes, so the lost-reply check of _single_put cannot take the
            # second write for the first.
            self._single_put(key, b"first", {}, if_absent=True)
            self._single_put(key, b"second", {}, if_absent=True)
        except ClientError as error:
            if is_precondition_failed(error):
                return True
            if not is_not_implemented(error):
                raise
            log.warning("%s answers 501 to conditional writes; using HEAD-before-PUT", self.endpoint)
            return False
        finally:
            self._remove_probe(key)
        log.warning("%s ignores If-None-Match on writes; using HEAD-before-PUT (racy)", self.endpoint)
        return False

    def _remove_probe(self, key: str) -> None:
        try:
            for version in self._versions(key):
                self._client.delete_object(Bucket=self.bucket, Key=key, VersionId=version.version_id)
        except (ClientError, BotoCoreError) as error:
            log.warning("could not remove the probe object %s: %s", key, error)

    def _versioned(self) -> bool:
        """Whether the bucket keeps versions (versioning enabled now or suspended after it was)."""
        if self._versioning is None:
            with self._translated("read the versioning state of", ""):
                reply = self._retrying(
                    f"read versioning of {self.bucket}",
                    lambda: self._client.get_bucket_versioning(Bucket=self.bucket),
                )
            self._versioning = reply.get("Status") in {"Enabled", "Suspended"}
        return self._versioning

    def _version_pages(self, key_prefix: str) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": key_prefix}
        while True:
            page = self._retrying(
                f"list versions of {key_prefix}",
                lambda arguments=arguments: self._client.list_object_versions(**arguments),
            )
            yield page
            if not page.get("IsTruncated"):
                return
            arguments = {
                **arguments,
                "KeyMarker": page["NextKeyMarker"],
                "VersionIdMarker": page["NextVersionIdMarker"],
            }

    def _versions(self, key: str) -> list[_Version]:
        """Every version of exactly `key`, data versions before delete markers.

        An unversioned bucket reports one version, "null".
        """
        found: list[_Version] = []
        for page in self._version_pages(key):
            found += [_Version(v["VersionId"], False) for v in page.get("Versions", []) if v["Key"] == key]
            found += [
                _Version(m["VersionId"], True) for m in page.get("DeleteMarkers", []) if m["Key"] == key
            ]
        return sorted(found, key=lambda version: version.delete_marker)

    def _download(self, key: str, byte_range: str | None) -> bytes:
        extra = {"Range": byte_range} if byte_range else {}
        body = self._client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
        try:
            if self._download_limit is None:
                return body.read()
            chunks = []
            while chunk := body.read(_DOWNLOAD_CHUNK):
                self._download_limit.consume(len(chunk))
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            body.close()

    def _pace_upload(self, request: Any, **_: Any) -> None:
        """botocore hook run before each send of a PutObject/UploadPart, retries included."""
        assert self._upload_limit is not None
        headers = request.headers
        # A streamed (aws-chunked) body announces its size in X-Amz-Decoded-Content-Length.
        length = int(headers.get("X-Amz-Decoded-Content-Length") or headers.get("Content-Length") or 0)
        self._upload_limit.consume(length)

    def _lock_disabled_error(self, error: ClientError) -> StorageError:
        message = error.response.get("Error", {}).get("Message", "")
        return StorageError(
            f"S3 refused an Object Lock request on bucket {self.bucket!r} ({error_code(error)}: {message}); "
            "Object Lock must be enabled when the bucket is created"
        )

    def _no_object_lock_error(self) -> StorageError:
        return StorageError(
            f"bucket {self.bucket!r} exists without Object Lock, which cannot be enabled later; use a new bucket"
        )

    def _locked_version_error(self, name: str, key: str, version_id: str) -> StorageError:
        """Explain an AccessDenied on removing a version: a retention date, or a missing permission."""
        denied = S3AccessDeniedError(
            f"access denied when removing version {version_id} of {name} at s3://{self.bucket}: "
            "the credentials lack s3:DeleteObjectVersion, or the version is under a legal hold"
        )
        try:
            reply = self._client.get_object_retention(Bucket=self.bucket, Key=key, VersionId=version_id)
        except (ClientError, BotoCoreError):
            return denied
        retention = reply.get("Retention", {})
        until = retention.get("RetainUntilDate")
        if until is None or until <= datetime.now(UTC):
            return denied
        return ObjectLockedError(
            f"{name} cannot be removed: version {version_id} is locked ({retention.get('Mode')}) until "
            f"{until.isoformat()}; it can be removed after that date"
        )
