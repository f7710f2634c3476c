"""`--trace FILE` and `coffer sim --replay FILE`: what a trace holds (and never holds), and that a recorded
trace played back by the simulator gives the same Coffer result.

The recorded traces are in tests/traces/ (made by tests/traces/record_traces.py from real runs against the
simulator). A replay makes up contents of the recorded sizes (agent.sim.replay), so a successful backup
replayed is one Coffer stores and `check --read-data` verifies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, CofferCli

from agent.device.trace import LAYOUT_NAMES
from agent.ios.records import file_id_for
from agent.sim.content import FileKind
from agent.sim.device import SimulatedDevice
from agent.sim.device_paths import device_path
from agent.sim.replay import RecordedTrace, install
from agent.sim.server import SimServer

TRACES = ROOT / "tests" / "traces"


@pytest.fixture
def usb(coffer: CofferCli, sim: SimServer, tmp_path: Path) -> CofferCli:
    coffer.env.update({"USBMUXD_SOCKET_ADDRESS": sim.address, "COFFER_PAIR_RECORDS_DIR": str(tmp_path / "pair-records")})
    coffer.init()
    return coffer


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _replaying(sim: SimServer, name: str, seed: int = 40) -> tuple[SimulatedDevice, RecordedTrace]:
    trace = RecordedTrace.load(TRACES / name)
    device = sim.add_device(profile="tiny", seed=seed, plugged=False)
    install(device, trace)
    sim.plug(device.udid)
    return device, trace


def _secrets_of(device: SimulatedDevice) -> dict[str, bytes]:
    """Everything that must not appear in a trace of `device`: identities, file names, contents."""
    hardware = device.hardware
    found = {
        "udid": device.udid, "serial": hardware.serial_number, "name": device.name, "imei": hardware.imei,
        "ecid": str(hardware.unique_chip_id), "wifi": hardware.wifi_address, "bluetooth": hardware.bluetooth_address,
    }
    secrets = {label: value.encode() for label, value in found.items()}
    for f in device.filesystem.files():
        if f.kind is not FileKind.FILE:
            continue
        base = f.relative_path.rsplit("/", 1)[-1]
        if len(base) >= 6 and base not in LAYOUT_NAMES:
            secrets[f"name {f.key}"] = base.encode()
        secrets[f"path {f.key}"] = f.relative_path.encode()
        secrets[f"device path {f.key}"] = device_path(device.udid, f.domain, f.relative_path).encode()
        secrets[f"fileID {f.key}"] = file_id_for(f.domain, f.relative_path).encode()
        content = b"".join(device.filesystem.read(f))
        if len(content) >= 32:
            secrets[f"content {f.key}"] = content[len(content) // 2 : len(content) // 2 + 32]
            secrets[f"content hex {f.key}"] = content[:16].hex().encode()
    return secrets


def test_a_trace_holds_no_content_name_udid_or_serial(usb: CofferCli, sim: SimServer, tmp_path: Path) -> None:
    device = sim.add_device(profile="tiny", seed=31)
    traces = {command: tmp_path / f"{command}.jsonl" for command in ("backup", "devices", "restore")}
    usb("--json", "backup", "--trace", traces["backup"])
    usb("--json", "devices", "--trace", traces["devices"])
    usb("restore", "latest", "--to-udid", device.udid, "--yes", "--no-reboot", "--trace", traces["restore"])
    secrets = _secrets_of(device)
    assert sum(label.startswith("content") for label in secrets) > 20
    for command, path in traces.items():
        data = path.read_bytes()
        leaked = [label for label, value in secrets.items() if value in data]
        assert leaked == [], f"{command} trace shows {leaked[:5]}"
    # …and still says what happened: every file the device sent, with its size, and the device's verdict.
    events = _events(traces["backup"])
    uploads = [e for e in events if e.get("msg") == "file" and e.get("from") == "device"]
    sent = [f for f in device.filesystem.files() if f.kind is FileKind.FILE and not f.encrypted_only]
    assert sorted(e["size"] for e in uploads if e["name"].split("/")[-1].startswith("@")) == sorted(f.size for f in sent)
    assert all(e["name"].startswith("<udid>/") for e in uploads)
    assert {"DLMessageCreateDirectory", "DLMessageUploadFiles", "DLMessageMoveItems", "DLMessageStatusResponse"} <= {
        e.get("msg") for e in events}
    assert events[-1]["result"] == {"exit_code": 0, "message": ""}
    restore = _events(traces["restore"])
    assert any(e.get("msg") == "file" and e.get("from") == "host" and e["size"] > 0 for e in restore)
    assert [e["values"]["ProductVersion"] for e in _events(traces["devices"]) if e.get("msg") == "session"] == [
        device.product_version]


def test_a_recorded_backup_replayed_is_stored_and_checks(usb: CofferCli, sim: SimServer) -> None:
    device, trace = _replaying(sim, "backup-tiny.jsonl")
    assert trace.result == {"exit_code": 0, "message": ""}
    recorded = [e for e in trace.events if e.get("msg") == "file" and e.get("from") == "device"
                and e["name"].split("/")[-1].startswith("@")]  # the files, not Status.plist and the manifests
    first = usb("--json", "backup", expect=trace.result["exit_code"]).json()
    assert first["files_sent"] == len(recorded) and first["ok"] and first["udid"] == device.udid
    assert sum(c["bytes"] for c in first["categories"].values()) == sum(e["size"] for e in recorded)
    usb("check", "--read-data")
    again = usb("--json", "backup").json()  # the same made-up contents: nothing new to store
    assert again["files_sent"] == len(recorded)
    assert sum(c["new_bytes"] for c in again["categories"].values()) == 0


def test_a_recorded_lockdown_failure_replayed_gives_the_same_message_and_exit_code(usb: CofferCli, sim: SimServer) -> None:
    device, trace = _replaying(sim, "backup-locked.jsonl")
    assert trace.result is not None and trace.result["exit_code"] == 5
    run = usb("backup", "--udid", device.udid, expect=trace.result["exit_code"])
    assert run.stderr.strip() == "coffer: " + trace.result["message"].replace("<udid>", device.udid)
    sim.set_locked(device.udid, False)  # nothing was lost: the device unlocked, the next run completes
    usb("backup", "--udid", device.udid)
    usb("check")


def test_a_recorded_device_error_replayed_gives_the_same_message_and_exit_code(usb: CofferCli, sim: SimServer) -> None:
    """The device's own verdict (a Response with an MBErrorDomain code and its description) comes back."""
    device, trace = _replaying(sim, "backup-unreadable-file.jsonl")
    responses = [e["message"] for e in trace.events if e.get("msg") == "DLMessageProcessMessage" and e["from"] == "device"]
    assert responses[-1]["ErrorCode"] == 104 and trace.result is not None
    run = usb("--json", "backup", "--udid", device.udid, expect=trace.result["exit_code"])
    assert run.stderr.strip() == "coffer: " + trace.result["message"].replace("<udid>", device.udid)
    assert run.json()["exit_code"] == trace.result["exit_code"]
    usb("check")  # the failed run left the repository consistent


