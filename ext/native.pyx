# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Per-byte hot loops of Coffer, run with the GIL released.

For the keyed content-defined chunker (`agent.pipeline.chunker`): `GearScanner` rolls
the gear hash over a buffer and reports the candidate cut points (hash & mask == 0)
with their hash values, laid out as the 16-byte blocks the chunker's PRF encrypts;
once Python has encrypted them (AES lives in `cryptography`, not here),
`first_passing_candidate` applies the normalized cut rule to the PRF values. Content
with many candidates (periodic data that happens to hit the mask) stays fast with
both loops in C.
"""

from cpython.array cimport array, clone
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memset

cdef enum:
    GEAR_TABLE_BYTES = 256 * 8
    PRF_BLOCK = 16

cdef array _OFFSET_ARRAY_TEMPLATE = array("Q")


cdef struct CandidateList:
    uint64_t *offsets
    uint8_t *prf_blocks
    size_t count
    size_t capacity


cdef int _grow(CandidateList *found) noexcept nogil:
    """Doubles the capacity of `found`; returns 0 when memory runs out."""
    cdef size_t capacity = found.capacity * 2 if found.capacity else 1024
    cdef uint64_t *offsets = <uint64_t *> realloc(found.offsets, capacity * sizeof(uint64_t))
    if offsets == NULL:
        return 0
    found.offsets = offsets
    cdef uint8_t *blocks = <uint8_t *> realloc(found.prf_blocks, capacity * PRF_BLOCK)
    if blocks == NULL:
        return 0
    found.prf_blocks = blocks
    found.capacity = capacity
    return 1


cdef int _record(CandidateList *found, uint64_t cut_offset, uint64_t hash_value) noexcept nogil:
    """Appends one candidate; the PRF block is the hash little-endian, then 8 zero bytes."""
    if found.count == found.capacity and not _grow(found):
        return 0
    found.offsets[found.count] = cut_offset
    cdef uint8_t *block = found.prf_blocks + found.count * PRF_BLOCK
    cdef int shift
    for shift in range(8):
        block[shift] = <uint8_t> (hash_value >> (8 * shift))
    memset(block + 8, 0, 8)
    found.count += 1
    return 1


cdef size_t _scan(
    const uint64_t *gear,
    uint64_t mask,
    const uint8_t *data,
    size_t length,
    size_t warmup,
    size_t max_candidates,
    uint64_t *hash_state,
    CandidateList *found,
) noexcept nogil:
    """The hot loop; returns the number of bytes hashed, or (size_t)-1 when memory runs out."""
    cdef uint64_t h = hash_state[0]
    cdef uint64_t last_recorded = 0
    cdef size_t i
    cdef size_t end = length
    for i in range(min(warmup, length)):
        h = (h << 1) + gear[data[i]]
    for i in range(min(warmup, length), length):
        h = (h << 1) + gear[data[i]]
        if (h & mask) == 0:
            if found.count and h == last_recorded:
                continue
            if not _record(found, i + 1, h):
                return <size_t> -1
            last_recorded = h
            if found.count == max_candidates:
                end = i + 1
                break
    hash_state[0] = h
    return end


cdef class GearScanner:
    """Finds the candidate cut points of a byte stream; immutable, so usable from any thread.

    `gear_table` is 256 little-endian uint64 values (2048 bytes); a position is a
    candidate when the rolling hash ANDed with `candidate_mask` is zero.
    """

    cdef uint64_t gear[256]
    cdef readonly uint64_t candidate_mask

    def __cinit__(self, const uint8_t[::1] gear_table not None, uint64_t candidate_mask):
        if gear_table.shape[0] != GEAR_TABLE_BYTES:
            raise ValueError(f"the gear table must be {GEAR_TABLE_BYTES} bytes, got {gear_table.shape[0]}")
        cdef int entry, byte
        cdef uint64_t value
        for entry in range(256):
            value = 0
            for byte in range(8):
                value |= (<uint64_t> gear_table[entry * 8 + byte]) << (8 * byte)
            self.gear[entry] = value
        self.candidate_mask = candidate_mask

    def scan(self, const uint8_t[::1] data not None, uint64_t hash_state, size_t warmup, size_t max_candidates):
        """Rolls the hash over `data`, continuing from `hash_state`.

        The first `warmup` bytes only feed the hash: they complete its 64-byte window.
        From then on, the position after each byte whose hash is a candidate is
        recorded, until `max_candidates` are found or the data ends. A candidate with
        the same hash as the one recorded before it is left out: its PRF value is the
        same, so under one cut threshold it cannot pass where that one failed. This
        keeps runs of one byte value, whose hash is constant, at full speed.

        Returns `(cut_offsets, prf_blocks, hash_state, scanned)`: the candidate cut
        offsets within `data` (an array('Q')), one 16-byte PRF input block per
        candidate (bytes: the hash little-endian, then 8 zero bytes), the hash state
        after the last byte hashed, and how many bytes were hashed.
        """
        if max_candidates == 0:
            raise ValueError("max_candidates must be positive")
        cdef size_t length = data.shape[0]
        cdef CandidateList found
        found.offsets = NULL
        found.prf_blocks = NULL
        found.count = 0
        found.capacity = 0
        cdef uint64_t state = hash_state
        cdef size_t scanned
        cdef array cut_offsets
        try:
            with nogil:
                scanned = _scan(
                    self.gear, self.candidate_mask, &data[0] if length else NULL, length,
                    warmup, max_candidates, &state, &found,
                )
            if scanned == <size_t> -1:
                raise MemoryError("out of memory while scanning for chunk boundaries")
            cut_offsets = clone(_OFFSET_ARRAY_TEMPLATE, found.count, False)
            if found.count:
                memcpy(cut_offsets.data.as_voidptr, found.offsets, found.count * sizeof(uint64_t))
            prf_blocks = PyBytes_FromStringAndSize(<char *> found.prf_blocks, found.count * PRF_BLOCK)
            return cut_offsets, prf_blocks, state, scanned
        finally:
            free(found.offsets)
            free(found.prf_blocks)


def first_passing_candidate(
    array cut_offsets not None,
    const uint8_t[::1] prf_output not None,
    uint64_t loose_from,
    uint64_t strict_threshold,
    uint64_t loose_threshold,
):
    """The index of the first candidate whose PRF value passes the normalized cut rule, or -1.

    `prf_output` holds one 16-byte AES block per candidate, whose first 8 bytes
    (little-endian) are the PRF value. A candidate cut offset below `loose_from` needs a
    value below `strict_threshold`, from `loose_from` on one below `loose_threshold`.
    """
    cdef Py_ssize_t count = len(cut_offsets)
    if cut_offsets.ob_descr.typecode != c'Q' or prf_output.shape[0] != count * PRF_BLOCK:
        raise ValueError("expected an array('Q') of offsets and one 16-byte block per offset")
    cdef Py_ssize_t index
    with nogil:
        index = _first_passing(
            cut_offsets.data.as_ulonglongs, &prf_output[0] if count else NULL, count,
            loose_from, strict_threshold, loose_threshold,
        )
    return index


cdef Py_ssize_t _first_passing(
    const unsigned long long *offsets,
    const uint8_t *prf_output,
    Py_ssize_t count,
    uint64_t loose_from,
    uint64_t strict_threshold,
    uint64_t loose_threshold,
) noexcept nogil:
    cdef const uint8_t *block
    cdef uint64_t value
    cdef Py_ssize_t index
    cdef int byte
    for index in range(count):
        block = prf_output + index * PRF_BLOCK
        value = 0
        for byte in range(8):
            value |= (<uint64_t> block[byte]) << (8 * byte)
        if value < (strict_threshold if offsets[index] < loose_from else loose_threshold):
            return index
    return -1
