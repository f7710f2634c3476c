"""Turn a repository URL (a path, `file://…`, `s3://bucket/prefix`) into a storage backend.

A remote backend comes wrapped in the host-local metadata cache (`agent.storage.cache`);
a local folder is read directly, a cache of it would only copy it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from agent.errors import UsageError
from agent.storage.base import Storage
from agent.storage.cache import CachedStorage
from agent.storage.jitter import JitteredStorage
from agent.storage.local import LocalStorage


def open_storage(url: str, *, upload_jitter: float = 0.0, **options: object) -> Storage:
    """The backend for `url`; `upload_jitter` > 0 wraps it in random pre-upload waits (timing cover)."""
    backend = _backend(url, **options)
    return JitteredStorage(backend, upload_jitter) if upload_jitter > 0 else backend


def _backend(url: str, **options: object) -> Storage:
    if url.startswith("s3://"):
        from agent.storage.s3 import S3Storage  # boto3 loads only when needed

        return CachedStorage.for_location(S3Storage.from_url(url, **options))  # type: ignore[arg-type]
    if url.startswith("file://"):
        return LocalStorage(Path(unquote(urlparse(url).path)))
    if "://" in url:
        raise UsageError(f"unsupported repository URL {url!r}: use a path, file://… or s3://bucket/prefix")
    return LocalStorage(Path(url))
