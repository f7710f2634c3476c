"""Fuzz the property-list loader (Info.plist, Status.plist, Manifest.plist): any bytes either load as a
dictionary or raise BackupFormatError; a loaded Manifest.plist can be rewritten for a decrypted export, and the
device identity can be read from any loaded pair."""

from __future__ import annotations

from harness import fuzz, instrumented

with instrumented():
    from agent.errors import CofferError
    from agent.ios.folder import decrypted_manifest_plist
    from agent.ios.identity import DeviceIdentity
    from agent.ios.plists import load_plist_dict


def test_one_input(data: bytes) -> None:
    try:
        value = load_plist_dict(data, "Info.plist")
        DeviceIdentity.from_plists(value, value)
        decrypted_manifest_plist(data)
    except CofferError:
        pass


if __name__ == "__main__":
    fuzz(test_one_input)
