"""Shared fixtures: the real `coffer` command against a fresh repository, and the helpers that go with it
(opening that repository in this process, hashing a folder tree, a storage that records its reads, sample
backup content).

`coffer(...)` runs `python -m agent` in a subprocess with a clean environment: no `COFFER_*` variable of the
caller leaks in, `COFFER_KDF_TARGET_SECONDS=0` keeps key derivation cheap, `COFFER_PASSWORD` is
`TEST_PASSPHRASE`, `COFFER_REPOSITORY` points at a new, not yet initialised folder under the test's
`tmp_path`, and host-local state (snapshot ledger, caches, staging) lives next to it. `coffer.inline(...)`
runs the same `agent.cli.main` in this process with that environment, for setup steps and long series
where a process start per call would dominate.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ios_helpers import Entry, directory, symlink
from s3server import s3, s3_coffer, s3_server  # noqa: F401 - fixtures of the S3 tests

from agent.cli import main
from agent.keys.slots import Passphrase, Secret
from agent.repository.config import PackSettings
from agent.repository.repository import Repository
from agent.sim.device import SimulatedDevice
from agent.sim.server import SimServer
from agent.storage.local import LocalStorage

os.environ.setdefault("COFFER_INSECURE_TEST_KDF", "1")  # Argon2id at 8 MiB / 1 pass: thousands of unlocks per run

ROOT = Path(__file__).resolve().parent.parent
TEST_PASSPHRASE = "correct battery staple"


@dataclass
class CofferRun:
    """The outcome of one `coffer` invocation."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        """The JSON document; after status lines (`--json backup`, `import`, …: docs/cli.md), the summary."""
        lines = self.stdout.splitlines()
        if len(lines) > 1 and lines[0].startswith('{"message_type": "status",'):
            return json.loads(lines[-1])
        return json.loads(self.stdout)

    def describe(self) -> str:
        return (
            f"coffer {' '.join(self.args)} -> {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}"
        )


class CofferCli:
    """Runs the `coffer` command line against one repository (`COFFER_REPOSITORY`)."""

    def __init__(self, repo: Path, env: dict[str, str]) -> None:
        self.repo = repo
        self.env = env

    def environment(self, extra: dict[str, str | None] | None = None) -> dict[str, str]:
        """The subprocess environment; a value of None in `extra` removes that variable."""
        env = dict(self.env)
        for name, value in (extra or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def __call__(
        self,
        *args: str | Path,
        expect: int | None = 0,
        env: dict[str, str | None] | None = None,
        timeout: float = 300,
    ) -> CofferRun:
        """Run `coffer ARGS…`; assert the exit code is `expect` unless it is None."""
        argv = [str(a) for a in args]
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "agent", *argv],
            env=self.environment(env),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return self._checked(
            CofferRun(argv, done.returncode, done.stdout, done.stderr, time.perf_counter() - start), expect
        )

    def inline(
        self, *args: str | Path, expect: int | None = 0, env: dict[str, str | None] | None = None
    ) -> CofferRun:
        """Run `coffer ARGS…` in this process: the same code path without a process start, for fast setup."""
        argv = [str(a) for a in args]
        stdout, stderr = io.StringIO(), io.StringIO()
        start = time.perf_counter()
        sigterm = signal.getsignal(signal.SIGTERM)  # main() installs its own handler
        try:
            with pytest.MonkeyPatch.context() as patch, redirect_stdout(stdout), redirect_stderr(stderr):
                for name in os.environ:
                    if name.startswith("COFFER_"):
                        patch.delenv(name)
                for name, value in self.environment(env).items():
                    if name.startswith("COFFER_"):
                        patch.setenv(name, value)
                code = main(argv)
        finally:
            signal.signal(signal.SIGTERM, sigterm)
        return self._checked(
            CofferRun(argv, code, stdout.getvalue(), stderr.getvalue(), time.perf_counter() - start), expect
        )

    def start(self, *args: str | Path, env: dict[str, str | None] | None = None) -> subprocess.Popen[bytes]:
        """Start `coffer ARGS…` in the background (output discarded), e.g. to kill it midway."""
        return subprocess.Popen(
            [sys.executable, "-m", "agent", *[str(a) for a in args]],
            env=self.environment(env),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @staticmethod
    def _checked(run: CofferRun, expect: int | None) -> CofferRun:
        if expect is not None:
            assert run.returncode == expect, run.describe()
        assert "Traceback" not in run.stderr, run.describe()
        return run

    def init(self) -> dict[str, Any]:
        """`coffer --json init` (in this process); returns its document (with `recovery_key`)."""
        return self.inline("--json", "init").json()

    def open(self, secret: Secret | None = None) -> Repository:
        """The repository opened in this process (with the test passphrase unless told otherwise)."""
        return Repository.open(LocalStorage(self.repo), secret or Passphrase(TEST_PASSPHRASE))

    def set_pack_sizes(self, min_size: int, max_size: int) -> None:
        """Rewrite the (authenticated) config with small packs, so little data spans several packs."""
        repository = self.open()
        repository.config.packs = PackSettings(min_size, max_size)
        repository.write_config()


def coffer_cli(repo: Path) -> CofferCli:
    """A `coffer` runner for the repository at `repo` (for module-scoped fixtures; tests use `coffer`)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("COFFER_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "COFFER_KDF_TARGET_SECONDS": "0",
            "COFFER_INSECURE_TEST_KDF": "1",
            "COFFER_PASSWORD": TEST_PASSPHRASE,
            "COFFER_REPOSITORY": str(repo),
            **host_directories(repo.parent / f"{repo.name}-host"),
        }
    )
    return CofferCli(repo, env)


