"""Multipart upload of one large object with parts sent in parallel.

Parts go up on a small thread pool; the upload is completed with
`If-None-Match: *` when the caller wants put-if-absent, and aborted on any
failure so no orphaned parts keep costing storage. A completion whose reply
was lost is recognised by the object's ETag, which S3 derives from the parts'
MD5s, so a retry that meets our own finished object is not mistaken for a
conflict.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from agent.storage.s3_errors import error_code, is_precondition_failed, retried_by_botocore

log = logging.getLogger(__name__)

_MIN_PART_SIZE = 5 * 1024 * 1024  # S3's floor for every part but the last
_MAX_PARTS = 10_000


@dataclass(frozen=True)
class MultipartSettings:
    """When to switch to multipart and how to cut the object."""

    threshold: int = 16 * 1024 * 1024
    part_size: int = 8 * 1024 * 1024
    threads: int = 4

    def __post_init__(self) -> None:
        if self.part_size < _MIN_PART_SIZE:
            raise ValueError(f"S3 parts must be at least {_MIN_PART_SIZE} bytes, got {self.part_size}")
        if self.threads < 1:
            raise ValueError("multipart uploads need at least one thread")

    def part_size_for(self, total: int) -> int:
        """The configured part size, grown if needed to stay within S3's 10,000 parts."""
        return max(self.part_size, -(-total // _MAX_PARTS))


def multipart_etag(data: bytes, part_size: int) -> str:
    """The ETag S3 gives a multipart object: MD5 of the parts' MD5s, a dash, the part count."""
    digests = [
        hashlib.md5(data[start : start + part_size], usedforsecurity=False).digest()
        for start in range(0, len(data), part_size)
    ]
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


Retrying = Callable[[str, Callable[[], Any]], Any]


@dataclass
class MultipartUpload:
    """One multipart upload of `data` to `bucket`/`key`.

    `retrying(what, call)` runs one request with the backend's retry policy;
    `current_etag()` reads the ETag of the object now stored under the key, or
    None if there is none.
    """

    client: Any
    bucket: str
    key: str
    data: bytes
    settings: MultipartSettings
    retrying: Retrying
    current_etag: Callable[[], str | None]

    def run(self, write_args: dict[str, Any], *, if_absent: bool) -> None:
        part_size = self.settings.part_size_for(len(self.data))
        created = self.retrying(
            "start multipart upload",
            lambda: self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key, **write_args),
        )
        upload_id = created["UploadId"]
        try:
            parts = self._upload_parts(upload_id, part_size)
            self._complete(upload_id, parts, multipart_etag(self.data, part_size), if_absent=if_absent)
        except BaseException:
            self._abort(upload_id)
            raise

    def _upload_parts(self, upload_id: str, part_size: int) -> list[dict[str, Any]]:
        offsets = range(0, len(self.data), part_size)

        def send(number: int, start: int) -> dict[str, Any]:
            body = self.data[start : start + part_size]
            reply = self.retrying(
                f"upload part {number}",
                lambda: self.client.upload_part(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=body
                ),
            )
            return {"PartNumber": number, "ETag": reply["ETag"]}

        with ThreadPoolExecutor(max_workers=self.settings.threads, thread_name_prefix="s3-part") as pool:
            futures = [pool.submit(send, number, start) for number, start in enumerate(offsets, start=1)]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                error = future.exception()
                if error is not None:
                    for pending in futures:
                        pending.cancel()
                    raise error
            return [future.result() for future in futures]

    def _complete(
        self, upload_id: str, parts: list[dict[str, Any]], expected_etag: str, *, if_absent: bool
    ) -> None:
        conditional = {"IfNoneMatch": "*"} if if_absent else {}
        attempts = 0

        def complete() -> None:
            nonlocal attempts
            attempts += 1
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **conditional,
                )
            except ClientError as error:
                # A 412 or NoSuchUpload after a lost reply may be our own completion.
                ambiguous = is_precondition_failed(error) or error_code(error) == "NoSuchUpload"
                retried = attempts > 1 or retried_by_botocore(error)
                if ambiguous and retried and self.current_etag() == expected_etag:
                    return
                raise

        self.retrying("complete multipart upload", complete)

    def _abort(self, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as error:
            # The original failure matters more; a leftover upload is reclaimed by
            # a bucket lifecycle rule (AbortIncompleteMultipartUpload).
            log.warning("could not abort multipart upload of %s: %s", self.key, error)
