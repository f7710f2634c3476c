"""Talking to a running daemon over its local Unix socket: its status (`coffer fleet status`) and the
operator's requests (`coffer fleet run/pause/resume`)."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from pathlib import Path
from typing import Any

from agent.errors import CofferError, UsageError

TIMEOUT_SECONDS = 10.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=TIMEOUT_SECONDS)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _request(socket_path: Path, config_path: Path, method: str, path: str) -> tuple[int, str, bytes]:
    connection = _UnixConnection(socket_path)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.reason, response.read()
    except (FileNotFoundError, ConnectionRefusedError):
        raise CofferError(
            f"no `coffer watch` is running with {config_path} (nothing listens on {socket_path})"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise CofferError(f"the daemon's status socket {socket_path} did not answer: {exc}") from exc
    finally:
        connection.close()


def fetch_status(socket_path: Path, config_path: Path) -> dict[str, Any]:
    """`{"daemon": {...}, "devices": [...]}` from the daemon listening on `socket_path`."""
    status, reason, body = _request(socket_path, config_path, "GET", "/status.json")
    if status != 200:
        raise CofferError(f"the daemon answered {status} {reason}")
    return json.loads(body)


def send_control(socket_path: Path, config_path: Path, action: str, udid: str | None) -> dict[str, Any]:
    """Ask the daemon to `run` a device's backup now, or to `pause`/`resume` (one device or all).
    A request the daemon refuses (unknown device, unplugged, …) is a usage error naming why."""
    query = f"?{urllib.parse.urlencode({'udid': udid})}" if udid else ""
    status, reason, body = _request(socket_path, config_path, "POST", f"/{action}{query}")
    try:
        answer = json.loads(body)
    except ValueError:
        raise CofferError(f"the daemon answered {status} {reason}") from None
    if status != 200:
        message = answer.get("error") if isinstance(answer, dict) else None
        raise UsageError(str(message or f"the daemon answered {status} {reason}"))
    return answer
