"""The failures real iPhones show in the field, as simulator fault modes (agent.sim.faults), against Coffer's CLI.

Each test switches a fault on through the simulator's control socket, runs the real `coffer backup`, `restore`
or `devices`, checks the one line the user sees and the exit code, then lifts the fault and shows nothing was
lost: the next clean run completes and `coffer check` passes. docs/troubleshooting.md lists the messages.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, CofferCli, CofferRun, usb_cli

from agent.device.backup import _without_rows
from agent.ios.encryption import Keybag, decrypt_manifest_db, encrypt_manifest_db, new_manifest_key
from agent.ios.manifest_db import manifest_db_bytes, records_from_bytes
from agent.ios.records import FLAG_FILE, FileRecord
from agent.sim.control import SimControl
from agent.sim.server import SimServer
from agent.sim.verify import backup_digest

_seeds = itertools.count(900)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimServer]:
    with SimServer(tmp_path_factory.mktemp("sim")) as server:
        yield server


@pytest.fixture
def control(sim: SimServer) -> Iterator[SimControl]:
    assert sim.control_address is not None
    with SimControl(sim.control_address) as client:
        yield client


@pytest.fixture
def usb(tmp_path: Path, sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> CofferCli:
    """`coffer` on a fresh initialised repository, talking to the simulator (in a subprocess or, with
    `inline`, in this process)."""
    monkeypatch.setenv("USBMUXD_SOCKET_ADDRESS", sim.address)
    return usb_cli(tmp_path, sim)


def _device(sim: SimServer, **kwargs: object) -> str:
    return sim.add_device(profile="tiny", seed=next(_seeds), **kwargs).udid  # type: ignore[arg-type]


def _error_line(run: CofferRun) -> str:
    """The one `coffer: ...` line a failed command printed."""
    lines = [line for line in run.stderr.splitlines() if line.startswith("coffer: ")]
    assert len(lines) == 1, run.describe()
    return lines[0]


def _nothing_lost(usb: CofferCli, udid: str) -> dict[str, object]:
    """A clean backup completes and the repository checks out; the backup's document."""
    document = usb("--json", "backup", "--udid", udid).json()
    assert document["ok"], document
    usb("check")
    return document


