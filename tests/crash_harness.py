"""A deterministic crash campaign: one real `coffer` command killed at every one of its storage writes.

For an operation (a command line on a prepared repository) the harness first runs the command to
the end on a copy of the prepared workspace and counts its mutating storage calls (N). Then, for
every k = 1..N and both modes, it runs the command on a fresh copy through `crash_launcher.py`,
which kills the process (`os._exit(137)`, as `kill -9`) right *after* the k-th call landed or right
*before* it (a write that never happened), and checks what a user would meet:

1. the repository opens with the secrets that must still open it (the passphrase, the recovery
   key where relevant), and every snapshot the operation keeps is still listed;
2. `coffer check` passes — or passes after `coffer repair`;
3. the same command run again finishes, after which `check --read-data` passes and the snapshots
   are exactly those of the uninterrupted run: every snapshot complete before it exports
   byte-identical (matched by device and time, which a rotation keeps), new ones like the
   uninterrupted run's.

A rerun that a crashed process's lease blocks is told apart (column "lease"): the lease is
released with `coffer unlock` and the rerun tried again. (Leases know their owner, so on the same
host a dead holder's lease is taken over at once: the column should stay 0.) Results accumulate in `RESULTS`; `write_table` renders them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import ROOT, TEST_PASSPHRASE, CofferCli, CofferRun, tree_digest

from agent.archive.exporter import export_snapshot
from agent.keys.slots import Passphrase, Secret
from agent.repository.repository import Repository
from agent.storage.local import LocalStorage

LAUNCHER = Path(__file__).with_name("crash_launcher.py")
KILLED = 137
MODES = ("after", "before")
TABLE = ROOT / "test-artifacts" / "crash-table.md"
LEASE_BLOCKED = "run `coffer unlock`"  # what a lease the rerun cannot take over says

SnapshotKey = tuple[str, float]  # (device UDID, snapshot time): what a rotation keeps of a snapshot's identity


@dataclass
class Workspace:
    """One copy of a prepared repository with its host state and input files, and the `coffer` that runs on it."""

    root: Path
    cli: CofferCli
    facts: dict[str, Any]  # what the preparation learnt: recovery key, slot IDs, …

    def args(self, template: list[str]) -> list[str]:
        return [part.format(ws=self.root, **self.facts) for part in template]


@dataclass
class Operation:
    """One command to crash, and what must hold at each crash point."""

    name: str
    args: list[str]  # `{ws}` is the workspace folder, `{fact}` a fact of the preparation
    env: dict[str, str | None] = field(default_factory=dict)
    # Environments (secrets) that must open the repository at every crash point; the first one runs `check`.
    opens: Callable[[Workspace], list[dict[str, str | None]]] = lambda ws: [{}]
    # The command run again after a crash (default: the same one); returns its outcome.
    rerun: Callable[[Workspace, Operation], CofferRun] | None = None
    # Assertions on the finished state (after the rerun), beyond the common ones.
    finished: Callable[[Workspace, CofferRun], None] = lambda ws, run: None
    inline_rerun: bool = True  # the rerun in this process (False where the command needs this environment)
    # Top-level files of a new snapshot that differ between two runs of the command (a device's dated plists):
    # left out when new snapshots are compared with the uninterrupted run's.
    volatile: tuple[str, ...] = ()
    modes: tuple[str, ...] = MODES  # a slow command may be killed only after its writes
    secret: Secret = field(default_factory=lambda: Passphrase(TEST_PASSPHRASE))  # opens the finished repository


@dataclass
class Result:
    operation: str
    writes: int
    modes: tuple[str, ...] = MODES
    points: int = 0
    passed: int = 0
    repaired: int = 0
    lease: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # the clean run's mutating calls, in order


RESULTS: list[Result] = []


def recovery_env(ws: Workspace) -> dict[str, str | None]:
    return {"COFFER_PASSWORD": None, "COFFER_RECOVERY_KEY": ws.facts["recovery_key"]}


def copy_workspace(template: Workspace, root: Path, make_cli: Callable[[Path], CofferCli]) -> Workspace:
    shutil.copytree(template.root, root, symlinks=True)
    return Workspace(root, make_cli(root), dict(template.facts))


def launch(ws: Workspace, operation: Operation, crash: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The operation's command through the crash launcher."""
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *ws.args(operation.args)],
        env={**ws.cli.environment(operation.env), **crash},
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@dataclass(frozen=True)
class Digest:
    whole: str  # every file of the export
    content: str  # without the operation's volatile files


