"""Run a function over items on a thread pool with a bounded number in flight, results in order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

# Files below this size are mostly interpreter work: callers run them on `bounded_map`'s lane of their own.
# Writing a file out (export, extract, copy) is mostly opens, renames and small writes up to about a megabyte.
SMALL_FILE = 1 << 20
# Storing one is not: from a few tens of kilobytes on, compressing, hashing and sealing it is per-byte work that
# belongs on the pool's cores. The 2 GB benchmark folder's import, seven alternating runs each, every run from
# the same page-cache state: 3.33 s with files under 1 MiB on the lane, 3.22 s under 64 KiB (3.24 s with no
# lane, whose 10,000 files of 4 KiB then took 2.22 s instead of 2.10, and 2.03 s under 64 KiB).
SMALL_INGEST_FILE = 64 << 10
# How far the feeder reads ahead for work of the other kind while one kind's calls are all taken: a backup
# folder lists its files domain by domain (the 2 GB benchmark folder: 642 media files, then 2,900 small ones).
# Items waiting are file rows, about a kilobyte each; 4,096 of them raised the import's peak RSS from 2 to 8 GB
# by 9.9 %, 1,024 by 6.0 % (`bench_memory --sizes 2G,8G`).
LOOK_AHEAD = 1024

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Slot(Generic[T, R]):
    """One item in its place in the order: waiting for room, then running or done."""

    item: T | None
    future: Future[R] | None = None


def bounded_map(
    function: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    in_flight: int,
    alone: Callable[[T], bool] | None = None,
) -> Iterator[R]:
    """Like `map`, but at most `in_flight` calls are unfinished at once (memory stays bounded).

    Results come in order, but a slow call at the head (a 200 MB video) does not hold the others back: the
    calls after it keep the workers busy, and their results, which are small, wait for their turn. The first
    call to fail ends the run with its exception, as soon as it fails.

    Items for which `alone` is true go to one thread of their own instead of the pool: a small file is nearly
    all interpreter work (opens, a little parsing, one short chunk), and several threads doing that at once
    only hand the GIL back and forth; one thread does them faster, beside the workers' per-byte work on the
    large files. 10,000 files of 4 KiB on 2 cores: an export took 1.85-2.21 s with 4 workers, 1.43-1.60 s
    with one; an import 2.09-2.11 s with 2, 1.81-2.04 s with one. Each of the two has its own bound, and
    while one's calls are all taken the feeder reads up to `LOOK_AHEAD` items ahead for the other, so a run
    of small files and a run of large ones are worked on side by side."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coffer-work") as pool, ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="coffer-small"
    ) as lane:
        executors = (pool, lane)
        slots: deque[_Slot[T, R]] = deque()
        waiting: dict[ThreadPoolExecutor, deque[_Slot[T, R]]] = {pool: deque(), lane: deque()}
        running: dict[ThreadPoolExecutor, set[Future[R]]] = {pool: set(), lane: set()}
        pending = iter(items)
        exhausted = False

        def has_room(executor: ThreadPoolExecutor) -> bool:
            return len(running[executor]) + len(waiting[executor]) < in_flight

        try:
            while True:
                while not exhausted and len(slots) < LOOK_AHEAD and any(map(has_room, executors)):
                    try:
                        item = next(pending)
                    except StopIteration:
                        exhausted = True
                        break
                    slot: _Slot[T, R] = _Slot(item)
                    slots.append(slot)
                    waiting[lane if alone is not None and alone(item) else pool].append(slot)
                for executor in executors:
                    while waiting[executor] and len(running[executor]) < in_flight:
                        slot = waiting[executor].popleft()
                        slot.future = executor.submit(function, slot.item)  # type: ignore[arg-type]
                        slot.item = None
                        running[executor].add(slot.future)
                while slots and slots[0].future is not None and slots[0].future.done():
                    yield slots.popleft().future.result()  # type: ignore[union-attr]
                if exhausted and not slots:
                    return
                if not exhausted and len(slots) < LOOK_AHEAD and any(map(has_room, executors)):
                    continue
                finished, _ = wait(running[pool] | running[lane], return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()  # raises the first failure now, not when its turn comes
                for executor in executors:
                    running[executor] -= finished
        finally:
            for slot in slots:
                if slot.future is not None:
                    slot.future.cancel()
