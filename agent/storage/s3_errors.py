"""Turn boto3/botocore failures into `StorageError`s a user can act on.

botocore reports problems as `ClientError` (the server answered with an error)
or `BotoCoreError` (no usable answer: no credentials, connection refused, a
reply cut short). `translate` maps both to the Coffer hierarchy with a message
that names the endpoint, the object and the likely fix, so no raw botocore
traceback reaches a user. `is_transient` tells the retry loop which failures
are worth another attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import (
    BotoCoreError,
    ChecksumError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from agent.errors import ObjectExistsError, ObjectNotFoundError, StorageError


class S3CredentialsError(StorageError):
    """No S3 credentials were found, or the server does not accept them."""


class S3AccessDeniedError(StorageError):
    """The server refused an operation for lack of permission."""


class BucketNotFoundError(StorageError):
    """The bucket named in the repository URL does not exist."""


class EndpointUnreachableError(StorageError):
    """No connection to the S3 endpoint could be made."""


class S3FeatureUnsupportedError(StorageError):
    """The server answered 501 Not Implemented to a request feature."""


_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "InvalidSecurity",
    }
)
_THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "TooManyRequests",
    }
)
_NOT_IMPLEMENTED_CODES = frozenset({"NotImplemented", "501"})


def error_code(error: ClientError) -> str:
    """The S3 error code (`NoSuchKey`, ...) or, for bodiless replies such as HEAD, the HTTP status."""
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def retried_by_botocore(error: ClientError) -> bool:
    """True when botocore sent the request more than once before this answer."""
    return int(error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) > 0


def is_not_found(error: ClientError) -> bool:
    """The object (not the bucket) does not exist."""
    code = error_code(error)
    return code != "NoSuchBucket" and (code in {"NoSuchKey", "NotFound", "404"} or http_status(error) == 404)


def is_precondition_failed(error: ClientError) -> bool:
    return error_code(error) in {"PreconditionFailed", "412"} or http_status(error) == 412


def is_not_implemented(error: ClientError) -> bool:
    return error_code(error) in _NOT_IMPLEMENTED_CODES or http_status(error) == 501


def is_transient(error: BaseException) -> bool:
    """Worth retrying the whole operation: a reply cut short, a timeout, a 5xx or throttling.

    Failures to connect at all are not: botocore has already retried them with
    backoff, and an endpoint that refused every attempt is down or mistyped.
    """
    if isinstance(error, ClientError):
        status = http_status(error)
        return error_code(error) in _THROTTLE_CODES or status == 429 or (status >= 500 and status != 501)
    return isinstance(error, HTTPClientError | IncompleteReadError | ChecksumError)


@dataclass(frozen=True)
class S3Target:
    """What an operation touched, for messages: never contains credentials."""

    endpoint: str
    bucket: str
    key: str = ""

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"


def translate(error: BaseException, action: str, target: S3Target) -> StorageError:
    """Map a boto3/botocore failure of `action` on `target` to a `StorageError` subclass."""
    where = target.describe()
    if isinstance(error, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return S3CredentialsError(
            f"no usable S3 credentials ({error}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE with a profile in ~/.aws/credentials"
        )
    if isinstance(error, ProfileNotFound):
        return S3CredentialsError(f"{error}: fix AWS_PROFILE or add the profile to ~/.aws/credentials")
    if isinstance(error, ClientError):
        return _translate_client_error(error, action, target)
    if isinstance(error, BotoConnectionError):
        return EndpointUnreachableError(
            f"cannot reach the S3 endpoint {target.endpoint} to {action} {where} ({error}); "
            "check AWS_ENDPOINT_URL, the network, and that the server is running"
        )
    if isinstance(error, HTTPClientError | IncompleteReadError | ChecksumError):
        return StorageError(
            f"the S3 endpoint {target.endpoint} kept failing while trying to {action} {where} ({error}); "
            "retries were exhausted, try again later"
        )
    if isinstance(error, BotoCoreError):
        return StorageError(f"cannot {action} {where}: {error}")
    return StorageError(f"cannot {action} {where}: {type(error).__name__}: {error}")


def _translate_client_error(error: ClientError, action: str, target: S3Target) -> StorageError:
    code = error_code(error)
    status = http_status(error)
    message = str(error.response.get("Error", {}).get("Message", "")) or "no message"
    where = target.describe()
    if code in _CREDENTIAL_CODES:
        return S3CredentialsError(
            f"the S3 endpoint {target.endpoint} rejected the credentials ({code}: {message}); "
            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile in use)"
        )
    if code == "NoSuchBucket":
        return BucketNotFoundError(
            f"bucket {target.bucket!r} does not exist at {target.endpoint}; "
            "create it (coffer init can) or fix the repository URL"
        )
    if is_precondition_failed(error):
        return ObjectExistsError(f"{where} already exists")
    if is_not_found(error):
        return ObjectNotFoundError(f"{where} does not exist")
    if code == "AccessDenied" or status == 403:
        return S3AccessDeniedError(
            f"access denied when trying to {action} {where} at {target.endpoint}: "
            "the credentials lack this permission on the bucket, or the keys are wrong"
        )
    if is_not_implemented(error):
        return S3FeatureUnsupportedError(
            f"the S3 endpoint {target.endpoint} does not implement a feature needed to {action} {where} "
            f"({code}: {message})"
        )
    return StorageError(f"S3 refused to {action} {where} ({code or status}: {message})")
