# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Coffer's per-byte work, one call per buffer or chunk, with the GIL released over the whole buffer.

* `CutFinder`: the keyed content-defined chunker's cut rule (`agent.pipeline.chunker`): the gear hash, the
  AES-128 PRF of each candidate and the normalized cut decision, in one pass over each piece of a stream.
* `gcm_seal_into` / `gcm_open`: AES-256-GCM through OpenSSL's libcrypto (EVP), for pack blobs; a blob is
  sealed straight into the pack's memory, across the segments it spans.
* `ZstdCompressor` / `ZstdDecompressor`: libzstd, with a context (and scratch buffer) reused call after call.
* `copy_into`: a memmove between Python buffers, so that filling a reused buffer does not hold the GIL;
  `buffer_address`: where a buffer lies in memory (O_DIRECT writes need page-aligned sources).

No primitive is written here: every cipher, hash and codec is the system library's. tests/test_native.py
checks each against `cryptography`, `zstandard` and a pure-Python reference chunker.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memmove, memset
from libc.limits cimport INT_MAX

cimport libcrypto as ssl
cimport libzstd as zstd

cdef enum:
    GEAR_TABLE_BYTES = 256 * 8
    PRF_BLOCK = 16
    HASH_WINDOW = 64
    GCM_TAG = 16
    GCM_NONCE = 12
    # The chunker's scan: blocks of SCAN_BLOCK bytes, each hashed as SCAN_LANES stretches side by side (a block
    # shorter than SCAN_LANES * MIN_LANE_BYTES as one). Past a cut, at most a block was hashed for nothing.
    SCAN_BLOCK = 32 * 1024
    SCAN_LANES = 4
    MIN_LANE_BYTES = 256


class AuthenticationError(Exception):
    """AES-GCM authentication failed: wrong key, nonce or associated data, or altered bytes."""


class NativeLibraryError(Exception):
    """libcrypto or libzstd reported a failure that is not about the input (out of memory, bad key size)."""


class ZstdDataError(Exception):
    """A zstd frame does not decompress, or not to the length the caller expects."""


# --- keyed content-defined chunking --------------------------------------------------------------------------

cdef struct CutList:
    uint64_t *cuts
    size_t count
    size_t capacity


cdef int _append_cut(CutList *found, uint64_t cut) noexcept nogil:
    cdef size_t capacity
    cdef uint64_t *grown
    if found.count == found.capacity:
        capacity = found.capacity * 2 if found.capacity else 64
        grown = <uint64_t *> realloc(found.cuts, capacity * sizeof(uint64_t))
        if grown == NULL:
            return 0
        found.cuts = grown
        found.capacity = capacity
    found.cuts[found.count] = cut
    found.count += 1
    return 1