def test_coffer_sim_replay_serves_the_recorded_device(usb: CofferCli) -> None:
    """The command a developer runs on a trace from a bug report: `coffer sim --replay FILE`."""
    process = subprocess.Popen([sys.executable, "-m", "agent", "sim", "--replay", TRACES / "devices-untrusted.jsonl"],
                               env=usb.environment(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        address = process.stdout.readline().strip().removeprefix("USBMUXD_SOCKET_ADDRESS=")
        recorded = RecordedTrace.load(TRACES / "devices-untrusted.jsonl")
        devices = usb("--json", "devices", env={"USBMUXD_SOCKET_ADDRESS": address},
                      expect=recorded.result["exit_code"] if recorded.result else 0).json()
        assert [d["state"] for d in devices] == ["waiting for trust"]
    finally:
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_a_file_that_is_not_a_trace_is_refused(usb: CofferCli, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    run = usb("sim", "--replay", tmp_path / "notes.txt", expect=2)
    assert "is not a Coffer trace" in run.stderr and str(tmp_path / "notes.txt") in run.stderr
    lines = (TRACES / "backup-tiny.jsonl").read_text().splitlines()
    (tmp_path / "edited.jsonl").write_text("\n".join([lines[0], '{"layer": "dl", "msg": "file", "name": 7}']))
    run = usb("sim", "--replay", tmp_path / "edited.jsonl", expect=2)
    assert f"{tmp_path / 'edited.jsonl'} line 2 is not a trace event" in run.stderr


def test_the_devices_error_strings_are_scrubbed_too(usb: CofferCli, sim: SimServer, tmp_path: Path) -> None:
    """A device names the file it could not read in its error strings: the trace shows the name's token."""
    device = sim.add_device(profile="tiny", seed=32)
    secrets = _secrets_of(device)
    min(p for p in (device.state_dir / "content").rglob("*") if p.is_file() and len(p.name) == 64).unlink()
    usb("backup", "--trace", tmp_path / "trace.jsonl", expect=5)
    data = (tmp_path / "trace.jsonl").read_bytes()
    assert [label for label, value in secrets.items() if value in data] == []
    events = _events(tmp_path / "trace.jsonl")
    failed = [e for e in events if e.get("msg") == "file" and e.get("error")]
    assert [e["error"] for e in failed if e["from"] == "device"] == ["No such file or directory (2)"]
    response = [e for e in events if e.get("msg") == "DLMessageProcessMessage" and e["from"] == "device"][-1]
    description = response["message"]["ErrorDescription"]
    assert description == f"could not read 1 files: {failed[-1]['device_name']} ..."


def test_a_trace_that_cannot_be_written_stops_the_command_with_one_line(coffer: CofferCli, tmp_path: Path) -> None:
    target = tmp_path / "no such folder" / "trace.jsonl"
    run = coffer.inline("devices", "--trace", target, expect=1)
    assert run.stderr == f"coffer: cannot write the trace {target}: No such file or directory\n"
