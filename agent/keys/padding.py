"""Size classes for everything Coffer stores, so an object's size says little about its content.

Padmé (Nikitin, Barman, Lueks, Underwood, Hubaux, Ford: "Reducing Metadata Leakage from Encrypted
Files and Communication with PURBs", PETS 2019) rounds a length L up so that only its top
⌊log2 log2 L⌋ + 1 bits stay, which leaks O(log log L) bits at an overhead of at most 12 %.
Below `MIN_OBJECT_SIZE` every object is the same size, so small objects (a slot, a tombstone, a
lease, a one-file snapshot) cannot be told apart by their size.

A padded plaintext is framed as `u32 length ‖ payload ‖ zero bytes`; it is always sealed
afterwards, so the zero bytes never reach storage in clear.
"""

from __future__ import annotations

import struct

MIN_OBJECT_SIZE = 512
_LENGTH = struct.Struct("<I")


class PaddingError(ValueError):
    """A framed plaintext whose length field does not fit: damaged or not a padded object."""


def padme(length: int) -> int:
    """The Padmé padded length of `length`: at most 12 % more."""
    if length < 2:
        return length
    exponent = length.bit_length() - 1
    significant = exponent.bit_length()
    mask = (1 << (exponent - significant)) - 1
    return (length + mask) & ~mask


def object_size(length: int) -> int:
    """The stored size of an object of `length` bytes: its Padmé class, and never below the minimum."""
    return padme(max(length, MIN_OBJECT_SIZE))


def frame(payload: bytes, overhead: int) -> bytes:
    """`payload` framed so that, with `overhead` bytes of sealing added, the object has a padded size."""
    needed = overhead + _LENGTH.size + len(payload)
    return _LENGTH.pack(len(payload)) + payload + bytes(object_size(needed) - needed)


def unframe(framed: bytes) -> bytes:
    if len(framed) < _LENGTH.size:
        raise PaddingError("padded object too short")
    (length,) = _LENGTH.unpack_from(framed, 0)
    if _LENGTH.size + length > len(framed):
        raise PaddingError("padded object's length field is out of range")
    return framed[_LENGTH.size : _LENGTH.size + length]
