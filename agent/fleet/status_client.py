"""Asking a running daemon for its status, over its local Unix socket (`coffer fleet status`)."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from agent.errors import CofferError

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


def fetch_status(socket_path: Path, config_path: Path) -> dict[str, Any]:
    """`{"daemon": {...}, "devices": [...]}` from the daemon listening on `socket_path`."""
    connection = _UnixConnection(socket_path)
    try:
        connection.request("GET", "/status.json")
        response = connection.getresponse()
        body = response.read()
    except (FileNotFoundError, ConnectionRefusedError):
        raise CofferError(
            f"no `coffer watch` is running with {config_path} (nothing listens on {socket_path})"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise CofferError(f"the daemon's status socket {socket_path} did not answer: {exc}") from exc
    finally:
        connection.close()
    if response.status != 200:
        raise CofferError(f"the daemon answered {response.status} {response.reason}")
    return json.loads(body)