def test_a_file_the_device_cannot_send_is_recorded_and_sent_next_time(
    usb: CofferCli, sim: SimServer, control: SimControl
) -> None:
    udid = _device(sim)
    device = sim.device(udid)
    victim = next(f for f in device.filesystem.files() if f.size > 0 and f.domain == "HomeDomain")
    control.fault(udid, upload_error=victim.relative_path)
    run = usb("--json", "backup", "--udid", udid)  # iOS 17+: the backup finishes (ErrorCode 0)
    document = run.json()
    assert document["ok"] and device.backups[-1].error_code == 0
    assert document["not_sent"] == [
        {"domain": "HomeDomain", "path": victim.relative_path,
         "reason": "the device could not send it: Input/output error (5)"}
    ]
    warnings = [line for line in run.stderr.splitlines() if line.startswith("coffer: warning:")]
    assert len(warnings) == 1 and f"HomeDomain/{victim.relative_path}" in warnings[0], run.stderr
    assert "Input/output error (5)" in warnings[0]
    snapshot = usb("--json", "snapshots").json()[-1]
    assert snapshot["id"] == document["snapshot"]  # committed like any other, not marked failed
    listed = {(e["domain"], e["path"]) for e in usb("--json", "ls", document["short_id"]).json()}
    assert ("HomeDomain", victim.relative_path) not in listed

    control.clear_faults(udid)
    again = _nothing_lost(usb, udid)
    assert again["not_sent"] == []
    assert victim.key in device.backups[-1].uploaded  # asked for again, though unchanged on the device
    listed = {(e["domain"], e["path"]) for e in usb("--json", "ls", again["short_id"]).json()}
    assert ("HomeDomain", victim.relative_path) in listed


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "device-encrypted"])
def test_rows_a_compromised_device_forges_are_skipped_and_the_rest_restores_exactly(
    usb: CofferCli, sim: SimServer, control: SimControl, tmp_path: Path, encrypted: bool
) -> None:
    """The attacker is the device: its Manifest.db lists a path out of its domain, a fileID that is a path,
    a domain out of the backup, unknown flags and an unreadable record. Each is reported as
    skipped, never stored, and what the device really holds comes back byte for byte, to a folder and to a
    replacement device, with no forged row handed on. Encrypted, the rebuilt Manifest.db is encrypted again
    with the backup's own keys and opens with its password."""
    udid = _device(sim)
    device = sim.device(udid)
    control.fault(udid, hostile_rows=True)
    document = usb("--json", "backup", "--udid", udid, *(["--enable-device-encryption"] if encrypted else [])).json()
    assert document["ok"] and document["not_sent"] == [], document
    reasons = {s["path"]: s["reason"] for s in document["skipped"]}
    assert reasons.pop("Library/forged-record", "").startswith("unreadable file record"), document["skipped"]
    assert reasons == {
        "../../../../tmp/coffer-forged-escape": "relativePath has a '..' component",
        "Library/forged-file-id": "fileID is not 40 lowercase hex digits",
        "Library/forged-flags": "unknown flags value 16",
        "Library/forged-domain": "domain is empty or contains '/', NUL or a dot name",
    }, document["skipped"]
    listed = {e["path"] for e in usb("--json", "ls", document["short_id"]).json()}
    assert not {path for path in listed if "forged" in path}

    out = tmp_path / "exported"
    usb("export", document["short_id"], str(out))
    sent = {f.key for f in device.filesystem.files() if encrypted or not f.encrypted_only}
    expected = {key: digest for key, digest in device.filesystem.snapshot_digest().items() if key in sent}
    # The exported Manifest.db lists no forged row, and every row it lists has its file.
    assert backup_digest(out, device.backup_password if encrypted else None) == expected
    assert not Path("/tmp/coffer-forged-escape").exists()

    replacement = _device(sim)  # restoring hands an honest device none of them either
    usb("--json", "restore", document["short_id"], "--to-udid", replacement, "--yes")
    restored = sim.device(replacement).filesystem.snapshot_digest()
    assert {key: digest for key, digest in restored.items() if key in expected} == expected
    assert not [key for key in restored if "forged" in key], restored.keys()

    control.clear_faults(udid)
    _nothing_lost(usb, udid)


def test_a_stale_device_snapshot_says_restart_the_device(usb: CofferCli, sim: SimServer, control: SimControl) -> None:
    udid = _device(sim)
    control.fault(udid, stale_snapshot=True)
    run = usb("backup", "--udid", udid, expect=5)
    line = _error_line(run)
    assert "interrupted backup" in line and "restart the device" in line and "MBErrorDomain 3" in line, line
    assert "File exists (17)" in line
    usb.inline("backup", "--udid", udid, expect=5)  # it stays until the device restarts
    control.restart(udid)
    deadline = time.monotonic() + 10
    while not (sim.is_plugged(udid) and sim.device(udid).reboots):
        assert time.monotonic() < deadline, "the device did not come back after its restart"
        time.sleep(0.05)
    _nothing_lost(usb, udid)


# MBErrorDomain code the device ends the Backup with -> Coffer's exit code, and words of the cause and the fix
MB_ERRORS = {
    105: (1, "this computer reported too little free space", "free space where the repository"),
    106: (5, "too little free space to make its backup snapshot", "iPhone Storage"),
    205: (5, "could not read the backup properties", "coffer backup --full"),
    207: (3, "rejected the backup password", "--backup-password-file"),
    208: (5, "was locked when the backup needed it", "unlock it"),
}


def test_mb_error_codes_name_cause_and_fix(usb: CofferCli, sim: SimServer, control: SimControl) -> None:
    udid = _device(sim)
    for code, (exit_code, cause, fix) in MB_ERRORS.items():
        control.fault(udid, backup_error=code)
        line = _error_line(usb.inline("backup", "--udid", udid, expect=exit_code))
        assert f"MBErrorDomain {code}" in line and cause in line and fix in line, line
    control.clear_faults(udid)
    _nothing_lost(usb, udid)


