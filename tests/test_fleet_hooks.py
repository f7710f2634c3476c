"""Fleet hooks get only what they need: a real hook program, started by the daemon's HookRunner from an
environment full of secrets, sees the event's facts and a minimal environment, and none of the secrets
(issue 12, point 7)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from agent.fleet.events import EventLog
from agent.fleet.hooks import HookCommands, HookRunner

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "AWS_ACCESS_KEY_ID": "aws-id",
    "AWS_SESSION_TOKEN": "aws-token",
    "COFFER_PASSWORD": "the passphrase",
    "COFFER_PASSWORD_FILE": "/etc/coffer/passphrase",
    "COFFER_PASSWORD_COMMAND": "pass show coffer",
    "COFFER_NEW_PASSWORD": "a new passphrase",
    "COFFER_CONTACT_PASSWORD": "a contact's passphrase",
    "COFFER_RECOVERY_KEY": "ABCD-EFGH",
    "COFFER_KEY_FILE": "/etc/coffer/station.key",
    "SOME_FUTURE_TOKEN": "anything else in the daemon's environment",
}


def test_a_hook_sees_the_event_and_none_of_the_daemons_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    seen = tmp_path / "environment.json"
    hook = tmp_path / "hook.py"
    hook.write_text(f"import json, os\nopen({str(seen)!r}, 'w').write(json.dumps(dict(os.environ)))\n")
    events = EventLog(tmp_path / "events.jsonl")
    runner = HookRunner(HookCommands({"success": (sys.executable, str(hook))}), events)
    runner.fire("success", {"udid": "00008030-001A2B3C4D5E6F70", "snapshot_id": "abc123", "device_name": None})
    runner.wait(30)
    deadline = time.monotonic() + 30
    while not seen.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    environment = json.loads(seen.read_text())
    leaked = {name for name in SECRETS if name in environment}
    leaked |= {name for name, value in environment.items() if value in SECRETS.values()}
    assert not leaked, f"the hook saw {sorted(leaked)}"
    assert environment["COFFER_EVENT"] == "success"
    assert environment["COFFER_UDID"] == "00008030-001A2B3C4D5E6F70"
    assert environment["COFFER_SNAPSHOT_ID"] == "abc123"
    assert "COFFER_DEVICE_NAME" not in environment  # a fact not known yet is left out
    assert environment["LC_ALL"] == "C.UTF-8" and "PATH" in environment  # what a program needs to run
    events.close()
