"""The ingest benchmark's parts: measuring a child, the tools' command lines run for real, the ratios."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from agent.errors import UsageError
from benchmarks.dataset.backup import generate
from benchmarks.ingest.measure import MIB, Measurement, TreeSize, run_measured, same_start, tree_size
from benchmarks.ingest.report import FULL, INCREMENTAL, REREAD, RESTORE, Run, markdown, ratios
from benchmarks.ingest.tools import TOOLS, Tool


def test_a_child_is_measured_for_exit_code_time_and_peak_memory(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    script = "import sys, time; block = bytearray(96 << 20); time.sleep(0.2); print('done'); sys.exit(3)"
    result = run_measured([sys.executable, "-c", script], env={}, log=log)
    assert result.exit_code == 3
    assert result.wall_seconds >= 0.2
    assert result.peak_rss >= 96 * MIB
    assert result.cpu_seconds > 0
    assert log.read_text().splitlines()[-1] == "done"
    assert log.read_text().startswith(f"$ {sys.executable} -c")


def test_tree_size_counts_every_file_below_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one").write_bytes(b"x" * 5000)
    (tmp_path / "a" / "b" / "two").write_bytes(b"y" * 3)
    size = tree_size(tmp_path)
    assert (size.files, size.apparent_bytes) == (2, 5003)
    assert size.disk_bytes >= 4096


def _run(
    phase: str,
    tool: str,
    wall: float,
    cpu: float,
    rss: int,
    repository: int,
    added: int,
    startup: float = 0.0,
    round_number: int = 1,
) -> Run:
    measurement = Measurement(0, wall, cpu, 0.0, rss, 0.0)
    repo = TreeSize(10, repository, repository)
    return Run(phase, tool, round_number, 1, 10, 1000 * MIB, measurement, startup, repo, added)


RUNS = [
    _run(FULL, "coffer", 10, 15, 200, 900, 900),
    _run(FULL, "restic", 20, 30, 100, 1000, 1000),
    _run(INCREMENTAL, "coffer", 5, 8, 100, 950, 50),
    _run(INCREMENTAL, "restic", 1, 2, 100, 1100, 100),
    _run(REREAD, "coffer", 5, 8, 100, 950, 50),
    _run(REREAD, "restic", 10, 16, 50, 1100, 100),
]


def test_ratios_are_coffer_over_the_other_tool_phase_by_phase() -> None:
    found = {(ratio.phase, ratio.other): ratio for ratio in ratios(RUNS)}
    assert set(found) == {(FULL, "restic"), (INCREMENTAL, "restic"), (REREAD, "restic")}
    full = found[FULL, "restic"]
    assert (full.throughput, full.cpu, full.peak_rss, full.repository, full.added) == (2, 0.5, 2, 0.9, 0.9)
    assert found[INCREMENTAL, "restic"].throughput == pytest.approx(0.2)
    reread = found[REREAD, "restic"]
    assert (reread.throughput, reread.cpu, reread.peak_rss, reread.added) == (2, 0.5, 2, 0.5)


def test_the_report_has_a_row_per_run_and_per_ratio() -> None:
    text = markdown(RUNS)
    assert text.count("| coffer |") == 3
    assert "| full | restic | 2.00× | 2.00× | 0.50× | 2.00× | 0.90× | 0.90× |" in text
    assert "| incremental, re-read | restic | 2.00× | 2.00× | 0.50× | 2.00× |" in text


def test_throughput_ratios_are_net_of_each_tools_start_up_with_the_gross_ratio_beside() -> None:
    # Coffer: 10 s of which 2 start-up; restic: 20 s of which 0.5. Net 125 against 51.3 MiB/s.
    runs = [_run(FULL, "coffer", 10, 15, 200, 900, 900, 2.0), _run(FULL, "restic", 20, 30, 100, 1000, 1000, 0.5)]
    (ratio,) = ratios(runs)
    assert ratio.throughput == pytest.approx((1000 / 8) / (1000 / 19.5))
    assert ratio.gross_throughput == pytest.approx(2.0)
    text = markdown(runs)
    assert "| full | coffer | 1 | 1 | 1,000.0 | 10.0 | 100.0 | 2.00 | 125.0 |" in text
    assert "| full | restic | 2.44× | 2.00× |" in text


def test_a_restore_is_reported_and_compared_like_a_backup() -> None:
    runs = [_run(RESTORE, "coffer", 4, 6, 100, 900, 0), _run(RESTORE, "borg", 8, 12, 50, 1000, 0)]
    (ratio,) = ratios(runs)
    assert (ratio.phase, ratio.other, ratio.throughput, ratio.cpu) == (RESTORE, "borg", 2, 0.5)
    assert ratio.added is None  # a restore adds nothing to either repository
    assert "| restore | coffer | 1 | 1 | 1,000.0 | 4.0 | 250.0 | 0.00 | 250.0 |" in markdown(runs)


def test_each_tool_is_compared_by_its_best_round_and_every_round_is_listed() -> None:
    runs = [
        _run(FULL, "coffer", 10, 15, 200, 900, 900, round_number=1),
        _run(FULL, "restic", 25, 30, 100, 1000, 1000, round_number=1),
        _run(FULL, "coffer", 8, 14, 210, 900, 900, round_number=2),  # Coffer's best
        _run(FULL, "restic", 20, 28, 90, 1000, 1000, round_number=2),  # restic's best
    ]
    (ratio,) = ratios(runs)
    assert (ratio.throughput, ratio.cpu, ratio.peak_rss) == (2.5, 0.5, 210 / 90)
    text = markdown(runs)
    assert "| full | coffer | 1 | 1 |" in text and "| full | coffer | 2 | 1 |" in text
    assert "each tool's best round" in text


@pytest.fixture(scope="module")
def small_backup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("input") / "backup"
    generate(path, 16 * MIB, 3)
    return path


@pytest.mark.parametrize("name", list(TOOLS))
def test_each_tool_backs_up_rereads_deduplicates_and_restores(
    name: str, small_backup: Path, tmp_path: Path
) -> None:
    tool: Tool = TOOLS[name]
    if shutil.which(tool.executable) is None:
        pytest.skip(f"{name} is not installed (apt-get install -y restic borgbackup)")
    home = tmp_path / name
    tool.init(home, tmp_path / "init.log")
    sizes = []
    for snapshot, reread in (("first", False), ("second", True)):
        command = tool.backup_command(home, small_backup, snapshot, reread=reread)
        result = run_measured(command.argv, env=command.env, log=tmp_path / f"{snapshot}.log")
        assert result.exit_code == 0, (tmp_path / f"{snapshot}.log").read_text()
        sizes.append(tree_size(tool.repository(home)).apparent_bytes)
    assert sizes[0] > 12 * MIB  # mostly incompressible media, stored encrypted
    assert sizes[1] - sizes[0] < MIB  # the same input again: deduplicated
    target = tmp_path / "restored"
    target.mkdir()
    command = tool.restore_command(home, target, "second")
    result = run_measured(command.argv, env=command.env, log=tmp_path / "restore.log", cwd=command.cwd)
    assert result.exit_code == 0, (tmp_path / "restore.log").read_text()
    # Every tool lays the folder out its own way below the target; the Manifest.db comes back byte for byte.
    (manifest,) = target.rglob("Manifest.db")
    assert manifest.read_bytes() == (small_backup / "Manifest.db").read_bytes()
    assert tree_size(target).apparent_bytes >= tree_size(small_backup).apparent_bytes
    # The start-up the benchmark reports net of: a command that opens the repository and changes nothing.
    command = tool.startup_command(home)
    result = run_measured(command.argv, env=command.env, log=tmp_path / "startup.log", cwd=command.cwd)
    assert result.exit_code == 0, (tmp_path / "startup.log").read_text()
    assert tree_size(tool.repository(home)).apparent_bytes == sizes[1]


def test_a_missing_tool_is_reported_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UsageError, match="apt-get install -y restic borgbackup"):
        TOOLS["restic"].version()


def test_every_run_starts_with_nothing_dirty_and_what_it_reads_in_the_page_cache(tmp_path: Path) -> None:
    (tmp_path / "input" / "sub").mkdir(parents=True)
    (tmp_path / "input" / "sub" / "file").write_bytes(b"x" * 70_000)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "repo").write_bytes(b"y" * 5)
    dropped, read = same_start([tmp_path / "input", tmp_path / "home"])
    assert read == 70_005
    # Emptying the cache needs root; whether it happened is what the results file records.
    assert dropped == os.access("/proc/sys/vm/drop_caches", os.W_OK)
