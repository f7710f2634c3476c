"""What every fuzz harness shares: importing Coffer's parsers with atheris coverage instrumentation, and running
libFuzzer over a seed corpus.

A harness is run as `python tests/fuzz/fuzz_X.py [libFuzzer flags] NEW_CORPUS_DIR SEED_DIR`; tests/test_fuzz.py does
that for a bounded time. A harness returns normally for input that Coffer refuses with a `CofferError` (the
documented outcome for hostile input: one line and an exit code); any other exception escapes, which libFuzzer
reports as a crash and saves as `crash-<sha1>` under `-artifact_prefix`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def instrumented() -> atheris.import_hook.HookManager:
    """A context manager: `agent` modules (and plistlib, whose reader is what they parse with) imported inside it
    report coverage to libFuzzer."""
    return atheris.instrument_imports(include=["agent", "plistlib"])


def fuzz(test_one_input: Callable[[bytes], None]) -> None:
    """Hand control to libFuzzer with this process's command line (it exits when done)."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