cdef class CutFinder:
    """The cut rule of one stream (see agent/pipeline/chunker.py for the rule and its constants).

    `feed(piece, stream_offset)` takes the stream's next piece and returns the end offsets of the chunks it
    settles, in stream coordinates; a cut is settled as soon as the byte before it has been seen. One instance
    serves one stream on one thread at a time.
    """

    cdef uint64_t gear[256]
    cdef uint64_t mask, strict_threshold, loose_threshold
    cdef uint64_t min_size, avg_size, max_size
    cdef uint64_t chunk_start, scan_position, hash_state
    cdef uint64_t last_prf_input, last_prf_value
    cdef int have_last_prf
    cdef ssl.EVP_CIPHER_CTX *prf

    def __cinit__(self, const uint8_t[::1] gear_table not None, const uint8_t[::1] prf_key not None,
                  uint64_t candidate_mask, uint64_t strict_threshold, uint64_t loose_threshold,
                  uint64_t min_size, uint64_t avg_size, uint64_t max_size):
        if gear_table.shape[0] != GEAR_TABLE_BYTES:
            raise ValueError(f"the gear table must be {GEAR_TABLE_BYTES} bytes, got {gear_table.shape[0]}")
        if prf_key.shape[0] != 16:
            raise ValueError(f"the PRF key must be 16 bytes, got {prf_key.shape[0]}")
        if not HASH_WINDOW <= min_size <= avg_size <= max_size:
            raise ValueError("chunk sizes must satisfy 64 <= min <= avg <= max")
        cdef int entry, byte
        cdef uint64_t value
        for entry in range(256):
            value = 0
            for byte in range(8):
                value |= (<uint64_t> gear_table[entry * 8 + byte]) << (8 * byte)
            self.gear[entry] = value
        self.mask = candidate_mask
        self.strict_threshold = strict_threshold
        self.loose_threshold = loose_threshold
        self.min_size = min_size
        self.avg_size = avg_size
        self.max_size = max_size
        self.prf = ssl.EVP_CIPHER_CTX_new()
        if self.prf == NULL or ssl.EVP_EncryptInit_ex(self.prf, ssl.EVP_aes_128_ecb(), NULL, &prf_key[0], NULL) != 1:
            raise NativeLibraryError("libcrypto could not set up AES-128-ECB for the chunker PRF")
        ssl.EVP_CIPHER_CTX_set_padding(self.prf, 0)
        self._start_chunk(0)

    def __dealloc__(self):
        if self.prf != NULL:
            ssl.EVP_CIPHER_CTX_free(self.prf)

    cdef void _start_chunk(self, uint64_t chunk_start) noexcept nogil:
        self.chunk_start = chunk_start
        self.scan_position = chunk_start + self.min_size - HASH_WINDOW  # next byte to hash
        self.hash_state = 0

    cdef int _prf_value(self, uint64_t h, uint64_t *value) noexcept nogil:
        """v = the first 8 bytes (little-endian) of AES-128-ECB(key, h little-endian || 8 zero bytes)."""
        if self.have_last_prf and h == self.last_prf_input:  # runs of one byte value keep the hash constant
            value[0] = self.last_prf_value
            return 1
        cdef uint8_t block[PRF_BLOCK]
        cdef uint8_t out[PRF_BLOCK * 2]
        cdef int out_length = 0
        cdef int shift
        for shift in range(8):
            block[shift] = <uint8_t> (h >> (8 * shift))
        memset(block + 8, 0, 8)
        if ssl.EVP_EncryptUpdate(self.prf, out, &out_length, block, PRF_BLOCK) != 1 or out_length != PRF_BLOCK:
            return 0
        cdef uint64_t v = 0
        for shift in range(8):
            v |= (<uint64_t> out[shift]) << (8 * shift)
        self.last_prf_input = h
        self.last_prf_value = v
        self.have_last_prf = 1
        value[0] = v
        return 1

    cdef int _judge(self, uint64_t i, uint64_t h, uint64_t first_loose, int *passes) noexcept nogil:
        """Whether the candidate that ends at byte i (hash h) cuts: its PRF value under the threshold that holds
        at its length. Returns 1, or 0 when libcrypto fails."""
        cdef uint64_t v
        if not self._prf_value(h, &v):
            return 0
        passes[0] = v < (self.strict_threshold if i < first_loose else self.loose_threshold)
        return 1

    cdef int _scan_block(self, const uint8_t *data, uint64_t stream_offset, uint64_t begin, uint64_t end,
                         uint64_t first_loose, uint64_t *hash_state, uint64_t *cut) noexcept nogil:
        """Hashes bytes [begin, end), every one of which may end a chunk, and finds the first whose candidate
        passes: `cut` = its position + 1, or 0 if none does (then `hash_state` is the hash after byte end - 1).
        Returns 1, or 0 when libcrypto fails.

        The hash is one chain of dependent additions, about two cycles a byte on its own. A block of
        SCAN_LANES * MIN_LANE_BYTES bytes or more is cut into four stretches hashed side by side, each from 64
        bytes before its start (the hash forgets a byte after 64 positions, so that gives the stream's own
        hash): four independent chains, which the CPU runs in parallel. The earliest stretch with a passing
        candidate holds the cut."""
        cdef uint64_t length = end - begin
        cdef uint64_t mask = self.mask
        cdef const uint64_t *gear = self.gear
        cdef uint64_t stretch, k, j, lane, position
        cdef uint64_t h0, h1, h2, h3
        cdef uint64_t h[SCAN_LANES]
        cdef uint64_t found[SCAN_LANES]
        cdef const uint8_t *p0
        cdef const uint8_t *p1
        cdef const uint8_t *p2
        cdef const uint8_t *p3
        cdef int passes = 0
        h0 = hash_state[0]
        position = begin
        if length >= SCAN_LANES * MIN_LANE_BYTES:
            stretch = length // SCAN_LANES
            p0 = data + (begin - stream_offset)
            p1 = p0 + stretch
            p2 = p1 + stretch
            p3 = p2 + stretch
            h1 = h2 = h3 = 0
            for j in range(HASH_WINDOW):
                h1 = (h1 << 1) + gear[(p1 - HASH_WINDOW)[j]]
                h2 = (h2 << 1) + gear[(p2 - HASH_WINDOW)[j]]
                h3 = (h3 << 1) + gear[(p3 - HASH_WINDOW)[j]]
            found[0] = found[1] = found[2] = found[3] = 0
            for k in range(stretch):
                h0 = (h0 << 1) + gear[p0[k]]
                h1 = (h1 << 1) + gear[p1[k]]
                h2 = (h2 << 1) + gear[p2[k]]
                h3 = (h3 << 1) + gear[p3[k]]
                if ((h0 & mask) == 0) | ((h1 & mask) == 0) | ((h2 & mask) == 0) | ((h3 & mask) == 0):
                    h[0] = h0
                    h[1] = h1
                    h[2] = h2
                    h[3] = h3
                    for lane in range(SCAN_LANES):
                        if (h[lane] & mask) == 0 and not found[lane]:
                            position = begin + lane * stretch + k
                            if not self._judge(position, h[lane], first_loose, &passes):
                                return 0
                            if passes:
                                found[lane] = position + 1
                    if found[0]:
                        cut[0] = found[0]  # nothing comes before the first stretch
                        return 1
            for lane in range(SCAN_LANES):
                if found[lane]:
                    cut[0] = found[lane]
                    return 1
            h0 = h3  # the last stretch goes on over the bytes the division left over
            position = begin + SCAN_LANES * stretch
        while position < end:
            h0 = (h0 << 1) + gear[data[position - stream_offset]]
            if (h0 & mask) == 0:
                if not self._judge(position, h0, first_loose, &passes):
                    return 0
                if passes:
                    cut[0] = position + 1
                    return 1
            position += 1
        hash_state[0] = h0
        cut[0] = 0
        return 1

    cdef int _feed(self, const uint8_t *data, uint64_t length, uint64_t stream_offset, CutList *found) noexcept nogil:
        """Returns 1, or 0 when libcrypto fails or memory runs out."""
        cdef uint64_t data_end = stream_offset + length
        cdef uint64_t forced, first_counted, first_loose, stop, i, h, block_end, cut
        cdef const uint64_t *gear = self.gear
        while True:
            forced = self.chunk_start + self.max_size
            if self.scan_position == forced:
                if not _append_cut(found, forced):
                    return 0
                self._start_chunk(forced)
                continue
            if self.scan_position >= data_end:
                return 1
            # The byte that ends min_size into the chunk is the first whose following position may cut; the one
            # that ends avg_size into it is the first judged under the loose threshold.
            first_counted = self.chunk_start + self.min_size - 1
            first_loose = self.chunk_start + self.avg_size - 1
            stop = forced if forced < data_end else data_end
            h = self.hash_state
            i = self.scan_position
            while i < stop and i < first_counted:  # the 63 bytes that only fill the hash window
                h = (h << 1) + gear[data[i - stream_offset]]
                i += 1
            cut = 0
            while i < stop:
                block_end = i + SCAN_BLOCK if stop - i > SCAN_BLOCK else stop
                if not self._scan_block(data, stream_offset, i, block_end, first_loose, &h, &cut):
                    return 0
                if cut:
                    break
                i = block_end
            if cut:
                if not _append_cut(found, cut):
                    return 0
                self._start_chunk(cut)
            else:
                self.hash_state = h
                self.scan_position = i

    def feed(self, const uint8_t[::1] piece not None, uint64_t stream_offset):
        cdef CutList found
        found.cuts = NULL
        found.count = 0
        found.capacity = 0
        cdef uint64_t length = piece.shape[0]
        cdef int ok = 1
        cdef size_t index
        try:
            if length:
                with nogil:
                    ok = self._feed(&piece[0], length, stream_offset, &found)
            if not ok:
                raise MemoryError("out of memory (or a libcrypto failure) while finding chunk boundaries")
            return [found.cuts[index] for index in range(found.count)]
        finally:
            free(found.cuts)


