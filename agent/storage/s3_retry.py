"""Retry policy of the S3 backend: botocore's per-request retries plus a whole-operation retry.

botocore retries each HTTP request (connection errors, 5xx, throttling) with
its own backoff. Some failures slip past it: a GET whose body is cut off while
being read, or a request that failed on every botocore attempt during a short
outage. `run_with_retry` repeats the whole object operation for those, with
exponential backoff and full jitter, a bounded number of times and never past
a deadline, so the total time an operation can take is bounded.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from botocore.config import Config

from agent.errors import UsageError
from agent.storage.s3_errors import is_transient

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the backend tries before reporting a failure.

    botocore's standard mode backs off `rand() * min(scale * 2**i, 20 s)` with a
    scale of 1 s for throttling and 50 ms for other errors; with 8 retries an
    endpoint that refuses connections is reported after at most 12.75 s of
    backoff. Connection failures are not retried again here; cut-off replies,
    5xx and throttling are, up to `operation_attempts` times and never past
    `deadline`.
    """

    mode: Literal["standard", "adaptive"] = "standard"
    botocore_retries: int = (
        8  # botocore's retries.max_attempts: retries of one HTTP request after its first try
    )
    operation_attempts: int = 4  # attempts of a whole object operation (each with its botocore attempts)
    base_delay: float = 0.5  # seconds; the first backoff is drawn from [0, base_delay)
    max_delay: float = 8.0
    deadline: float = 300.0  # seconds after which no new operation attempt starts
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    @classmethod
    def from_environment(cls) -> RetryPolicy:
        """The defaults, with boto3's own settings honoured: `AWS_RETRY_MODE` (standard or adaptive) and
        `AWS_MAX_ATTEMPTS` (tries of one request, the first included; 1 means no retry)."""
        policy = cls()
        mode = os.environ.get("AWS_RETRY_MODE", "").strip()
        if mode:
            if mode not in ("standard", "adaptive"):
                raise UsageError(f"AWS_RETRY_MODE must be standard or adaptive for Coffer, got {mode!r}")
            policy = replace(policy, mode=mode)  # type: ignore[arg-type]
        attempts = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
        if attempts:
            if not attempts.isdigit() or int(attempts) < 1:
                raise UsageError(f"AWS_MAX_ATTEMPTS must be a whole number of 1 or more, got {attempts!r}")
            policy = replace(policy, botocore_retries=int(attempts) - 1)
        return policy

    def botocore_config(self, *, path_style: bool, max_pool_connections: int) -> Config:
        return Config(
            retries={"mode": self.mode, "max_attempts": self.botocore_retries},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_pool_connections=max_pool_connections,
            s3={"addressing_style": "path" if path_style else "auto"},
        )

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**(attempt-1)))."""
        return random.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def run_with_retry(operation: Callable[[], T], policy: RetryPolicy, what: str) -> T:
    """Run `operation`, repeating it on transient failures as `policy` allows; re-raise the last failure."""
    started = time.monotonic()
    attempt = 1
    while True:
        try:
            return operation()
        except Exception as error:
            if not is_transient(error) or attempt >= policy.operation_attempts:
                raise
            delay = policy.backoff(attempt)
            if time.monotonic() - started + delay > policy.deadline:
                raise
            log.info("S3 %s failed (%s); retrying in %.2f s (attempt %d)", what, error, delay, attempt + 1)
            time.sleep(delay)
            attempt += 1
