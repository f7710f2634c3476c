"""How Coffer chooses the usbmuxd address on each host, as pymobiledevice3 does (agent.device.connect)."""

from __future__ import annotations

import socket

import pytest
from pymobiledevice3.usbmux import MuxConnection

from agent.device.connect import UNIX_SOCKET, WINDOWS_TCP, UsbmuxdEndpoint, usbmuxd_endpoint


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_linux_and_macos_use_the_unix_socket(platform: str) -> None:
    assert usbmuxd_endpoint(None, platform) == UsbmuxdEndpoint(unix_path="/var/run/usbmuxd")
    assert UNIX_SOCKET == MuxConnection.USBMUXD_PIPE


@pytest.mark.parametrize("platform", ["win32", "cygwin"])
def test_windows_uses_the_apple_mobile_device_service_port(platform: str) -> None:
    assert usbmuxd_endpoint(None, platform) == UsbmuxdEndpoint(tcp=("127.0.0.1", 27015))
    assert WINDOWS_TCP == MuxConnection.ITUNES_HOST


def test_wsl_reaches_the_windows_usbmuxd() -> None:
    assert usbmuxd_endpoint(None, "linux", wsl=True).tcp == ("127.0.0.1", 27015)


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("127.0.0.1:27015", UsbmuxdEndpoint(tcp=("127.0.0.1", 27015))),
        ("10.0.0.5:5000", UsbmuxdEndpoint(tcp=("10.0.0.5", 5000))),
        ("/run/usbmuxd", UsbmuxdEndpoint(unix_path="/run/usbmuxd")),
    ],
)
@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_usbmuxd_socket_address_wins_everywhere_as_in_pymobiledevice3(
    configured: str, expected: UsbmuxdEndpoint, platform: str
) -> None:
    assert usbmuxd_endpoint(configured, platform) == expected
    address, family = MuxConnection._resolve_usbmux_address(configured)
    if expected.tcp is not None:
        assert (family, address) == (socket.AF_INET, expected.tcp)
    else:
        assert (family, address) == (socket.AF_UNIX, expected.unix_path)


def test_the_endpoint_prints_as_the_user_would_write_it() -> None:
    assert str(usbmuxd_endpoint("127.0.0.1:27015")) == "127.0.0.1:27015"
    assert str(usbmuxd_endpoint(None, "darwin")) == "/var/run/usbmuxd"