# --- AES-256-GCM -----------------------------------------------------------------------------------------

cdef int _gcm_start(ssl.EVP_CIPHER_CTX *ctx, int encrypt, const uint8_t *key, const uint8_t *nonce,
                    const uint8_t *ad, int ad_length) noexcept nogil:
    """Set `ctx` up for AES-256-GCM in one direction with a 12-byte nonce, and feed it the associated data."""
    cdef int written = 0
    if ssl.EVP_CipherInit_ex(ctx, ssl.EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) != 1:
        return 0
    if ssl.EVP_CIPHER_CTX_ctrl(ctx, ssl.EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE, NULL) != 1:
        return 0
    if ssl.EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, encrypt) != 1:
        return 0
    return not ad_length or ssl.EVP_CipherUpdate(ctx, NULL, &written, ad, ad_length) == 1


cdef int _gcm_open_with(ssl.EVP_CIPHER_CTX *ctx, const uint8_t *key, const uint8_t *nonce, const uint8_t *ad,
                        int ad_length, const uint8_t *sealed, int sealed_length, uint8_t *flag_out,
                        uint8_t *out) noexcept nogil:
    """Decrypts sealed (ciphertext + tag): the first plaintext byte to `flag_out` unless it is NULL, the rest to
    `out`. Returns 1, 0 when libcrypto fails, -1 when the tag does not verify."""
    cdef int written = 0
    cdef int body = sealed_length - GCM_TAG
    if not _gcm_start(ctx, 0, key, nonce, ad, ad_length):
        return 0
    if flag_out != NULL:
        if ssl.EVP_DecryptUpdate(ctx, flag_out, &written, sealed, 1) != 1:
            return 0
        sealed += 1
        body -= 1
    if body and ssl.EVP_DecryptUpdate(ctx, out, &written, sealed, body) != 1:
        return 0
    if ssl.EVP_CIPHER_CTX_ctrl(ctx, ssl.EVP_CTRL_GCM_SET_TAG, GCM_TAG, <void *> (sealed + body)) != 1:
        return 0
    return 1 if ssl.EVP_DecryptFinal_ex(ctx, out + written, &written) == 1 else -1