def snapshot_digests(ws: Workspace, secret: Secret, scratch: Path, volatile: tuple[str, ...]) -> dict[SnapshotKey, Digest]:
    """Every snapshot's export (what `coffer export` writes), hashed, by (device, time)."""
    repository = Repository.open(LocalStorage(ws.cli.repo), secret)
    digests = {}
    for entry in repository.snapshots():
        target = scratch / entry.snapshot_id
        export_snapshot(repository, entry.snapshot_id, target, categories=None, decrypt=False, progress=False)
        whole = tree_digest(target)
        for name in volatile:
            (target / name).unlink(missing_ok=True)
        digests[(entry.header.device.get("udid", ""), entry.header.time)] = Digest(whole, tree_digest(target))
        shutil.rmtree(target)
    return digests


def _secret_env(secret: Secret) -> dict[str, str | None]:
    if isinstance(secret, Passphrase):
        return {"COFFER_PASSWORD": secret.text}
    raise AssertionError(f"no environment for {secret!r}")


class Campaign:
    """Crash one operation at every write, on copies of a prepared workspace."""

    def __init__(self, operation: Operation, template: Workspace, work: Path, make_cli: Callable[[Path], CofferCli]):
        self.operation = operation
        self.template = template
        self.work = work
        self.make_cli = make_cli

    def run(self) -> Result:
        start = time.perf_counter()
        operation = self.operation
        before = snapshot_digests(self.template, Passphrase(TEST_PASSPHRASE), self.work / "exports", operation.volatile)
        clean = copy_workspace(self.template, self.work / "clean", self.make_cli)
        log = self.work / "clean.log"
        done = launch(clean, operation, {"CRASH_LOG": str(log)})
        assert done.returncode == 0, f"{operation.name}: the uninterrupted run failed:\n{done.stderr}"
        calls = log.read_text().splitlines() if log.exists() else []
        self.reference = snapshot_digests(clean, operation.secret, self.work / "exports", operation.volatile)
        self.before = before
        result = Result(operation.name, len(calls), calls=[c.split(" ", 1)[1] for c in calls])
        result.modes = operation.modes
        for k in range(1, len(calls) + 1):
            for mode in operation.modes:
                result.points += 1
                where = f"{operation.name}: killed {mode} write {k} ({result.calls[k - 1]})"
                try:
                    self._point(k, mode, result)
                except AssertionError as failure:
                    result.failures.append(f"{where}: {failure}")
                else:
                    result.passed += 1
        result.seconds = time.perf_counter() - start
        RESULTS.append(result)
        write_table()
        return result

    def _point(self, k: int, mode: str, result: Result) -> None:
        operation = self.operation
        ws = copy_workspace(self.template, self.work / f"{mode}-{k}", self.make_cli)
        crashed = launch(ws, operation, {"CRASH_AT": str(k), "CRASH_MODE": mode})
        assert crashed.returncode in (KILLED, 0), f"exit {crashed.returncode}: {crashed.stderr.strip()}"
        assert "Traceback" not in crashed.stderr, crashed.stderr

        # 1. It opens, and nothing the operation keeps went missing.
        kept = {key for key in self.before if key in self.reference}
        envs = operation.opens(ws)
        for env in envs:
            run = ws.cli.inline("--json", "snapshots", env=env, expect=None)
            assert run.returncode == 0, f"does not open with {sorted(env) or 'the passphrase'}: {run.stderr.strip()}"
        listed = self._keys(ws, envs[0])
        assert kept <= listed, f"snapshots vanished mid-operation: {sorted(kept - listed)}"

        # 2. `check` passes, or `repair` makes it pass.
        check = ws.cli.inline("--json", "check", env=envs[0], expect=None)
        if check.returncode != 0:
            ws.cli.inline("repair", env=envs[0], expect=None)
            check = ws.cli.inline("--json", "check", env=envs[0], expect=None)
            result.repaired += check.returncode == 0
        assert check.returncode == 0, f"check fails after the crash: {check.stderr.strip()}"

        # 3. The rerun finishes, and the result is the uninterrupted run's.
        rerun = self._rerun(ws, result)
        final = ws.cli.inline("--json", "check", "--read-data", env=_secret_env(operation.secret), expect=None)
        assert final.returncode == 0, f"check --read-data fails after the rerun: {final.stderr.strip()}"
        digests = snapshot_digests(ws, operation.secret, ws.root / "exports", operation.volatile)
        for key, digest in self.before.items():
            if key in self.reference:
                assert digests.get(key) == digest, f"snapshot {key} does not export as before"
            else:
                assert key not in digests, f"snapshot {key}, which the operation removes, is still there"
        assert {d.content for d in digests.values()} == {d.content for d in self.reference.values()}, (
            "the snapshots differ from the uninterrupted run's"
        )
        operation.finished(ws, rerun)
        shutil.rmtree(ws.root)

    def _keys(self, ws: Workspace, env: dict[str, str | None]) -> set[SnapshotKey]:
        secret = _env_secret(ws, env)
        return {(e.header.device.get("udid", ""), e.header.time) for e in Repository.open(LocalStorage(ws.cli.repo), secret).snapshots()}

    def _rerun(self, ws: Workspace, result: Result) -> CofferRun:
        operation = self.operation
        for attempt in range(2):
            if operation.rerun is not None:
                run = operation.rerun(ws, operation)
            elif operation.inline_rerun:
                run = ws.cli.inline(*ws.args(operation.args), env=operation.env, expect=None)
            else:
                run = ws.cli(*ws.args(operation.args), env=operation.env, expect=None)
            if run.returncode != 0 and LEASE_BLOCKED in run.stderr and attempt == 0:
                # The crashed process's lease (issue 15 point 2).
                result.lease += 1
                ws.cli.inline("unlock", expect=0)
                continue
            break
        assert run.returncode == 0, f"the rerun fails: {run.stderr.strip()}"
        return run


