"""The native extension against the reference libraries (issue 14, "No home-made primitives"): AES-256-GCM
against `cryptography`, zstd against `zstandard`, on test vectors and on random
inputs. The cut finder is checked against the byte-by-byte reference in tests/test_chunker.py."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

import pytest
import zstandard
from conftest import runs_without_the_gil
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import _native as native

# NIST GCM test vector (gcmEncryptExtIV256.rsp, Count 0 of [Keylen = 256][IVlen = 96][PTlen = 128][AADlen = 128]).
NIST_KEY = bytes.fromhex("92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b")
NIST_NONCE = bytes.fromhex("ac93a1a6145299bde902f21a")
NIST_PLAIN = bytes.fromhex("2d71bcfa914e4ac045b2aa60955fad24")
NIST_AAD = bytes.fromhex("1e0889016f67601c8ebea4943bc23ad6")
NIST_SEALED = bytes.fromhex("8995ae2e6df3dbf96fac7b7137bae67f" "eca5aa77d51d4a0a14d9c51e1da474ab")


def sealed_length(flag: int, payload: bytes) -> int:
    return len(payload) + (flag >= 0) + 16


def seal(key: bytes, nonce: bytes, associated: bytes, flag: int, payload: bytes) -> bytes:
    """`gcm_seal_into` one buffer, as a bytes result."""
    out = bytearray(sealed_length(flag, payload))
    native.gcm_seal_into(key, nonce, associated, flag, payload, [out])
    return bytes(out)


def test_gcm_seal_matches_the_nist_vector_and_opens_it() -> None:
    assert seal(NIST_KEY, NIST_NONCE, NIST_AAD, -1, NIST_PLAIN) == NIST_SEALED
    assert native.gcm_open(NIST_KEY, NIST_NONCE, NIST_AAD, NIST_SEALED) == NIST_PLAIN
    # With a flag byte: the same bytes as sealing the flag and the payload together.
    flagged = seal(NIST_KEY, NIST_NONCE, NIST_AAD, NIST_PLAIN[0], NIST_PLAIN[1:])
    assert flagged == NIST_SEALED
    assert native.gcm_open(NIST_KEY, NIST_NONCE, NIST_AAD, NIST_SEALED, True) == (NIST_PLAIN[0], NIST_PLAIN[1:])


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=12, max_size=12),
    associated=st.binary(max_size=80),
    flag=st.integers(-1, 255),
    payload=st.binary(max_size=5000),
)
def test_gcm_is_byte_identical_to_cryptography(key: bytes, nonce: bytes, associated: bytes, flag: int, payload: bytes) -> None:
    plaintext = (bytes([flag]) if flag >= 0 else b"") + payload
    sealed = seal(key, nonce, associated, flag, payload)
    assert sealed == AESGCM(key).encrypt(nonce, plaintext, associated)
    assert native.gcm_open(key, nonce, associated, sealed) == plaintext
    if flag >= 0:
        assert native.gcm_open(key, nonce, associated, sealed, True) == (flag, payload)


@settings(max_examples=150, deadline=None)
@given(
    payload=st.binary(max_size=3000),
    flag=st.integers(-1, 255),
    cuts=st.lists(st.integers(0, 3100), max_size=6),
)
def test_a_blob_sealed_across_regions_is_the_same_bytes(payload: bytes, flag: int, cuts: list[int]) -> None:
    """How a pack seals a blob that spans segments: any split, empty regions included, the flag byte or the tag
    cut anywhere."""
    key, nonce = os.urandom(32), os.urandom(12)
    expected = AESGCM(key).encrypt(nonce, (bytes([flag]) if flag >= 0 else b"") + payload, b"blob")
    bounds = sorted({0, len(expected), *(min(cut, len(expected)) for cut in cuts)})
    regions = [bytearray(end - start) for start, end in itertools.pairwise(bounds)]
    native.gcm_seal_into(key, nonce, b"blob", flag, payload, regions)
    assert b"".join(regions) == expected


def test_sealing_into_regions_of_the_wrong_size_or_read_only_is_refused() -> None:
    key, nonce, payload = os.urandom(32), os.urandom(12), b"x" * 100
    for regions in ([bytearray(116)], [bytearray(118)], [bytearray(50), bytearray(50)]):
        with pytest.raises(ValueError, match="the regions hold"):
            native.gcm_seal_into(key, nonce, b"", 1, payload, regions)
    with pytest.raises((TypeError, BufferError, ValueError)):
        native.gcm_seal_into(key, nonce, b"", 1, payload, [bytes(117)])


@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=3000), associated=st.binary(max_size=40), flag=st.integers(-1, 255))
def test_gcm_opened_in_place_is_cryptographys_plaintext(payload: bytes, associated: bytes, flag: int) -> None:
    """How a restore opens a blob it has just read: over its own bytes, with no output buffer."""
    key, nonce = os.urandom(32), os.urandom(12)
    flagged = flag >= 0
    plaintext = (bytes([flag]) if flagged else b"") + payload
    buffer = bytearray(AESGCM(key).encrypt(nonce, plaintext, associated))
    opened = native.gcm_open_in_place(key, nonce, associated, buffer, flagged)
    if flagged:
        assert opened == (flag, len(payload))
    else:
        assert opened == len(payload)
    assert bytes(buffer[int(flagged) : int(flagged) + len(payload)]) == payload


def open_in_place(key: bytes, nonce: bytes, associated: bytes, sealed: bytes, flagged: bool = False) -> object:
    return native.gcm_open_in_place(key, nonce, associated, bytearray(sealed), flagged)


@pytest.mark.parametrize("gcm_open", [native.gcm_open, open_in_place], ids=["new buffer", "in place"])
def test_gcm_open_refuses_every_alteration(gcm_open: Callable[..., object]) -> None:
    key, nonce, payload = os.urandom(32), os.urandom(12), os.urandom(3000)
    sealed = seal(key, nonce, b"blob", 1, payload)
    for position in (0, 1, 1500, len(sealed) - 17, len(sealed) - 1):
        altered = bytearray(sealed)
        altered[position] ^= 0x40
        with pytest.raises(native.AuthenticationError):
            gcm_open(key, nonce, b"blob", bytes(altered), True)
    for wrong in ((os.urandom(32), nonce, b"blob"), (key, os.urandom(12), b"blob"), (key, nonce, b"blub")):
        with pytest.raises(native.AuthenticationError):
            gcm_open(*wrong, sealed)
    with pytest.raises(native.AuthenticationError, match="shorter than its tag"):
        gcm_open(key, nonce, b"blob", sealed[:10])
    with pytest.raises(ValueError, match="32 bytes"):
        seal(key[:16], nonce, b"", 0, payload)
    with pytest.raises(ValueError, match="12 bytes"):
        seal(key, nonce[:8], b"", 0, payload)


def test_gcm_open_in_place_refuses_a_read_only_buffer() -> None:
    key, nonce = os.urandom(32), os.urandom(12)
    with pytest.raises((TypeError, BufferError, ValueError)):
        native.gcm_open_in_place(key, nonce, b"blob", seal(key, nonce, b"blob", 1, b"payload"), True)


@settings(max_examples=100, deadline=None)
@given(data=st.one_of(st.binary(max_size=20_000), st.text(max_size=5000).map(lambda text: (text * 5).encode())))
def test_zstd_interoperates_with_zstandard(data: bytes) -> None:
    frame = native.ZstdCompressor(3).compress_within(data, len(data) + 64)
    assert frame is not None
    assert zstandard.ZstdDecompressor().decompress(frame) == data
    assert native.ZstdDecompressor().decompress(frame, len(data)) == data
    if data:
        assert native.ZstdDecompressor().decompress(zstandard.ZstdCompressor(level=3).compress(data), len(data)) == data


def test_zstd_frames_are_views_a_later_call_never_overwrites_while_held() -> None:
    compressor = native.ZstdCompressor(3)
    first_text, second_text = b"first frame " * 5000, b"the second " * 7000
    first = compressor.compress_within(first_text, len(first_text))
    assert isinstance(first, memoryview)
    kept = bytes(first)
    second = compressor.compress_within(second_text, len(second_text))
    assert second is not None and bytes(first) == kept  # held: the second frame went to a new buffer
    assert zstandard.ZstdDecompressor().decompress(bytes(second)) == second_text
    buffer = second.obj
    first.release()
    second.release()
    third = compressor.compress_within(first_text, len(first_text))
    assert third is not None and third.obj is buffer and bytes(third) == kept  # released: reused, no allocation
    larger = os.urandom(50_000).hex().encode()  # needs more room than the buffer has
    fourth = compressor.compress_within(larger, len(larger))
    assert fourth is not None and zstandard.ZstdDecompressor().decompress(bytes(fourth)) == larger
    assert bytes(third) == kept


def test_zstd_gives_up_when_it_does_not_pay_and_refuses_bad_frames() -> None:
    compressor = native.ZstdCompressor(3)
    random_bytes = os.urandom(100_000)
    assert compressor.compress_within(random_bytes, len(random_bytes) - 1) is None
    text = b"SQLite format 3 " * 10_000
    frame = compressor.compress_within(text, len(text))
    assert frame is not None and len(frame) < len(text) // 50
    with pytest.raises(native.ZstdDataError, match="expected"):
        native.ZstdDecompressor().decompress(frame, len(text) - 1)
    with pytest.raises(native.ZstdDataError):
        native.ZstdDecompressor().decompress(frame[:-5], len(text))
    with pytest.raises(native.ZstdDataError):
        native.ZstdDecompressor().decompress(b"not a zstd frame at all", 10)
    with pytest.raises(native.ZstdDataError):
        native.ZstdDecompressor().decompress(b"", 10)


@pytest.mark.parametrize("work", ["seal", "open", "zstd"])
def test_per_byte_work_releases_the_gil(work: str) -> None:
    """With preemption switched off, the main thread runs before the worker ends only if the worker's native
    call released the GIL."""
    key, nonce = os.urandom(32), os.urandom(12)
    data = bytes(64 << 20)
    sealed = seal(key, nonce, b"", 0, data)
    hard_to_compress = os.urandom(1 << 20) * 4
    out = bytearray(len(sealed))
    calls = {
        "seal": lambda: native.gcm_seal_into(key, nonce, b"", 0, data, [out]),
        "open": lambda: native.gcm_open(key, nonce, b"", sealed, True),
        "zstd": lambda: native.ZstdCompressor(19).compress_within(hard_to_compress, 1 << 30),
    }
    runs_without_the_gil(calls[work])