cdef _check_gcm_arguments(const uint8_t[::1] key, const uint8_t[::1] nonce, Py_ssize_t length):
    if key.shape[0] != 32:
        raise ValueError(f"an AES-256-GCM key is 32 bytes, got {key.shape[0]}")
    if nonce.shape[0] != GCM_NONCE:
        raise ValueError(f"an AES-GCM nonce is {GCM_NONCE} bytes, got {nonce.shape[0]}")
    if length > INT_MAX - 64:
        raise ValueError("a blob must be shorter than 2 GiB")


cdef uint8_t _gcm_open_to(const uint8_t[::1] key, const uint8_t[::1] nonce, const uint8_t[::1] associated,
                          const uint8_t *sealed, Py_ssize_t length, bint flagged, uint8_t *out) except? 0:
    """Decrypts `length` sealed bytes into `out` (which may be `sealed + flagged` itself: GCM is a stream mode,
    and libcrypto decrypts in place when output and input are the same bytes); returns the flag byte.
    Raises AuthenticationError when the tag does not verify."""
    cdef const uint8_t *ad = &associated[0] if associated.shape[0] else NULL
    cdef int ad_length = <int> associated.shape[0]
    cdef int result = 0
    cdef uint8_t flag = 0
    cdef ssl.EVP_CIPHER_CTX *ctx
    with nogil:
        ctx = ssl.EVP_CIPHER_CTX_new()
        if ctx != NULL:
            result = _gcm_open_with(ctx, &key[0], &nonce[0], ad, ad_length, sealed, <int> length,
                                    &flag if flagged else NULL, out)
            ssl.EVP_CIPHER_CTX_free(ctx)
    if result < 0:
        raise AuthenticationError("AES-GCM authentication failed")
    if result == 0:
        raise NativeLibraryError("libcrypto failed to decrypt with AES-256-GCM")
    return flag