def _env_secret(ws: Workspace, env: dict[str, str | None]) -> Secret:
    from agent.keys import recovery_key
    from agent.keys.slots import RecoveryKey

    if env.get("COFFER_RECOVERY_KEY"):
        return RecoveryKey(recovery_key.parse_key(str(env["COFFER_RECOVERY_KEY"])))
    return Passphrase(str(env.get("COFFER_PASSWORD") or TEST_PASSPHRASE))


def table_lines() -> list[str]:
    lines = [
        "| operation | writes | killed | crash points | passed | repaired | lease | seconds |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in RESULTS:
        lines.append(
            f"| `{r.operation}` | {r.writes} | {' and '.join(r.modes)} | {r.points} | {r.passed} | {r.repaired} | "
            f"{r.lease} | {r.seconds:.0f} |"
        )
    lines.append(
        f"| **all** | {sum(r.writes for r in RESULTS)} | | {sum(r.points for r in RESULTS)} | "
        f"{sum(r.passed for r in RESULTS)} | {sum(r.repaired for r in RESULTS)} | {sum(r.lease for r in RESULTS)} | "
        f"{sum(r.seconds for r in RESULTS):.0f} |"
    )
    return lines


def write_table() -> None:
    TABLE.parent.mkdir(exist_ok=True)
    lines = [
        "# Crash points",
        "",
        "Each mutating storage call of each operation, killed (`os._exit(137)`) just after it and just before it. "
        "Passed: opens, `check` passes, the rerun finishes, `check --read-data` passes and every snapshot exports "
        "as in an uninterrupted run. Repaired: `check` passed only after `coffer repair`. Lease: the rerun was "
        "blocked by the killed process's lease until `coffer unlock` released it (leases know their owner, so "
        "this stays 0 on one host).",
        "",
        *table_lines(),
        "",
    ]
    for r in RESULTS:
        lines += ["", f"## `{r.operation}`: writes in order", "", *(f"{n}. `{c}`" for n, c in enumerate(r.calls, 1))]
        lines += [f"- FAILED {f}" for f in r.failures]
    TABLE.write_text("\n".join(lines) + "\n")


os.environ.setdefault("COFFER_KDF_TARGET_SECONDS", "0")  # opening in this process: cheap key derivation
