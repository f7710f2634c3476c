"""The status page of `coffer watch --http`, in a real headless Chromium driven through chromedriver.

Debian's `chromium` and `chromium-driver` packages are needed (`.ci/setup --test-tools` installs them);
the test fails, rather than skips, without them. The browser is driven with the W3C WebDriver protocol
over HTTP (no client library). A screenshot taken while a backup runs is saved under test-artifacts/.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from fleet_harness import FleetRun, fleet_cli

from agent.sim.server import SimServer

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,720",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Browser:
    """One chromedriver session with a headless Chromium."""

    def __init__(self, driver: str, port: int, session: str) -> None:
        self.base = f"http://127.0.0.1:{port}/session/{session}"
        self.driver = driver

    @staticmethod
    def call(url: str, method: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"WebDriver {method} {url}: {exc.read().decode(errors='replace')}") from None

    def open(self, url: str) -> None:
        self.call(f"{self.base}/url", "POST", {"url": url})

    def run(self, script: str) -> Any:
        return self.call(f"{self.base}/execute/sync", "POST", {"script": script, "args": []})

    def wait_for(self, script: str, what: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.run(script)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"the page never showed {what}")

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call(f"{self.base}/screenshot", "GET")))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(
            "headless Chromium is needed: apt-get install chromium chromium-driver (.ci/setup --test-tools)"
        )
    port = _free_port()
    process = subprocess.Popen(
        [driver, f"--port={port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if Browser.call(f"http://127.0.0.1:{port}/status", "GET").get("ready"):
                    break
            except (OSError, AssertionError):
                pass
            assert time.monotonic() < deadline, "chromedriver did not start"
            time.sleep(0.1)
        options = {"binary": chromium, "args": [*CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'chromium'}"]}
        capabilities = {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}
        session = Browser.call(f"http://127.0.0.1:{port}/session", "POST", {"capabilities": capabilities})
        browser = Browser(driver, port, session["sessionId"])
        try:
            yield browser
        finally:
            Browser.call(browser.base, "DELETE")
    finally:
        process.terminate()
        process.wait(timeout=30)


ROWS = """return Array.from(document.querySelectorAll('#devices tr[data-udid]')).map(tr => ({
  udid: tr.dataset.udid, state: tr.dataset.state, name: tr.querySelector('.name').textContent,
  nameHtml: tr.querySelector('.name').innerHTML, label: tr.querySelector('.state').textContent,
  bar: tr.querySelector('[role=progressbar]') ? Number(tr.querySelector('[role=progressbar]')
       .getAttribute('aria-valuenow')) : null,
  note: tr.querySelector('.note').textContent, last: tr.querySelector('.last').innerText,
  error: tr.querySelector('.error').innerText, text: tr.innerText }));"""


def test_status_page_in_headless_chromium(tmp_path: Path, browser: Browser) -> None:
    with SimServer(tmp_path / "sim") as sim:
        cli = fleet_cli(tmp_path, sim)
        done = sim.add_device(profile="tiny", seed=30, name="<b>Shop</b> 1", plugged=False)
        busy = sim.add_device(profile="tiny", seed=31, name="Shop 2", plugged=False)
        sim.set_transfer_rate(busy.udid, 600_000)  # a slow cable: its backup lasts a few seconds
        untrusted = sim.add_device(profile="tiny", seed=32, name="Loaner", trusted=False, plugged=False)
        run = FleetRun(
            cli,
            tmp_path / "fleet",
            '[policy]\nmax_concurrent = 2\nrecheck_interval = "30s"\nrequire_encryption = true\n',
            "--http",
            "127.0.0.1:0",
        )
        try:
            run.start()
            sim.plug(done.udid)
            first = run.wait_event("backup_succeeded", done.udid)
            browser.open(f"http://{run.started_event['http']}/")
            sim.plug(untrusted.udid)
            sim.plug(busy.udid)

            # While Shop 2 is backed up, its row shows a moving progress bar.
            rows = browser.wait_for(
                ROWS.replace("return ", "const rows = ", 1)
                + f"return rows.some(r => r.udid === '{busy.udid}' && r.bar > 0 && r.bar < 100) && rows;",
                "a running backup with its progress bar",
            )
            browser.screenshot(ARTIFACTS / "fleet-status-page.png")
            row = next(r for r in rows if r.get("udid") == busy.udid)
            assert row["state"] == "backing_up" and row["label"] == "backing up"
            assert "transferring" in row["text"] and "files" in row["text"]
            assert "/s" in row["text"], row  # the rate, e.g. "585.9 KiB/s"

            # Unplugged mid-backup: failed, and the error stays on the page after the retry succeeds.
            sim.unplug(busy.udid)
            failed = run.wait_event("backup_failed", busy.udid)
            sim.set_transfer_rate(busy.udid, None)
            sim.plug(busy.udid)
            run.wait_event("backup_succeeded", busy.udid, timeout=90)
            run.wait_event("backup_waiting", untrusted.udid, timeout=60)
            final = browser.wait_for(
                ROWS.replace("return ", "const rows = ", 1)
                + f"return rows.length === 3 && rows.find(r => r.udid === '{busy.udid}').state === 'done'"
                + f" && rows.find(r => r.udid === '{untrusted.udid}').state === 'waiting_for_trust' && rows;",
                "every device in its final state",
            )
            by_udid = {r["udid"]: r for r in final}
            assert by_udid[done.udid]["name"] == "<b>Shop</b> 1"  # a name is text, never markup
            assert "<b>" not in by_udid[done.udid]["nameHtml"]
            assert by_udid[done.udid]["label"] == "done" and "ago" in by_udid[done.udid]["text"]
            # Its last snapshot, and the encryption turned on by that backup: with the backup, not the state.
            assert f"snapshot {first['snapshot'][:8]}" in by_udid[done.udid]["last"]
            assert "encryption turned on" in by_udid[done.udid]["last"], by_udid[done.udid]
            assert "encryption" not in by_udid[done.udid]["note"]
            assert by_udid[busy.udid]["label"] == "done" and by_udid[busy.udid]["error"].startswith(failed["reason"])
            assert "ago" in by_udid[busy.udid]["error"]
            assert (
                by_udid[untrusted.udid]["label"] == "tap Trust" and "Trust" in by_udid[untrusted.udid]["text"]
            )
            assert "3 plugged in" in browser.run("return document.getElementById('summary').textContent")
            browser.screenshot(ARTIFACTS / "fleet-status-page-done.png")
            assert run.stop() == 0
        finally:
            run.kill()
