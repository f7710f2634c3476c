"""Run a function over items on a thread pool with a bounded number in flight, results in order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(function: Callable[[T], R], items: Iterable[T], *, workers: int, in_flight: int) -> Iterator[R]:
    """Like `map`, but at most `in_flight` calls are pending at once (memory stays bounded)."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coffer-work") as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) >= in_flight:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
