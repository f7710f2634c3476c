"""The daemon's status over HTTP (stdlib `http.server`, a thread per request).

Three routes: `/status.json` (the daemon and one document per device), `/metrics`
(Prometheus text) and `/` (the status page). Served on the daemon's local Unix socket
(mode 0600: `coffer fleet status` reads it), and optionally on TCP for the metrics port
(127.0.0.1 only) and the status page (`--http`). Over TCP it is read-only. The Unix socket
alone, whose mode keeps it to the daemon's user, also takes `POST /run?udid=U`, `POST /pause`
and `POST /resume` (optionally `?udid=U`): `coffer fleet run/pause/resume`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socketserver
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agent.errors import UsageError
from agent.fleet import metrics
from agent.fleet.status_page import PAGE

StatusSource = Callable[[], dict[str, Any]]  # {"daemon": {...}, "devices": [...]}
# (action, udid or None) -> (HTTP status, JSON answer); the daemon's `control`
Control = Callable[[str, str | None], tuple[int, dict[str, Any]]]
CONTROL_ACTIONS = ("run", "pause", "resume")
UNIX_PATH_MAX = 107  # sun_path is 108 bytes on Linux, NUL included


class _Handler(BaseHTTPRequestHandler):
    server_version = "coffer-fleet"
    status_source: StatusSource  # set on the subclass each server gets
    control: Control | None = None  # only on the Unix socket

    def do_GET(self) -> None:
        self._answer(include_body=True)

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        action = url.path.strip("/")
        if self.control is None or action not in CONTROL_ACTIONS:
            self.send_error(405 if self.control is None else 404, "control requests go to the status socket")
            return
        udid = urllib.parse.parse_qs(url.query).get("udid", [None])[0]
        code, answer = self.control(action, udid)
        self._send(code, json.dumps(answer).encode(), "application/json", include_body=True)

    def do_HEAD(self) -> None:
        self._answer(include_body=False)

    def _answer(self, *, include_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/status.json":
            body, kind = json.dumps(self.status_source(), default=str).encode(), "application/json"
        elif path == "/metrics":
            status = self.status_source()
            body, kind = metrics.render(status["daemon"], status["devices"]).encode(), metrics.CONTENT_TYPE
        elif path in ("/", "/index.html"):
            body, kind = PAGE.encode(), "text/html; charset=utf-8"
        else:
            self.send_error(404, "not found: try /, /status.json or /metrics")
            return
        self._send(200, body, kind, include_body=include_body)

    def _send(self, code: int, body: bytes, kind: str, *, include_body: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if include_body:
            self.wfile.write(body)

    def address_string(self) -> str:
        return self.client_address[0] if isinstance(self.client_address, tuple) else "local"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are not events worth a line each


class _UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[Any, Any]:
        request, _ = super().get_request()
        return request, ("local", 0)  # BaseHTTPRequestHandler expects a (host, port) client address


class StatusServer:
    """Every listener of one daemon, each served by a thread of its own."""

    def __init__(self, source: StatusSource, control: Control | None = None) -> None:
        self._handler = type("StatusHandler", (_Handler,), {"status_source": staticmethod(source)})
        self._control_handler = type("ControlHandler", (self._handler,), {"control": staticmethod(control)})
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        self._unix_path: Path | None = None

    def serve_unix(self, path: Path) -> None:
        if len(os.fsencode(path)) > UNIX_PATH_MAX:
            raise UsageError(
                f"the status socket path {path} is too long for a Unix socket: set a shorter [daemon] state_dir"
            )
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # A leftover of a daemon that died (the instance lock keeps a live one's socket safe).
        path.unlink(missing_ok=True)
        old_mask = os.umask(0o177)
        try:
            server = _UnixHTTPServer(str(path), self._control_handler)
        finally:
            os.umask(old_mask)
        self._unix_path = path
        self._start(server, "unix")

    def serve_tcp(self, host: str, port: int) -> tuple[str, int]:
        """Listen on host:port (port 0 picks a free one); returns the address bound."""
        try:
            server = ThreadingHTTPServer((host, port), self._handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        server.daemon_threads = True
        self._start(server, f"{host}:{port}")
        bound_host, bound_port = server.server_address[:2]
        return str(bound_host), int(bound_port)

    def _start(self, server: socketserver.BaseServer, name: str) -> None:
        thread = threading.Thread(target=server.serve_forever, name=f"coffer-status-{name}", daemon=True)
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join()
        if self._unix_path is not None:
            with contextlib.suppress(OSError):
                self._unix_path.unlink()