cdef Py_ssize_t _gcm_plain_length(const uint8_t[::1] key, const uint8_t[::1] nonce, Py_ssize_t length,
                                  bint flagged) except -1:
    _check_gcm_arguments(key, nonce, length)
    if length < GCM_TAG + flagged:
        raise AuthenticationError("the sealed data is shorter than its tag")
    return length - GCM_TAG - flagged


def gcm_open(const uint8_t[::1] key not None, const uint8_t[::1] nonce not None,
             const uint8_t[::1] associated not None, const uint8_t[::1] sealed not None, bint flagged=False):
    """The plaintext of AES-256-GCM `sealed` (ciphertext + tag); AuthenticationError when it does not verify.
    With `flagged`, `(flag, payload)`: the first plaintext byte apart, as `gcm_seal_into` with a flag wrote it."""
    cdef Py_ssize_t plain_length = _gcm_plain_length(key, nonce, sealed.shape[0], flagged)
    cdef object plain = PyBytes_FromStringAndSize(NULL, plain_length)
    cdef uint8_t flag = _gcm_open_to(key, nonce, associated, &sealed[0], sealed.shape[0], flagged,
                                     <uint8_t *> PyBytes_AS_STRING(plain))
    return (flag, plain) if flagged else plain


def gcm_open_in_place(const uint8_t[::1] key not None, const uint8_t[::1] nonce not None,
                      const uint8_t[::1] associated not None, uint8_t[::1] sealed not None, bint flagged=False):
    """As `gcm_open`, but the plaintext is written over `sealed` itself, a writable buffer the caller owns (a
    blob just read): no output buffer to allocate and fault in. Returns the plaintext's length, or
    `(flag, length)` with `flagged`; the plaintext is then `sealed[flagged:flagged + length]`. When it does
    not verify (AuthenticationError), the buffer holds unauthenticated bytes: the caller drops it."""
    cdef Py_ssize_t plain_length = _gcm_plain_length(key, nonce, sealed.shape[0], flagged)
    cdef uint8_t flag = _gcm_open_to(key, nonce, associated, &sealed[0], sealed.shape[0], flagged,
                                     &sealed[0] + flagged)
    if flagged:
        return flag, plain_length
    return plain_length


cdef struct Region:
    uint8_t *data
    Py_ssize_t length


cdef struct RegionCursor:
    Region *regions
    Py_ssize_t count
    Py_ssize_t index
    Py_ssize_t position


cdef int _scatter(ssl.EVP_CIPHER_CTX *ctx, RegionCursor *cursor, const uint8_t *source,
                  Py_ssize_t length) noexcept nogil:
    """Put `length` bytes of `source` into the regions from the cursor on: encrypted through `ctx`, or as
    they are when `ctx` is NULL (GCM is a stream mode: libcrypto gives back as many bytes as it takes)."""
    cdef Py_ssize_t take
    cdef int written = 0
    cdef Region *region
    while length:
        if cursor.index >= cursor.count:
            return 0
        region = &cursor.regions[cursor.index]
        take = region.length - cursor.position
        if take > length:
            take = length
        if take and ctx == NULL:
            memcpy(region.data + cursor.position, source, take)
        elif take:
            if ssl.EVP_EncryptUpdate(ctx, region.data + cursor.position, &written, source, <int> take) != 1:
                return 0
            if written != take:
                return 0
        cursor.position += take
        source += take
        length -= take
        if cursor.position == region.length:
            cursor.index += 1
            cursor.position = 0
    return 1


