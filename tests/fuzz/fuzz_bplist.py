"""Differential fuzzing of the native binary plist reader (agent._bplist) against plistlib's: for any bytes after
the `bplist00` magic, both give the same objects or both refuse them. plistlib's reader is instrumented, so
libFuzzer steers towards inputs that take its every branch; the native reader must follow it on each."""

from __future__ import annotations

from harness import fuzz, instrumented

with instrumented():
    import plistlib  # noqa: F401  (instrumented for coverage before plist_outcomes imports it)

from plist_outcomes import disagreement


def test_one_input(data: bytes) -> None:
    data = b"bplist00" + data.removeprefix(b"bplist00")
    found = disagreement(data)
    if found is not None:
        raise AssertionError(f"the readers disagree on {data!r}: {found}")


if __name__ == "__main__":
    fuzz(test_one_input)
