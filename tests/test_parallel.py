"""`bounded_map`: results in order, a bounded number in flight, small items on a thread of their own."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.archive.parallel import bounded_map


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(0, 9), max_size=60), workers=st.integers(1, 4), in_flight=st.integers(1, 6))
def test_results_come_in_order_with_each_lane_bounded(sizes: list[int], workers: int, in_flight: int) -> None:
    running = {"pool": 0, "lane": 0}
    most = {"pool": 0, "lane": 0}
    lane_threads: set[str] = set()
    lock = threading.Lock()

    def work(item: tuple[int, int]) -> int:
        index, size = item
        kind = "lane" if size < 5 else "pool"
        with lock:
            running[kind] += 1
            most[kind] = max(most[kind], running[kind])
            if kind == "lane":
                lane_threads.add(threading.current_thread().name)
        time.sleep(size / 20_000)
        with lock:
            running[kind] -= 1
        return index

    items = list(enumerate(sizes))
    results = list(bounded_map(work, items, workers=workers, in_flight=in_flight, alone=lambda item: item[1] < 5))
    assert results == list(range(len(sizes)))
    assert most["lane"] <= 1  # one thread: never two small items at once
    assert most["pool"] <= min(workers, in_flight)
    assert len(lane_threads) <= 1 and all(name.startswith("coffer-small") for name in lane_threads)


def test_a_failure_in_either_lane_ends_the_run_with_it() -> None:
    def work(item: int) -> int:
        if item == 7:
            raise ValueError("item 7 is broken")
        return item

    for small in (lambda item: item == 7, lambda item: item != 7):
        with pytest.raises(ValueError, match="item 7"):
            list(bounded_map(work, range(20), workers=2, in_flight=2, alone=small))


@pytest.mark.parametrize(
    ("small", "large", "in_flight"),
    [(4, ["large"], 4), (40, ["large-a", "large-b"], 2)],
    ids=["a-full-lane", "a-backlog-beyond-both-bounds"],
)
def test_large_items_after_small_ones_start_while_the_small_ones_run(
    small: int, large: list[str], in_flight: int
) -> None:
    """The small lane is busy with a backlog (in the second case longer than either bound): the large items
    after it still start on the pool at once, the feeder reading ahead for them."""
    started: dict[str, float] = {}
    release = threading.Event()

    def work(item: str) -> str:
        started[item] = time.monotonic()
        if item.startswith("small"):
            release.wait(5)
        return item

    items = [*(f"small-{n}" for n in range(small)), *large]
    results: list[str] = []
    consumer = threading.Thread(
        target=lambda: results.extend(
            bounded_map(work, items, workers=2, in_flight=in_flight, alone=lambda item: item.startswith("small"))
        )
    )
    consumer.start()
    deadline = time.monotonic() + 5
    while not set(large) <= set(started) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(large) <= set(started), "the large items waited behind the small ones"
    release.set()
    consumer.join(10)
    assert results == items
