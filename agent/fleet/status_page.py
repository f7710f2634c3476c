"""The status page `coffer watch --http` serves: one self-contained HTML document.

It polls `status.json` every second and redraws a table of devices: name, state, a progress
bar with the rate, last backup (when, its snapshot and what it noted), next due, the last error, and a
note on the current state only (a note of a finished backup, such as device encryption turned on,
goes with that backup, so it leaves the state's column once resolved). Device data only ever reaches the page as text nodes
(`textContent`), never as markup, so a device named `<script>` is just a name.
"""

from __future__ import annotations

REFRESH_MILLISECONDS = 1000

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Coffer fleet</title>
<style>
  :root { --ok: #1b873f; --busy: #0b62d6; --wait: #b26b00; --bad: #c62828; --mute: #6b7280; }
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #111827; }
  header { display: flex; justify-content: space-between; align-items: baseline; padding: 14px 24px;
           background: #111827; color: #f9fafb; }
  header h1 { font-size: 20px; margin: 0; }
  header .summary { color: #d1d5db; }
  main { padding: 16px 24px; }
  table { width: 100%; border-collapse: collapse; background: #fff; box-shadow: 0 1px 3px #0002; }
  th, td { text-align: left; padding: 10px 12px; border-bottom: 1px solid #e5e7eb; vertical-align: middle; }
  th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--mute); }
  .name { font-weight: 600; }
  .udid, .sub { font: 12px ui-monospace, monospace; color: var(--mute); }
  .state { display: inline-block; padding: 2px 10px; border-radius: 999px; color: #fff; font-size: 13px;
           white-space: nowrap; }
  .state.done { background: var(--ok); } .state.backing_up { background: var(--busy); }
  .state.waiting, .state.waiting_for_trust, .state.waiting_for_unlock { background: var(--wait); }
  .state.failed { background: var(--bad); } .state.ignored { background: var(--mute); }
  .bar { width: 180px; height: 12px; border-radius: 6px; background: #e5e7eb; overflow: hidden; }
  .bar > div { height: 100%; background: var(--busy); transition: width .5s; }
  .bar.unknown > div { width: 35%; animation: slide 1.2s linear infinite; }
  @keyframes slide { from { margin-left: -35%; } to { margin-left: 100%; } }
  .note { color: #374151; max-width: 360px; }
  .error { color: var(--bad); max-width: 300px; }
  .unplugged { opacity: .6; }
  #offline { display: none; color: var(--bad); font-weight: 600; padding: 8px 24px; }
  .empty { color: var(--mute); padding: 24px; text-align: center; }
</style>
</head>
<body>
<header><h1>Coffer fleet</h1><span class="summary" id="summary">connecting…</span></header>
<div id="offline">The daemon does not answer: showing the last known status.</div>
<main>
<table>
  <thead><tr><th>Device</th><th>State</th><th>Progress</th><th>Last backup</th><th>Next due</th><th>Last error</th><th>Note</th></tr></thead>
  <tbody id="devices"><tr><td colspan="7" class="empty">No device seen yet: plug one in.</td></tr></tbody>
</table>
</main>
<script>
"use strict";
const LABELS = { waiting: "waiting", waiting_for_trust: "tap Trust", waiting_for_unlock: "unlock it",
                 backing_up: "backing up", done: "done", failed: "failed", ignored: "not backed up" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let n = bytes, u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return (u ? n.toFixed(1) : n.toFixed(0)) + " " + units[u];
}

function when(iso) {
  if (!iso) return "—";
  const seconds = (Date.parse(iso) - Date.now()) / 1000, a = Math.abs(seconds);
  const text = a < 60 ? Math.round(a) + " s" : a < 3600 ? Math.round(a / 60) + " min"
             : a < 86400 ? (a / 3600).toFixed(1) + " h" : (a / 86400).toFixed(1) + " d";
  return a < 1 ? "now" : seconds < 0 ? text + " ago" : "in " + text;
}

function progressCell(device) {
  const cell = el("td");
  const p = device.progress;
  if (!p) return cell;
  const bar = el("div", "bar" + (p.percent === null ? " unknown" : ""));
  bar.setAttribute("role", "progressbar");
  const fill = el("div");
  if (p.percent !== null) { fill.style.width = p.percent + "%"; bar.setAttribute("aria-valuenow", p.percent); }
  bar.appendChild(fill);
  cell.appendChild(bar);
  const rate = p.bytes_per_second ? " · " + size(p.bytes_per_second) + "/s" : "";
  const detail = p.phase + " · " + size(p.bytes) + rate + " · " + p.files + (p.files === 1 ? " file" : " files") +
                 (p.percent !== null ? " · " + Math.round(p.percent) + "%" : "");
  cell.appendChild(el("div", "sub", detail));
  return cell;
}

function row(device) {
  const tr = el("tr", device.plugged ? "" : "unplugged");
  tr.dataset.udid = device.udid;
  tr.dataset.state = device.state;
  const who = el("td");
  who.appendChild(el("div", "name", device.name || "(unknown name)"));
  who.appendChild(el("div", "udid", device.udid + (device.model ? " · " + device.model : "") +
                                      (device.plugged ? "" : " · unplugged")));
  tr.appendChild(who);
  const state = el("td");
  state.appendChild(el("span", "state " + device.state, LABELS[device.state] || device.state));
  tr.appendChild(state);
  tr.appendChild(progressCell(device));
  const last = el("td", "last", device.last_success ? when(device.last_success) : "never");
  if (device.last_snapshot) last.appendChild(el("div", "sub snapshot", "snapshot " + device.last_snapshot.slice(0, 8)));
  if (device.last_notes) last.appendChild(el("div", "sub", device.last_notes));
  tr.appendChild(last);
  tr.appendChild(el("td", "", device.state === "backing_up" ? "—" : when(device.next_due)));
  const error = el("td", "error", device.last_error || "");
  if (device.last_error) error.appendChild(el("div", "sub", when(device.last_failure)));
  tr.appendChild(error);
  tr.appendChild(el("td", "note", device.reason || ""));
  return tr;
}

async function refresh() {
  try {
    const response = await fetch("status.json", { cache: "no-store" });
    if (!response.ok) throw new Error(response.status);
    const status = await response.json();
    const body = document.getElementById("devices");
    body.replaceChildren(...(status.devices.length ? status.devices.map(row)
      : [(() => { const tr = el("tr"); const td = el("td", "empty", "No device seen yet: plug one in.");
                  td.colSpan = 7; tr.appendChild(td); return tr; })()]));
    const busy = status.devices.filter(d => d.state === "backing_up").length;
    const plugged = status.devices.filter(d => d.plugged).length;
    document.getElementById("summary").textContent =
      plugged + " plugged in · " + busy + " of " + status.daemon.max_concurrent + " backing up";
    document.getElementById("offline").style.display = "none";
    document.body.dataset.loaded = "true";
  } catch (error) {
    document.getElementById("offline").style.display = "block";
  }
}
refresh();
setInterval(refresh, __REFRESH__);
</script>
</body>
</html>
""".replace("__REFRESH__", str(REFRESH_MILLISECONDS))