def gcm_seal_into(const uint8_t[::1] key not None, const uint8_t[::1] nonce not None,
                  const uint8_t[::1] associated not None, int flag, const uint8_t[::1] payload not None,
                  regions):
    """AES-256-GCM of (one `flag` byte, unless `flag` is -1) + `payload`, tag appended: the same bytes as
    `AESGCM(key).encrypt(nonce, bytes([flag]) + payload, associated)`, written into `regions` (writable
    buffers, in order, whose lengths add up to the sealed length) without building that plaintext: a blob
    goes straight to its place in a pack, across the pack's segments, with no allocation and no copy."""
    cdef Py_ssize_t length = payload.shape[0]
    _check_gcm_arguments(key, nonce, length)
    if flag < -1 or flag > 255 or associated.shape[0] > INT_MAX:
        raise ValueError("flag must be -1 or a byte value")
    cdef list views = [memoryview(region).cast("B") for region in regions]
    cdef Py_ssize_t count = len(views)
    cdef Py_ssize_t total = 0
    cdef Py_ssize_t i
    cdef uint8_t[::1] target
    cdef RegionCursor cursor
    cdef uint8_t tag[GCM_TAG]
    cdef uint8_t flag_byte = <uint8_t> (flag if flag >= 0 else 0)
    cdef const uint8_t *ad = &associated[0] if associated.shape[0] else NULL
    cdef const uint8_t *data = &payload[0] if length else NULL
    cdef int ad_length = <int> associated.shape[0]
    cdef int written = 0
    cdef int ok = 0
    cdef ssl.EVP_CIPHER_CTX *ctx
    cursor.regions = <Region *> malloc(max(count, 1) * sizeof(Region))
    if cursor.regions == NULL:
        raise MemoryError()
    try:
        for i in range(count):
            target = views[i]  # raises for a read-only buffer; `views` keeps every region's buffer exported
            cursor.regions[i].length = target.shape[0]
            cursor.regions[i].data = &target[0] if target.shape[0] else NULL
            total += target.shape[0]
        if total != length + (flag >= 0) + GCM_TAG:
            raise ValueError(f"the regions hold {total} bytes, the sealed blob is {length + (flag >= 0) + GCM_TAG}")
        cursor.count = count
        cursor.index = 0
        cursor.position = 0
        with nogil:
            ctx = ssl.EVP_CIPHER_CTX_new()
            if ctx != NULL:
                ok = _gcm_start(ctx, 1, &key[0], &nonce[0], ad, ad_length)
                if ok and flag >= 0:
                    ok = _scatter(ctx, &cursor, &flag_byte, 1)
                if ok:
                    ok = _scatter(ctx, &cursor, data, length)
                if ok:
                    ok = ssl.EVP_EncryptFinal_ex(ctx, tag, &written) == 1 and written == 0
                if ok:
                    ok = ssl.EVP_CIPHER_CTX_ctrl(ctx, ssl.EVP_CTRL_GCM_GET_TAG, GCM_TAG, tag) == 1
                if ok:
                    ok = _scatter(NULL, &cursor, tag, GCM_TAG)
                ssl.EVP_CIPHER_CTX_free(ctx)
    finally:
        free(cursor.regions)
        target = None  # the typed view holds an export of the last region, which would keep it from release
        for view in views:
            view.release()
    if not ok:
        raise NativeLibraryError("libcrypto failed to encrypt with AES-256-GCM")


# --- buffers ---------------------------------------------------------------------------------------------

def copy_into(uint8_t[::1] target not None, Py_ssize_t offset, const uint8_t[::1] source not None):
    """`target[offset:offset + len(source)] = source` (the two may overlap), with the GIL released."""
    cdef Py_ssize_t length = source.shape[0]
    if offset < 0 or offset > target.shape[0] - length:
        raise ValueError(f"{length} bytes at {offset} do not fit in a buffer of {target.shape[0]}")
    if length:
        with nogil:
            memmove(&target[offset], &source[0], length)


def buffer_address(const uint8_t[::1] data not None):
    """The address of the buffer's first byte (0 for an empty one)."""
    return <size_t> &data[0] if data.shape[0] else 0


# --- zstd ------------------------------------------------------------------------------------------------

cdef class ZstdCompressor:
    """A libzstd compression context and its scratch buffer, reused call after call; one thread at a time.

    A frame is returned as a view of the scratch buffer, not a fresh bytes object: a compressible chunk cost
    an allocation of its compressed size (megabytes), and allocations that large either fault fresh pages or
    grow malloc's arenas. The view is good until the next call; a caller releases it once the frame is used.
    A call while an earlier view is still held gets a new buffer: a kept frame is never overwritten."""

    cdef zstd.ZSTD_CCtx *ctx
    cdef int level
    cdef bytearray scratch

    def __cinit__(self, int level):
        self.ctx = zstd.ZSTD_createCCtx()
        if self.ctx == NULL:
            raise MemoryError("libzstd could not create a compression context")
        self.level = level
        self.scratch = bytearray()

    def __dealloc__(self):
        if self.ctx != NULL:
            zstd.ZSTD_freeCCtx(self.ctx)

    def compress_within(self, const uint8_t[::1] data not None, size_t limit):
        """A view of the zstd frame of `data` if it is at most `limit` bytes, else None (storing raw pays
        better)."""
        cdef size_t length = data.shape[0]
        cdef size_t bound = zstd.ZSTD_compressBound(length)
        if <size_t> len(self.scratch) < bound or not _unshared(self.scratch):
            self.scratch = bytearray(max(bound, <size_t> len(self.scratch)))
        cdef uint8_t[::1] out = self.scratch
        cdef size_t written
        with nogil:
            written = zstd.ZSTD_compressCCtx(self.ctx, &out[0], bound, &data[0] if length else NULL, length,
                                             self.level)
        if zstd.ZSTD_isError(written):
            raise NativeLibraryError(f"libzstd failed to compress: {zstd.ZSTD_getErrorName(written).decode()}")
        if written > limit:
            return None
        return memoryview(self.scratch)[:written]


