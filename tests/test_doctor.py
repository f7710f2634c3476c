"""`coffer doctor` against the simulated iPhone: each check failing on purpose, with its line and fix.

Runs in this process (`coffer.inline`) for speed; the simulator serves usbmuxd on a real socket from its own
thread, and USBMUXD_SOCKET_ADDRESS points the doctor at it.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CofferCli

from agent.sim.control import SimControl
from agent.sim.server import SimServer


@pytest.fixture
def doctor(coffer: CofferCli, sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CofferCli:
    monkeypatch.setenv("USBMUXD_SOCKET_ADDRESS", sim.address)
    coffer.env.update({"COFFER_PAIR_RECORDS_DIR": str(tmp_path / "pair-records"), "COFFER_TRUST_TIMEOUT": "0.5"})
    coffer.init()
    return coffer


def _checks(cli: CofferCli, *args: str, expect: int = 0, env: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    run = cli.inline("--json", "doctor", *args, expect=expect, env=env)
    document = run.json()
    assert document["ok"] is (expect == 0)
    if expect:
        failed = [c for c in document["checks"] if c["status"] == "failed"]
        assert run.stderr.startswith(f"coffer: {len(failed)} of {len(document['checks'])} checks failed: ")
    return list(document["checks"])


def _one(checks: list[dict[str, Any]], name: str, udid: str | None = None) -> dict[str, Any]:
    found = [c for c in checks if c["check"] == name and (udid is None or c["udid"] == udid)]
    assert len(found) == 1, (name, checks)
    return found[0]


def test_a_healthy_setup_passes_and_encryption_off_is_only_a_warning(doctor: CofferCli, sim: SimServer) -> None:
    udid = sim.add_device(seed=61).udid
    checks = _checks(doctor)
    statuses = {(c["check"], c["udid"]): c["status"] for c in checks}
    assert statuses == {
        ("usbmuxd", None): "ok", ("trust", udid): "ok", ("encryption", udid): "warning",
        ("device space", udid): "ok", ("clock", udid): "ok", ("host space", udid): "ok",
        ("repository", None): "ok", ("clock", None): "ok", ("repository space", None): "ok",
    }
    assert "--enable-device-encryption" in _one(checks, "encryption")["fix"]
    assert _one(checks, "device space")["values"]["expected_backup_bytes"] > 0
    text = doctor.inline("doctor").stdout.splitlines()  # one line per check, the fix on the line
    assert len(text) == len(checks) and text[0].startswith("ok    usbmuxd: reachable at ")
    assert any(line.startswith("warn  encryption: ") and "(fix: coffer backup" in line for line in text)


def test_an_untrusted_device_fails_with_tap_trust(doctor: CofferCli, sim: SimServer) -> None:
    udid = sim.add_device(seed=62, trusted=False).udid
    trust = _one(_checks(doctor, expect=1), "trust", udid)
    assert trust["status"] == "failed" and "does not trust this computer" in trust["message"]
    assert "tap Trust" in trust["fix"]


def test_an_unreachable_usbmuxd_fails(doctor: CofferCli, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{unused.getsockname()[1]}"  # bound, not listening: connections are refused
        monkeypatch.setenv("USBMUXD_SOCKET_ADDRESS", address)
        checks = _checks(doctor, expect=1)
    usbmuxd = _one(checks, "usbmuxd")
    assert usbmuxd["status"] == "failed" and address in usbmuxd["message"] and "usbmuxd" in usbmuxd["fix"]
    assert _one(checks, "repository")["status"] == "ok"  # the other checks still ran


def test_a_wrong_passphrase_fails_the_repository_check(doctor: CofferCli) -> None:
    check = _one(_checks(doctor, expect=1, env={"COFFER_PASSWORD": "not the passphrase"}), "repository")
    assert check["status"] == "failed" and str(doctor.repo) in check["message"] and "passphrase" in check["fix"]


def test_a_missing_repository_path_fails(doctor: CofferCli, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "repo"
    check = _one(_checks(doctor, expect=1, env={"COFFER_REPOSITORY": str(missing)}), "repository")
    assert check["status"] == "failed" and str(missing) in check["message"] and "coffer init" in check["fix"]


def test_too_little_host_space_fails(doctor: CofferCli, sim: SimServer) -> None:
    """The staging folder's real free space (statvfs) against what a backup needs plus the headroom kept free:
    a headroom beyond any disk makes every real file system too small."""
    udid = sim.add_device(seed=63).udid
    checks = _checks(doctor, "--headroom", "1000000T", expect=1)
    host = _one(checks, "host space", udid)
    assert host["status"] == "failed" and host["values"]["free"] < host["values"]["needed"]
    assert "COFFER_STAGING_DIR" in host["fix"] and _one(checks, "repository space")["status"] == "failed"


def test_a_device_reporting_little_free_space_fails(doctor: CofferCli, sim: SimServer) -> None:
    udid = sim.add_device(seed=64).udid
    assert sim.control_address is not None
    with SimControl(sim.control_address) as control:
        control.free_space(udid, 10_000_000)
    check = _one(_checks(doctor, expect=1), "device space", udid)
    assert check["status"] == "failed" and check["values"]["available"] == 10_000_000
    assert "iPhone Storage" in check["fix"]


def test_a_device_clock_far_from_the_hosts_fails(doctor: CofferCli, sim: SimServer) -> None:
    udid = sim.add_device(seed=65).udid
    with SimControl(sim.control_address or "") as control:
        control.clock(udid, 2 * 3600)
    check = _one(_checks(doctor, expect=1), "clock", udid)
    assert check["status"] == "failed" and "2.0 h behind device" in check["message"]
    assert abs(check["values"]["skew_seconds"] + 7200) < 60 and "network time" in check["fix"]


def test_storage_timestamps_in_the_hosts_future_fail_the_clock_check(doctor: CofferCli) -> None:
    """The storage's own modification times (an S3 provider's clock) are the reference without a device."""
    future = time.time() + 3 * 86400
    os.utime(doctor.repo / "config", (future, future))
    check = _one(_checks(doctor, expect=1), "clock", None)
    assert check["status"] == "failed" and "3.0 d behind the storage at" in check["message"]


def test_a_device_asked_for_that_is_not_plugged_in_fails(doctor: CofferCli, sim: SimServer) -> None:
    udid = sim.add_device(seed=66, plugged=False).udid
    check = _one(_checks(doctor, "--udid", udid, expect=1), "trust", udid)
    assert check["message"] == f"device {udid} is not connected" and "data cable" in check["fix"]
