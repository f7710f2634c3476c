"""Progress that tells the truth: with `--json`, long commands stream restic-style status lines on stdout, one
phase at a time, then end with their summary object; every phase advances monotonically, reaches its total
and agrees with the bytes actually moved (a simulated device backup, an import, a check, a prune, a restore)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import CofferCli, coffer_cli, sample_library
from ios_helpers import DEVICE, build_backup

from agent.fleet.jobs import BackupProgress
from agent.sim.server import SimServer
from agent.storage.local import LocalStorage


def _stream(stdout: str) -> tuple[dict[str, list[dict[str, Any]]], Any]:
    """Status lines per phase and the summary; fails unless every stdout line is JSON and the last is the summary."""
    lines = stdout.splitlines()
    assert lines, "no output"
    documents = [json.loads(line) for line in lines]  # raises on anything that is not one JSON value per line
    assert all(line.startswith('{"message_type": "status", ') for line in lines[:-1])  # the type first, as restic
    *statuses, summary = documents
    assert all(isinstance(d, dict) and d.get("message_type") == "status" for d in statuses), statuses
    assert not (isinstance(summary, dict) and "message_type" in summary), summary
    phases: dict[str, list[dict[str, Any]]] = {}
    for status in statuses:
        phases.setdefault(status["phase"], []).append(status)
    return phases, summary


def _assert_honest(lines: list[dict[str, Any]]) -> int:
    """Bytes never go back; the last line has reached its total; returns the bytes counted."""
    done = [line["bytes_done"] for line in lines]
    assert done == sorted(done), done
    last = lines[-1]
    assert last["total_bytes"] == last["bytes_done"] and last["percent_done"] == 1.0, last
    assert last["seconds_remaining"] == 0 and last["bytes_per_second"] >= 0
    for line in lines:
        if line["total_bytes"] is not None:
            assert line["bytes_done"] <= line["total_bytes"], line
    return int(last["bytes_done"])


def _data_bytes(repo: Path) -> int:
    return sum(info.size for info in LocalStorage(repo).list("data/"))


def test_device_backup_and_restore_stream_status_lines(tmp_path: Path, sim: SimServer) -> None:
    cli = coffer_cli(tmp_path / "repo")
    cli.env.update({"USBMUXD_SOCKET_ADDRESS": sim.address, "HOME": str(tmp_path / "home"),
                    "COFFER_PAIR_RECORDS_DIR": str(tmp_path / "pair-records")})
    cli.init()
    device = sim.add_device(profile="small", seed=1602)
    run = cli("--json", "backup", "--udid", device.udid)
    phases, summary = _stream(run.stdout)
    assert summary["ok"] and summary["udid"] == device.udid
    assert {"receive", "ingest", "upload"} <= set(phases), set(phases)
    received = _assert_honest(phases["receive"])
    report = sim.device(device.udid).backups[-1]
    assert received == report.uploaded_bytes > 0  # what the device put on the wire
    assert _assert_honest(phases["upload"]) == _data_bytes(cli.repo)  # what reached storage
    stored_rows = sum(c["bytes"] for c in summary["categories"].values())
    assert 0 < _assert_honest(phases["ingest"]) <= stored_rows  # files that waited in staging, read once
    # The receive bar's total came from the device's own progress before the end.
    estimates = [line["total_bytes"] for line in phases["receive"][:-1] if line["total_bytes"]]
    assert all(e >= line for e, line in zip(estimates, (x["bytes_done"] for x in phases["receive"]), strict=False))

    target = sim.add_device(profile="tiny", seed=1603)
    restore = cli("--json", "restore", summary["snapshot"], "--to-udid", target.udid, "--yes")
    phases, result = _stream(restore.stdout)
    assert result["target"] == target.udid
    sent = _assert_honest(phases["restore"])
    assert sent == sim.device(target.udid).restores[-1].restored_bytes > 0  # what the device asked for and got
    assert sent <= result["bytes"]  # the plan: the device leaves system files out


def test_import_check_and_prune_stream_only_json_lines(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    folder = build_backup(tmp_path / "backup" / DEVICE.udid, sample_library(16)).path
    phases, summary = _stream(coffer("--json", "import", folder).stdout)
    assert _assert_honest(phases["import"]) == sum(c["bytes"] for c in summary["categories"].values())

    phases, report = _stream(coffer("--json", "check", "--read-data").stdout)
    assert report["ok"] and _assert_honest(phases["check"]) == _data_bytes(coffer.repo)

    phases, pruned = _stream(coffer("--json", "prune", "--grace", "0").stdout)
    assert all("message" in line for line in phases.get("prune", [])) and "packs_deleted" in pruned

    # Commands without status lines still print one (indented) document.
    assert isinstance(json.loads(coffer("--json", "snapshots").stdout), list)


def test_fleet_percent_agrees_with_its_own_bytes_and_expected_bytes() -> None:
    # The reported case: 600 of an expected 1000 bytes while the device said 21 %: both figures must tell one story.
    for bytes_done, expected, device_percent in ((600, 1000, 21.0), (600, 1000, None), (50, None, 55.0), (10, None, 5.0)):
        document = BackupProgress("transferring", bytes_done, 3, expected, device_percent).to_json()
        if document["expected_bytes"] is None:
            assert document["percent"] is None
            continue
        assert document["expected_bytes"] >= bytes_done
        assert document["percent"] == round(min(bytes_done / document["expected_bytes"], 0.99) * 100, 1), document
    committing = BackupProgress("committing", 700, 3, 1000, 95.0).to_json()
    assert committing["percent"] == 100.0 and committing["expected_bytes"] == 700