def runs_without_the_gil(call: Callable[[], Any]) -> Any:
    """Run `call` on a thread with preemption switched off; assert the main thread got the GIL before the call
    ended, which only a call that released it allows. Returns the call's result."""
    started = threading.Event()
    results: list[Any] = []

    def run() -> None:
        started.set()
        results.append(call())

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1000)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        started.wait()
        ran_during_call = not results
        thread.join()
    finally:
        sys.setswitchinterval(switch_interval)
    assert ran_during_call, "the main thread did not run while the call was in progress: it held the GIL"
    assert results, "the call failed"
    return results[0]


def usb_cli(tmp_path: Path, sim: SimServer) -> CofferCli:
    """`coffer` on a fresh initialised repository at `tmp_path / "repo"`, talking to the simulator `sim`, with
    its home, host-local state, staging and pair records under `tmp_path` (as a fresh host would have them)."""
    cli = coffer_cli(tmp_path / "repo")
    cli.env.update(
        {
            "USBMUXD_SOCKET_ADDRESS": sim.address,
            "HOME": str(tmp_path / "home"),
            "COFFER_STATE_DIR": str(tmp_path / "host-state"),
            "COFFER_STAGING_DIR": str(tmp_path / "staging"),
            "COFFER_PAIR_RECORDS_DIR": str(tmp_path / "pair-records"),
        }
    )
    cli.init()
    return cli


def host_directories(root: Path) -> dict[str, str]:
    """`COFFER_*_DIR` variables that keep host-local state, caches and staging under `root`."""
    return {f"COFFER_{kind.upper()}_DIR": str(root / kind) for kind in ("state", "cache", "staging")}