def test_restore_onto_a_device_without_space_names_cause_and_fix(
    usb: CofferCli, sim: SimServer, control: SimControl
) -> None:
    source, target = _device(sim), _device(sim)
    snapshot = _nothing_lost(usb, source)["short_id"]
    control.fault(target, backup_error=106)
    run = usb("restore", snapshot, "--to-udid", target, "--yes", "--no-reboot", expect=5)
    line = _error_line(run)
    assert "MBErrorDomain 106" in line and "iPhone Storage" in line, line
    control.clear_faults(target)
    usb("restore", snapshot, "--to-udid", target, "--yes", "--no-reboot")
    usb("check")


def test_backup_service_refusals_each_say_why(usb: CofferCli, sim: SimServer, control: SimControl) -> None:
    udid = _device(sim)
    usb.inline("devices")  # paired and trusted, so StartService is what refuses
    control.fault(udid, service_refusal="PasswordProtected")  # locked since it restarted (before first unlock)
    line = _error_line(usb("backup", "--udid", udid, expect=5))
    assert "is locked" in line and "after a restart it needs the passcode once" in line, line
    control.fault(udid, service_refusal="InvalidHostID")  # the device no longer knows this pair record
    line = _error_line(usb.inline("backup", "--udid", udid, expect=5))
    assert "InvalidHostID" in line and "tap Trust" in line and "pair record" in line, line
    control.clear_faults(udid)
    untrusted = _device(sim, trusted=False)  # the Trust dialog is never answered
    line = _error_line(usb.inline("backup", "--udid", untrusted, expect=5, env={"COFFER_TRUST_TIMEOUT": "0.5"}))
    assert "Trust dialog was not answered" in line and "tap Trust" in line, line
    control.trust(untrusted)
    _nothing_lost(usb, udid)
    _nothing_lost(usb, untrusted)


def test_passcode_prompt_is_relayed_waited_for_and_timed_out(
    usb: CofferCli, sim: SimServer, control: SimControl
) -> None:
    udid = _device(sim)
    control.fault(udid, passcode_prompt=0.5)  # the user enters it after half a second
    run = usb.inline("backup", "--udid", udid)
    assert "enter the passcode on the device" in run.stderr, run.describe()
    assert sim.device(udid).backups[-1].error_code == 0
    run = usb.inline("encryption", "on", "--udid", udid)  # ChangePassword asks for it too
    assert "enter the passcode on the device" in run.stderr and sim.device(udid).will_encrypt, run.describe()
    control.fault(udid, passcode_prompt=-1)  # nobody does
    run = usb("backup", "--udid", udid, expect=5, env={"COFFER_PASSCODE_TIMEOUT": "1"})
    assert "enter the passcode on the device" in run.stderr
    line = [entry for entry in run.stderr.splitlines() if "nobody entered it" in entry]
    assert len(line) == 1 and "within 1 s" in line[0] and "COFFER_PASSCODE_TIMEOUT" in line[0], run.stderr
    control.clear_faults(udid)
    _nothing_lost(usb, udid)


def test_a_device_that_pauses_and_locks_mid_backup_is_waited_for(
    usb: CofferCli, sim: SimServer, control: SimControl
) -> None:
    udid = _device(sim)
    pause = 3.0
    # Longer than every client time-out Coffer has (the Trust wait, and the passcode prompt's, set to 1 s
    # here): none of them applies to the DeviceLink loop, which has no time-out at all.
    control.fault(udid, pause=pause, lock_during_pause=True)
    run = usb("--json", "backup", "--udid", udid, env={"COFFER_TRUST_TIMEOUT": "1", "COFFER_PASSCODE_TIMEOUT": "1"})
    assert run.json()["ok"] and run.seconds >= pause
    assert sim.device(udid).locked  # locked mid-backup, and the running backup went on
    control.clear_faults(udid)
    control.unlock(udid)
    _nothing_lost(usb, udid)


