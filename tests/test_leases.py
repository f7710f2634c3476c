"""Leases that know their owner: a killed maintenance command never blocks the next one.

`coffer prune` and `coffer forget --prune` are killed with SIGKILL while they hold the exclusive lease (the
lease object is seen in storage first); an immediate rerun takes the lease over with a note naming the dead
process, and finishes. `check` notes a stale lease without failing; `unlock` removes it and says what it
removed. A live holder (this test process) blocks prune with a message naming host and process; storage
learns nothing from a lease (sealed, one fixed size).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from conftest import CofferCli, sample_library
from ios_helpers import build_backup

from agent.repository import locks
from agent.storage.local import LocalStorage

UDID = "00008030-001A2B3C4D5E6F70"
LEASE = "locks/exclusive"


@pytest.fixture
def forgotten(coffer: CofferCli, tmp_path: Path) -> CofferCli:
    """A repository with packs to reclaim: three snapshots of one device, all but the last forgettable."""
    coffer.init()
    coffer.set_pack_sizes(64 << 10, 128 << 10)
    for seed in range(3):
        coffer.inline("import", build_backup(tmp_path / f"b{seed}" / UDID, sample_library(seed)).path)
    return coffer


def kill_while_leased(coffer: CofferCli, *args: str) -> None:
    """Start `coffer ARGS…`, SIGKILL it as soon as its lease is in storage; the lease stays behind."""
    lease = coffer.repo / LEASE
    process = coffer.start(*args)
    deadline = time.monotonic() + 60
    while not lease.exists():
        assert process.poll() is None, f"coffer {' '.join(args)} ended before it took the lease"
        assert time.monotonic() < deadline
        time.sleep(0.001)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert lease.exists(), "the killed process left its lease"


@pytest.mark.parametrize("command", [("prune", "--grace", "0"), ("forget", "--keep-last", "1", "--prune", "--grace", "0")])
def test_a_killed_maintenance_command_does_not_block_the_rerun(forgotten: CofferCli, command: tuple[str, ...]) -> None:
    forgotten.inline("forget", "--keep-last", "2")
    kill_while_leased(forgotten, *command)

    check = forgotten("--json", "check")
    stale = [w for w in check.json()["warnings"] if LEASE in w]
    assert stale and "no longer running" in stale[0], check.stdout

    rerun = forgotten(*command)
    assert "took over" in rerun.stderr and "no longer running" in rerun.stderr, rerun.stderr
    assert not (forgotten.repo / LEASE).exists()
    forgotten("check", "--read-data")


def test_unlock_removes_stale_leases_and_says_so(forgotten: CofferCli) -> None:
    kill_while_leased(forgotten, "prune", "--grace", "0")
    run = forgotten("--json", "unlock")
    removed = run.json()["removed"]
    assert [lease["name"] for lease in removed] == [LEASE]
    assert removed[0]["owner"]["host"] == socket.gethostname() and removed[0]["stale"]
    assert not (forgotten.repo / LEASE).exists()
    assert forgotten("unlock").stdout.strip().endswith("0 leases removed, 0 kept")


def test_a_live_holder_blocks_and_is_named_until_remove_all(forgotten: CofferCli) -> None:
    repository = forgotten.open()
    with locks.exclusive(repository, "prune"):
        run = forgotten("prune", expect=1)
        assert f"process {os.getpid()} on host {socket.gethostname()}" in run.stderr, run.stderr
        assert not forgotten("--json", "check").json()["warnings"], "a live lease is not stale"
        assert forgotten("--json", "unlock").json()["kept"][0]["name"] == LEASE
        assert forgotten("--json", "unlock", "--remove-all").json()["removed"][0]["name"] == LEASE
    forgotten("prune")


def test_leases_are_sealed_and_of_one_size(forgotten: CofferCli, monkeypatch: pytest.MonkeyPatch) -> None:
    # A host name long enough that sealed bytes cannot hold it by chance (this machine's "vm" did: CI failed
    # on two random bytes); a PID's few digits would be as weak, so the operation name stands in for them.
    host = "coffer-lease-test-host-3f9c2a7e51d04b86"
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    repository = forgotten.open()
    operation = "a much longer operation name"
    with locks.exclusive(repository, operation), locks.running_backup(repository):
        stored = {info.name: info.size for info in LocalStorage(forgotten.repo).list("locks/")}
        contents = b"".join((forgotten.repo / name).read_bytes() for name in stored)
        owners = [lease.owner.host if lease.owner else None for lease in locks.leases(repository)]
    assert owners == [host, host]  # the leases do name the host, sealed
    assert len(stored) == 2 and len(set(stored.values())) == 1
    assert host.encode() not in contents and operation.encode() not in contents


def test_a_killed_key_rotate_does_not_block_the_rerun(forgotten: CofferCli) -> None:
    slots_before = {info.name for info in LocalStorage(forgotten.repo).list("keys/")}
    kill_while_leased(forgotten, "key", "rotate")
    # Killed while it held the lease, before its first write (the lease is the rerun's only obstacle here;
    # a rotate killed between its writes is the crash harness's subject).
    assert {info.name for info in LocalStorage(forgotten.repo).list("keys/")} == slots_before
    rerun = forgotten("key", "rotate")
    assert "took over" in rerun.stderr, rerun.stderr
    forgotten("check")
