"""The project's own coverage-guided fuzzing (issue 15, "Fuzzing in the repository"): each atheris harness of
tests/fuzz/ runs in a subprocess for a bounded time, starting from its committed seed corpus, and must end
without an uncaught exception other than the documented CofferError family (the harnesses let anything else
escape, which libFuzzer reports as a crash and saves). Run time, case counts and coverage are printed in the
terminal summary.

The total budget for all harnesses is COFFER_FUZZ_SECONDS (default 120 s), shared equally. libFuzzer's seed is
COFFER_FUZZ_SEED (default 1): a CI gate explores the same inputs on every run, so it cannot fail at random
on a finding that has nothing to do with the change under test; `COFFER_FUZZ_SEED=0` (a random seed) and a
longer budget are for hunting. A crash prints the
saved input; `python tests/fuzz/fuzz_<name>.py <that file>` replays it. Each crash found so far is kept in
tests/fuzz/crashes/<harness>-<what> (replayed here through its harness) and has a regression test through the
CLI in tests/test_hostile_inputs.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent / "fuzz"
HARNESSES = ("plist", "bplist", "mbfile", "manifest_db", "folder")
TOTAL_SECONDS = float(os.environ.get("COFFER_FUZZ_SECONDS", "120"))
SEED = int(os.environ.get("COFFER_FUZZ_SEED", "1"))


@dataclass
class FuzzRun:
    harness: str
    seconds: float
    cases: int
    coverage: int
    corpus: int


_runs: list[FuzzRun] = []


class _Summary:
    """Adds the fuzzing table to pytest's terminal summary (shown with -q too)."""

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not _runs:
            return
        terminalreporter.section("fuzzing (atheris)")
        for run in _runs:
            terminalreporter.write_line(
                f"{run.harness:<12} {run.cases:>9} cases in {run.seconds:5.1f} s "
                f"({run.cases / max(run.seconds, 0.001):,.0f}/s), coverage {run.coverage} edges, "
                f"corpus {run.corpus} inputs, no crash"
            )
        total = sum(run.seconds for run in _runs)
        terminalreporter.write_line(f"total {sum(run.cases for run in _runs)} cases in {total:.1f} s")


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> None:
    if not request.config.pluginmanager.has_plugin("coffer-fuzz-summary"):
        request.config.pluginmanager.register(_Summary(), "coffer-fuzz-summary")


def _last(pattern: str, text: str) -> int:
    found = re.findall(pattern, text)
    return int(found[-1]) if found else 0


@pytest.mark.slow
@pytest.mark.parametrize("harness", HARNESSES)
def test_fuzz_harness_finds_no_crash(harness: str, tmp_path: Path) -> None:
    seconds = max(1, int(TOTAL_SECONDS / len(HARNESSES)))
    seeds = FUZZ / "corpus" / harness
    assert any(seeds.iterdir()), f"no seed corpus in {seeds}"
    new_inputs = tmp_path / "new"
    artifacts = tmp_path / "artifacts"
    new_inputs.mkdir()
    artifacts.mkdir()
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="coffer-fuzz-", dir=shm) as work:
        env = {**os.environ, "COFFER_FUZZ_WORK": work, "PYTHONPATH": str(FUZZ.parents[1])}
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(FUZZ / f"fuzz_{harness}.py"), f"-max_total_time={seconds}", f"-seed={SEED}", "-timeout=30",
             f"-artifact_prefix={artifacts}/", "-print_final_stats=1", str(new_inputs), str(seeds)],
            env=env, cwd=FUZZ.parents[1], stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=seconds + 300, check=False,
        )
        elapsed = time.perf_counter() - start
    crashes = sorted(artifacts.iterdir())
    if done.returncode != 0 or crashes or "Uncaught Python exception" in done.stderr:
        saved = "\n".join(f"{path.name}: {path.read_bytes()!r}" for path in crashes)
        pytest.fail(f"fuzz_{harness} crashed (exit {done.returncode}):\n{done.stderr[-6000:]}\n{saved}")
    cases = _last(r"stat::number_of_executed_units:\s+(\d+)", done.stderr) or _last(r"Done (\d+) runs", done.stderr)
    assert cases > 0, done.stderr[-3000:]
    _runs.append(FuzzRun(harness, elapsed, cases, _last(r"cov: (\d+)", done.stderr),
                         len(list(seeds.iterdir())) + len(list(new_inputs.iterdir()))))


@pytest.mark.parametrize("crash", sorted((FUZZ / "crashes").iterdir()), ids=lambda path: path.name)
def test_every_crash_found_so_far_replays_clean(crash: Path) -> None:
    harness = next(name for name in HARNESSES if crash.name.startswith(f"{name}-"))
    done = subprocess.run([sys.executable, str(FUZZ / f"fuzz_{harness}.py"), str(crash)], cwd=FUZZ.parents[1],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and "Uncaught" not in done.stderr, done.stderr[-3000:]