cdef extern from "Python.h":
    ctypedef struct PyByteArrayObject:
        Py_ssize_t ob_exports  # buffer views alive (CPython's bytearray refuses to resize while any is)


cdef bint _unshared(bytearray buffer):
    """Whether no view of `buffer` is alive."""
    return (<PyByteArrayObject *> buffer).ob_exports == 0


cdef class ZstdDecompressor:
    """A libzstd decompression context, reused call after call; one thread at a time."""

    cdef zstd.ZSTD_DCtx *ctx

    def __cinit__(self):
        self.ctx = zstd.ZSTD_createDCtx()
        if self.ctx == NULL:
            raise MemoryError("libzstd could not create a decompression context")

    def __dealloc__(self):
        if self.ctx != NULL:
            zstd.ZSTD_freeDCtx(self.ctx)

    def decompress(self, const uint8_t[::1] frame not None, size_t raw_length):
        """The content of one zstd frame, which must be exactly `raw_length` bytes; ZstdDataError otherwise."""
        cdef size_t length = frame.shape[0]
        if length == 0:
            raise ZstdDataError("an empty zstd frame")
        cdef unsigned long long declared = zstd.ZSTD_getFrameContentSize(&frame[0], length)
        if declared != zstd.ZSTD_CONTENTSIZE_UNKNOWN and declared != raw_length:
            raise ZstdDataError(f"the zstd frame holds {declared} bytes, {raw_length} were expected")
        cdef object plain = PyBytes_FromStringAndSize(NULL, raw_length)
        cdef uint8_t *out = <uint8_t *> PyBytes_AS_STRING(plain)
        cdef size_t written
        with nogil:
            written = zstd.ZSTD_decompressDCtx(self.ctx, out, raw_length, &frame[0], length)
        if zstd.ZSTD_isError(written):
            raise ZstdDataError(f"the zstd frame does not decompress: {zstd.ZSTD_getErrorName(written).decode()}")
        if written != raw_length:
            raise ZstdDataError(f"the zstd frame holds {written} bytes, {raw_length} were expected")
        return plain


# --- the in-memory index: a compact hash table of chunk locations ---------------------------------------

cdef enum:
    CHUNK_ID_SIZE = 32
    NO_PACK = 0xFFFFFFFF

cdef struct TableEntry:
    uint8_t chunk_id[CHUNK_ID_SIZE]
    uint32_t space      # the caller's code for the category
    uint32_t pack       # the caller's number for the pack; NO_PACK marks an empty slot
    uint32_t offset
    uint32_t length
    uint32_t raw_length
    uint32_t source     # the caller's number for the index object that listed it


cdef inline uint64_t _slot_hash(const uint8_t *chunk_id, uint32_t space) noexcept nogil:
    # Chunk IDs are keyed BLAKE3 (or HMAC) outputs, uniform already: their first 8 bytes are the hash.
    cdef uint64_t h = 0
    cdef int byte
    for byte in range(8):
        h |= (<uint64_t> chunk_id[byte]) << (8 * byte)
    return h ^ ((<uint64_t> space) * <uint64_t> 0x9E3779B97F4A7C15)


