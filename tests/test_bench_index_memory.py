"""The index and memory benchmarks stay runnable: bench_index end to end on a small index, and
bench_memory's breakdown from the code's own constants (the full benchmarks are run by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.archive.parallel import LOOK_AHEAD
from agent.pipeline.writer import OPEN_BYTES_BUDGET
from agent.repository.config import PackSettings
from benchmarks import bench_index
from benchmarks.bench_memory import SizeRun, breakdown, breakdown_table, growth, report


def test_bench_index_builds_probes_and_writes_its_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench_index.main(["--chunks", "20000", "--lookups", "5000", "--results", str(tmp_path)]) == 0
    (written,) = tmp_path.glob("index-*.json")
    figures = json.loads(written.read_text())["figures"]
    assert (figures["chunks"], figures["lookups"]) == (20_000, 5_000)
    assert 20 < figures["table_bytes_per_chunk"] < 1000  # a slot is tens of bytes, not kilobytes
    for rate in ("build_chunks_per_s", "lookup_hits_per_s", "lookup_misses_per_s", "contains_hits_per_s"):
        assert figures[rate] > 1000
    assert "| Index.table_bytes |" in capsys.readouterr().out


def test_bench_index_refuses_to_time_an_index_that_answers_wrongly() -> None:
    keys = [("photos", bench_index.chunk_id(n)) for n in range(10)]
    with pytest.raises(AssertionError, match="0 of 10 probes found, expected all"):
        bench_index._rate(keys, lambda space, key: False, True)


def test_the_memory_breakdown_follows_the_code_and_only_the_index_grows_with_the_data() -> None:
    small, large = breakdown(1 << 30), breakdown(8 << 30)
    names = [share.name for share in small]
    assert names == ["open packs", "packs being stored", "chunks being cut", "small files being cut", "rows read ahead",
                     "free pack segments", "chunk index"]
    assert small[0].bytes == OPEN_BYTES_BUDGET
    assert small[1].bytes % PackSettings().max_size == 0
    assert [share.bytes for share in small[:6]] == [share.bytes for share in large[:6]]
    assert large[6].bytes > small[6].bytes
    assert 300 < small[4].bytes / LOOK_AHEAD < 4096  # a waiting file row: hundreds of bytes, not megabytes
    total = sum(share.bytes for share in small) / (1 << 20)
    assert f"| **bounded total** | {total:,.1f} |" in breakdown_table(small, 50 << 20)


def test_memory_growth_is_measured_from_the_smallest_size_and_from_2g() -> None:
    runs = [
        SizeRun(size, int(gib * (1 << 30)), 1.0, 1.0, rss, 0.0)
        for size, gib, rss in (("1G", 1, 200), ("2G", 2, 220), ("8G", 8, 231))
    ]
    found = growth(runs)
    assert found["1G->8G"] == pytest.approx(0.155)
    assert found["2G->8G"] == pytest.approx(0.05)
    shares = breakdown(8 << 30)
    assert "target, at most 10% more from 2G to the largest: met" in report(runs, shares, 0)
    assert "missed" in report([*runs[:2], SizeRun("8G", 8 << 30, 1.0, 1.0, 250, 0.0)], shares, 0)
    assert "not measured" in report(runs[:1], shares, 0)
