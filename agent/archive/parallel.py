"""Run a function over items on a thread pool with a bounded number in flight, results in order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(function: Callable[[T], R], items: Iterable[T], *, workers: int, in_flight: int) -> Iterator[R]:
    """Like `map`, but at most `in_flight` calls are unfinished at once (memory stays bounded).

    Results come in order, but a slow call at the head (a 200 MB video) does not hold the others back: the
    calls after it keep the workers busy, and their results, which are small, wait for their turn. The first
    call to fail ends the run with its exception, as soon as it fails."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coffer-work") as pool:
        ordered: deque[Future[R]] = deque()
        unfinished: set[Future[R]] = set()
        try:
            for item in items:
                while len(unfinished) >= in_flight:
                    finished, unfinished = wait(unfinished, return_when=FIRST_COMPLETED)
                    for future in finished:
                        future.result()  # raises the first failure now, not when its turn comes
                    while ordered and ordered[0].done():
                        yield ordered.popleft().result()
                future = pool.submit(function, item)
                ordered.append(future)
                unfinished.add(future)
            while ordered:
                yield ordered.popleft().result()
        finally:
            for future in ordered:
                future.cancel()
