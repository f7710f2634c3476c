"""lockdownd, device side (ios-protocol.md section 2): values, pairing, TLS sessions, service start.

One `LockdownConnection` per host connection to port 62078. Replies echo `Request` (both clients
check it); errors go in `Error` with the strings pymobiledevice3 maps to its exceptions, so a locked
device (`PasswordProtected`) and an untrusted one (`PairingDialogResponsePending`, `InvalidHostID`)
fail differently on the host.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from agent.sim.device import SimulatedDevice
from agent.sim.framing import read_plist, write_plist

LOCKDOWN_PORT = 62078
LOCKDOWN_TYPE = "com.apple.mobile.lockdown"
MOBILEBACKUP2 = "com.apple.mobilebackup2"
# Services a locked device refuses until the passcode is entered.
PASSCODE_GATED_SERVICES = frozenset({MOBILEBACKUP2})


class LockdownConnection:
    """One host connection to lockdownd, plaintext until StartSession switches it to TLS."""

    def __init__(
        self,
        device: SimulatedDevice,
        services: frozenset[str],
        open_service_port: Callable[[str], int],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.device = device
        self.services = services
        self.open_service_port = open_service_port
        self.reader = reader
        self.writer = writer
        self.session_id: str | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "QueryType": self._query_type,
            "GetValue": self._get_value,
            "ValidatePair": self._validate_pair,
            "Pair": self._pair,
            "Unpair": self._unpair,
            "StartSession": self._start_session,
            "StopSession": self._stop_session,
            "StartService": self._start_service,
            "Goodbye": self._goodbye,
        }

    async def serve(self) -> None:
        """Answer requests until the host says Goodbye or closes the connection."""
        while True:
            request = await read_plist(self.reader)
            if not isinstance(request, dict):
                return  # the host closed the connection (None) or speaks something else
            name = str(request.get("Request", ""))
            handler = self._handlers.get(name)
            reply = handler(request) if handler else {"Error": "InvalidRequest"}
            await write_plist(self.writer, {"Request": name, **reply})
            if name == "StartSession" and reply.get("EnableSessionSSL"):
                await self.writer.start_tls(self.device.ssl_context())
            elif name == "Goodbye":
                return

    def _query_type(self, _request: dict[str, Any]) -> dict[str, Any]:
        return {"Type": LOCKDOWN_TYPE}

    def _get_value(self, request: dict[str, Any]) -> dict[str, Any]:
        domain, key = request.get("Domain"), request.get("Key")
        if domain:
            if self.session_id is None:
                return {"Error": "GetProhibited"}
            values = self.device.domain_values(domain)
        else:
            values = self.device.lockdown_values(in_session=self.session_id is not None)
        if values is None or (key is not None and key not in values):
            return {"Error": "MissingValue"}
        echo = {name: value for name, value in (("Domain", domain), ("Key", key)) if value}
        return {**echo, "Value": values[key] if key is not None else values}

    def _validate_pair(self, request: dict[str, Any]) -> dict[str, Any]:
        if _host_id(request) not in self.device.paired_hosts:
            return {"Error": "InvalidHostID"}
        return {}

    def _pair(self, request: dict[str, Any]) -> dict[str, Any]:
        record = request.get("PairRecord")
        host_id = _host_id(request)
        if not isinstance(record, dict) or not host_id or not record.get("HostCertificate"):
            return {"Error": "InvalidPairRecord"}
        if self.device.locked:
            return {"Error": "PasswordProtected"}
        if not self.device.trusted:
            return {"Error": "PairingDialogResponsePending"}
        host = self.device.pair_host(
            host_id, str(record.get("SystemBUID", "")), str(request.get("HostName", ""))
        )
        return {"EscrowBag": host.escrow_bag}

    def _unpair(self, request: dict[str, Any]) -> dict[str, Any]:
        self.device.unpair_host(_host_id(request))
        return {}

    def _start_session(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.session_id is not None:
            return {"Error": "SessionActive"}
        if request.get("HostID") not in self.device.paired_hosts:
            return {"Error": "InvalidHostID"}
        self.session_id = str(uuid.uuid4()).upper()
        return {"SessionID": self.session_id, "EnableSessionSSL": True}

    def _stop_session(self, _request: dict[str, Any]) -> dict[str, Any]:
        self.session_id = None
        return {"Result": "Success"}

    def _start_service(self, request: dict[str, Any]) -> dict[str, Any]:
        service = str(request.get("Service", ""))
        if self.session_id is None:
            return {"Error": "SessionInactive"}
        if service not in self.services:
            return {"Error": "InvalidService"}
        if self.device.locked and service in PASSCODE_GATED_SERVICES:
            return {"Error": "PasswordProtected"}
        refusal = self.device.faults.service_refusal
        if refusal and service == MOBILEBACKUP2:
            return {"Error": refusal}  # before first unlock, a pair record the device no longer knows, ...
        return {"Service": service, "Port": self.open_service_port(service)}

    def _goodbye(self, _request: dict[str, Any]) -> dict[str, Any]:
        return {"Result": "Success"}


def _host_id(request: dict[str, Any]) -> str:
    record = request.get("PairRecord")
    return str(record.get("HostID", "")) if isinstance(record, dict) else ""