@pytest.fixture(scope="session", autouse=True)
def isolated_host_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Coffer code run in the test process keeps its host-local files in a temporary folder, never in ~."""
    root = tmp_path_factory.mktemp("host")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in host_directories(root).items():
            patch.setenv(name, value)
        yield root


@pytest.fixture
def runs() -> Iterator[list[Any]]:
    """Fleet daemons a test started (tests/fleet_harness.py `FleetRun`); killed at the end if one is left running."""
    started: list[Any] = []
    yield started
    for run in started:
        run.kill()


@pytest.fixture
def coffer(tmp_path: Path) -> CofferCli:
    """The `coffer` command on a fresh, not yet initialised repository at `tmp_path / "repo"`."""
    return coffer_cli(tmp_path / "repo")


def tree_digest(root: Path) -> str:
    """One hash of every file's name and bytes under `root` (symlinks by target): equal trees, equal hashes."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix().encode()
        if path.is_symlink():
            digest.update(b"L" + relative + b"\0" + os.readlink(path).encode() + b"\0")
        elif path.is_file():
            digest.update(b"F" + relative + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        else:
            digest.update(b"D" + relative + b"\0")
    return digest.hexdigest()


def iter_objects(repo: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every object a local repository stores."""
    storage = LocalStorage(repo)
    for info in storage.list():
        yield info.name, storage.get(info.name)


class RecordingStorage(LocalStorage):
    """A real local storage that remembers the name of every object read (whole or by range)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def get(self, name: str) -> bytes:
        self.reads.append(name)
        return super().get(name)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        self.reads.append(name)
        return super().get_range(name, offset, length)

    def get_range_writable(self, name: str, offset: int, length: int) -> bytearray:
        self.reads.append(name)
        return super().get_range_writable(name, offset, length)


def sample_library(seed: int = 0) -> tuple[Entry, ...]:
    """About 6 MB of backup rows across categories, reproducible from `seed`: incompressible photos and a
    video, SQLite-named databases, compressible text, an empty file, a 16-byte multiple, directories and a
    symlink."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 9)).hex() for _ in range(500)]

    def text(size: int) -> bytes:
        return " ".join(rng.choice(words) for _ in range(size // 8)).encode()[:size]

    return (
        directory("HomeDomain", ""),
        directory("HomeDomain", "Library"),
        directory("HomeDomain", "Library/SMS"),
        directory("CameraRollDomain", "Media/DCIM/100APPLE"),
        *(
            Entry(
                "CameraRollDomain",
                f"Media/DCIM/100APPLE/IMG_{n:04d}.HEIC",
                rng.randbytes(rng.randint(300_000, 900_000)),
            )
            for n in range(1, 6)
        ),
        Entry("CameraRollDomain", "Media/DCIM/100APPLE/IMG_0006.MOV", rng.randbytes(2_500_000)),
        Entry("CameraRollDomain", "Media/PhotoData/Photos.sqlite", b"SQLite format 3\x00" + text(300_000)),
        Entry("HomeDomain", "Library/SMS/sms.db", b"SQLite format 3\x00" + text(400_000)),
        Entry("MediaDomain", "Library/SMS/Attachments/0a/10/IMG_2001.jpeg", rng.randbytes(250_000)),
        Entry("AppDomainGroup-group.com.apple.notes", "NoteStore.sqlite", text(120_000)),
        Entry("HomeDomain", "Library/AddressBook/AddressBook.sqlitedb", text(90_000)),
        Entry("HomeDomain", "Library/Preferences/com.apple.springboard.plist", text(5_000)),
        Entry("HomeDomain", "Library/Preferences/empty.plist", b""),
        Entry("HomeDomain", "Library/Notes/sixteen.txt", b"0123456789abcdef" * 4),
        Entry("AppDomain-com.example.chat", "Documents/history.log", text(600_000)),
        Entry("AppDomain-com.example.chat", "Documents/blob.bin", rng.randbytes(700_000)),
        Entry("KeychainDomain", "keychain-backup.plist", text(3_000), protection_class=11),
        symlink("HomeDomain", "Library/Links/latest", "../SMS/sms.db"),
    )


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimServer]:
    """A simulated iPhone host (usbmuxd on 127.0.0.1) for one test; modules may define a wider-scoped one."""
    with SimServer(tmp_path / "sim") as server:
        yield server


def unencrypted_view(device: SimulatedDevice) -> dict[str, str]:
    """What an unencrypted backup of `device` holds: everything but the encrypted-only files."""
    return device.filesystem.snapshot_digest(include_encrypted_only=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The crash harness's table (operation × crash points × passed), when its tests ran."""
    harness = sys.modules.get("crash_harness")
    if harness is not None and harness.RESULTS:
        terminalreporter.section("crash points")
        for line in harness.table_lines():
            terminalreporter.write_line(line)