@pytest.mark.parametrize("reading", ["locked", "passcode"])
def test_devices_tells_locked_from_has_a_passcode(
    usb: CofferCli, sim: SimServer, control: SimControl, reading: str
) -> None:
    udid = _device(sim)
    control.fault(udid, password_protected=reading, passcode_set=True)

    def state() -> dict[str, object]:
        return next(d for d in usb.inline("--json", "devices").json() if d["udid"] == udid)

    unlocked = state()
    assert unlocked["state"] == "trusted" and unlocked["passcode"] is True, unlocked
    control.lock(udid)
    locked = state()
    assert locked["state"] == "locked" and "unlock it" in str(locked["message"]), locked
    control.unlock(udid)
    control.fault(udid, passcode_set=False)
    assert state()["passcode"] is False
    control.clear_faults(udid)
    _nothing_lost(usb, udid)


def test_devices_reports_the_negotiated_usb_speed(usb: CofferCli, sim: SimServer, control: SimControl) -> None:
    usb2, usb3 = _device(sim), _device(sim)
    control.fault(usb3, usb_speed=5_000_000_000)
    control.unplug(usb3)  # the speed is negotiated when the device attaches
    control.plug(usb3)
    devices = {d["udid"]: d for d in usb.inline("--json", "devices").json()}
    assert devices[usb2]["usb"] == "USB 2" and devices[usb2]["usb_speed"] == 480_000_000
    assert devices[usb3]["usb"] == "USB 3" and devices[usb3]["usb_speed"] == 5_000_000_000
    table = usb.inline("devices").stdout
    assert "USB 3" in table and "USB 2" in table
    _nothing_lost(usb, usb3)


def test_no_usbmuxd_is_one_line_naming_where_it_was_looked_for(usb: CofferCli, tmp_path: Path) -> None:
    missing = tmp_path / "no-usbmuxd"
    line = _error_line(usb("devices", expect=5, env={"USBMUXD_SOCKET_ADDRESS": str(missing)}))
    assert f"cannot reach usbmuxd at {missing}" in line and "start usbmuxd" in line, line
    with socket.socket() as probe:  # a TCP port nobody listens on (Windows' usbmuxd is TCP)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    line = _error_line(usb("backup", "--all", expect=5, env={"USBMUXD_SOCKET_ADDRESS": f"127.0.0.1:{port}"}))
    assert f"cannot reach usbmuxd at 127.0.0.1:{port}" in line, line
    usb("check")  # nothing was touched


def test_a_usbmuxd_socket_without_permission_says_which_group(usb: CofferCli) -> None:
    if sys.platform == "win32":
        pytest.skip("unix sockets")
    folder = Path(tempfile.mkdtemp(prefix="coffer-mux-"))
    os.chmod(folder, 0o755)
    path = folder / "usbmuxd"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        server.listen()
        os.chmod(path, 0)  # a socket this user may not open (outside its owner and group)
        env = usb.environment({"USBMUXD_SOCKET_ADDRESS": str(path)})
        command = [sys.executable, "-m", "agent", "devices"]
        if os.geteuid() == 0:  # root opens any socket: drop the capability that lets it, as setpriv(1) can
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv(1)")
            command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
                              stdin=subprocess.DEVNULL)
    finally:
        server.close()
        path.unlink(missing_ok=True)
        folder.rmdir()
    assert done.returncode == 5, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("coffer: ")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"no permission to open the usbmuxd socket {path}" in lines[0] and "group" in lines[0], lines[0]


def test_rows_of_unsent_files_leave_the_remembered_manifest_encrypted_or_not() -> None:
    """The host's copy of Manifest.db loses exactly the unsent files' rows, re-encrypted with the same key."""
    keybag, _ = Keybag.create("pw", dpic=10, iterations=10)
    class_keys = keybag.unlock("pw")
    manifest_key = new_manifest_key(class_keys)
    records = [FileRecord.create("HomeDomain", f"Library/f{n}", FLAG_FILE, size=n, mtime=0, birth=0, inode=n)
               for n in range(3)]
    image = manifest_db_bytes(records)
    unsent = {records[1].file_id}
    plain = _without_rows(image, unsent, None, None)
    assert [r.file_id for r in records_from_bytes(plain)] == [records[0].file_id, records[2].file_id]
    sealed = _without_rows(encrypt_manifest_db(class_keys, manifest_key, image), unsent, class_keys, manifest_key)
    assert records_from_bytes(decrypt_manifest_db(class_keys, manifest_key, sealed)) == records_from_bytes(plain)