cdef class ChunkTable:
    """(space code, chunk ID) -> (pack number, offset, length, raw length, source number), 56 bytes per entry in
    one open-addressing table (linear probing, at most 3/4 full): 75 to 150 bytes per chunk at any size, where
    Python dictionaries of tuples took 570. One location per key; the caller keeps any further candidates.
    Not thread-safe: the caller locks."""

    cdef TableEntry *entries
    cdef size_t capacity  # a power of two
    cdef size_t count

    def __cinit__(self):
        self._allocate(1024)

    def __dealloc__(self):
        free(self.entries)

    cdef int _allocate(self, size_t capacity) except -1:
        cdef TableEntry *entries = <TableEntry *> malloc(capacity * sizeof(TableEntry))
        if entries == NULL:
            raise MemoryError("out of memory for the index")
        cdef size_t index
        for index in range(capacity):
            entries[index].pack = NO_PACK
        self.entries = entries
        self.capacity = capacity
        self.count = 0
        return 0

    cdef size_t _find(self, const uint8_t *chunk_id, uint32_t space) noexcept nogil:
        """The slot holding the key, or the empty slot where it would go."""
        cdef size_t mask = self.capacity - 1
        cdef size_t slot = _slot_hash(chunk_id, space) & mask
        cdef TableEntry *entry
        while True:
            entry = &self.entries[slot]
            if entry.pack == NO_PACK or (entry.space == space and memcmp(entry.chunk_id, chunk_id, CHUNK_ID_SIZE) == 0):
                return slot
            slot = (slot + 1) & mask

    cdef int _grow(self) except -1:
        cdef TableEntry *old = self.entries
        cdef size_t old_capacity = self.capacity
        cdef size_t index, slot
        self._allocate(old_capacity * 2)
        for index in range(old_capacity):
            if old[index].pack != NO_PACK:
                slot = self._find(old[index].chunk_id, old[index].space)
                self.entries[slot] = old[index]
                self.count += 1
        free(old)
        return 0

    def add(self, uint32_t space, const uint8_t[::1] chunk_id not None, uint32_t pack, uint32_t offset,
            uint32_t length, uint32_t raw_length, uint32_t source):
        """Record a location; returns 1 if the key was new, 0 if it holds this location already, and -1 if it
        holds another one (left as it was)."""
        if chunk_id.shape[0] != CHUNK_ID_SIZE:
            raise ValueError(f"a chunk ID is {CHUNK_ID_SIZE} bytes, got {chunk_id.shape[0]}")
        if pack == NO_PACK:
            raise ValueError("pack number out of range")
        if (self.count + 1) * 4 > self.capacity * 3:
            self._grow()
        cdef size_t slot = self._find(&chunk_id[0], space)
        cdef TableEntry *entry = &self.entries[slot]
        if entry.pack != NO_PACK:
            if entry.pack == pack and entry.offset == offset and entry.length == length and entry.raw_length == raw_length:
                return 0
            return -1
        memcpy(entry.chunk_id, &chunk_id[0], CHUNK_ID_SIZE)
        entry.space = space
        entry.pack = pack
        entry.offset = offset
        entry.length = length
        entry.raw_length = raw_length
        entry.source = source
        self.count += 1
        return 1

    def get(self, uint32_t space, const uint8_t[::1] chunk_id not None):
        """(pack, offset, length, raw length, source) of the key, or None."""
        if chunk_id.shape[0] != CHUNK_ID_SIZE:
            return None
        cdef TableEntry *entry = &self.entries[self._find(&chunk_id[0], space)]
        if entry.pack == NO_PACK:
            return None
        return entry.pack, entry.offset, entry.length, entry.raw_length, entry.source

    def __contains__(self, key):
        space, chunk_id = key
        return self.get(space, chunk_id) is not None

    def __len__(self):
        return self.count

    @property
    def memory_bytes(self):
        """The table's own memory (slots * 56 bytes, empty slots included)."""
        return self.capacity * sizeof(TableEntry)

    def items(self):
        """Every (space, chunk ID, pack, offset, length, raw length, source), in no particular order."""
        cdef size_t index
        cdef TableEntry *entry
        for index in range(self.capacity):
            entry = &self.entries[index]
            if entry.pack != NO_PACK:
                yield (entry.space, PyBytes_FromStringAndSize(<char *> entry.chunk_id, CHUNK_ID_SIZE), entry.pack,
                       entry.offset, entry.length, entry.raw_length, entry.source)
