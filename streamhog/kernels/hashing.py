"""MurmurHash3_x86_32 in numba, and the per-row sort-and-merge that hashed rows need.

MurmurHash3_x86_32 (Austin Appleby, public domain) is the hash of Vowpal Wabbit and of
scikit-learn's ``murmurhash3_32``, so ids are reproducible outside streamhog; the tests check
this module against scikit-learn's C implementation and against published test vectors.

Arithmetic is done in uint64 and masked to 32 bits: numba promotes uint32 products to 64
bits anyway, and mixing uint64 with a signed literal would silently give a float64, so every
constant below is a typed uint64.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

RO_BYTES = types.Array(types.uint8, 1, "C", readonly=True)
RW_BYTES = types.Array(types.uint8, 1, "C")
RO_U32 = types.Array(types.uint32, 1, "C", readonly=True)
RW_U32 = types.Array(types.uint32, 1, "C")
RO_I64 = types.Array(types.int64, 1, "C", readonly=True)
RO_F32 = types.Array(types.float32, 1, "C", readonly=True)
RW_I64 = types.Array(types.int64, 1, "C")
RW_F32 = types.Array(types.float32, 1, "C")

_M32 = np.uint64(0xFFFFFFFF)
_C1 = np.uint64(0xCC9E2D51)
_C2 = np.uint64(0x1B873593)
_N = np.uint64(0xE6546B64)
_F1 = np.uint64(0x85EBCA6B)
_F2 = np.uint64(0xC2B2AE35)
_FIVE = np.uint64(5)
_U8 = np.uint64(8)
_U16 = np.uint64(16)
_U24 = np.uint64(24)
_U13 = np.uint64(13)
_U15 = np.uint64(15)
_U17 = np.uint64(17)
_U19 = np.uint64(19)


@njit(nogil=True, cache=True, inline="always")
def _mix_k(k):
    k = (k * _C1) & _M32
    k = ((k << _U15) | (k >> _U17)) & _M32  # rotl32(k, 15)
    return (k * _C2) & _M32


@njit(nogil=True, cache=True, inline="always")
def _mix_h(h, k):
    h ^= _mix_k(k)
    h = ((h << _U13) | (h >> _U19)) & _M32  # rotl32(h, 13)
    return (h * _FIVE + _N) & _M32


@njit(nogil=True, cache=True, inline="always")
def _fmix(h, length):
    h ^= length
    h ^= h >> _U16
    h = (h * _F1) & _M32
    h ^= h >> _U13
    h = (h * _F2) & _M32
    h ^= h >> _U16
    return h


@njit(nogil=True, cache=True)
def murmur3_range(buf, start, stop, seed):
    """MurmurHash3_x86_32 of ``buf[start:stop]`` (any uint8 array; ``seed`` as uint64 < 2^32).

    The untyped core, specialised per array type; kernels call this one."""
    h = np.uint64(seed) & _M32
    n = stop - start
    p = start
    for _ in range(n >> 2):
        k = (np.uint64(buf[p]) | (np.uint64(buf[p + 1]) << _U8) | (np.uint64(buf[p + 2]) << _U16)
             | (np.uint64(buf[p + 3]) << _U24))
        h = _mix_h(h, k)
        p += 4
    rest = n & 3
    if rest:
        k = np.uint64(0)
        if rest == 3:
            k ^= np.uint64(buf[p + 2]) << _U16
        if rest >= 2:
            k ^= np.uint64(buf[p + 1]) << _U8
        k ^= np.uint64(buf[p])
        h ^= _mix_k(k)
    return _fmix(h, np.uint64(n) & _M32)


@njit([types.uint32(RO_BYTES, types.int64, types.int64, types.uint32),
       types.uint32(RW_BYTES, types.int64, types.int64, types.uint32)], nogil=True, cache=True)
def murmur3_32(buf, start, stop, seed):
    """MurmurHash3_x86_32 of the bytes ``buf[start:stop]`` with ``seed``, as uint32."""
    return np.uint32(murmur3_range(buf, start, stop, np.uint64(seed)))


@njit(nogil=True, cache=True, inline="always")
def hash_u32(x, seed):
    """MurmurHash3_x86_32 of the 4-byte little-endian encoding of ``x`` (as uint64)."""
    return _fmix(_mix_h(np.uint64(seed) & _M32, np.uint64(x) & _M32), np.uint64(4))


@njit([types.void(RO_U32, types.int64, types.uint32, RW_U32),
       types.void(RW_U32, types.int64, types.uint32, RW_U32)], nogil=True, cache=True)
def hash_ids(indices, bits, seed, out):
    """``out[k] = murmur3_32(uint32 little-endian bytes of indices[k], seed) & (2**bits - 1)``."""
    mask = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    s = np.uint64(seed)
    for k in range(indices.shape[0]):
        out[k] = np.uint32(hash_u32(indices[k], s) & mask)


@njit(nogil=True, cache=True, inline="always")
def _insertion_sort(keys, lo, hi):
    for i in range(lo + 1, hi):
        x = keys[i]
        j = i - 1
        while j >= lo and keys[j] > x:
            keys[j + 1] = keys[j]
            j -= 1
        keys[j + 1] = x


@njit([types.int64(RO_I64, RO_U32, RO_F32, types.boolean, RW_I64, RW_U32, RW_F32),
       types.int64(RO_I64, RW_U32, RO_F32, types.boolean, RW_I64, RW_U32, RW_F32)], nogil=True, cache=True)
def sort_merge_rows(indptr, ids, values, has_values, out_indptr, out_ids, out_values):
    """Sort each row's ids ascending and merge equal ids by summing their values.

    ``values`` is read only when ``has_values`` (else every value is 1.0, and sums are
    counts). Equal ids are summed in their input order in float64, then rounded once to
    float32, so the result does not depend on the sort. ``out_*`` hold at least as many
    entries as the input; returns the merged nnz.
    """
    n_rows = indptr.shape[0] - 1
    longest = 0
    for r in range(n_rows):
        longest = max(longest, indptr[r + 1] - indptr[r])
    nnz = 0
    out_indptr[0] = 0
    if not has_values:  # counts: sort the ids themselves (half the bytes of the keys below)
        ids32 = np.empty(longest, dtype=np.uint32)
        for r in range(n_rows):
            lo = indptr[r]
            n = indptr[r + 1] - lo
            ids32[:n] = ids[lo:lo + n]
            if n <= 32:
                _insertion_sort(ids32, 0, n)
            else:
                ids32[:n] = np.sort(ids32[:n])
            k = 0
            while k < n:
                cur = ids32[k]
                run = k
                k += 1
                while k < n and ids32[k] == cur:
                    k += 1
                out_ids[nnz] = cur
                out_values[nnz] = np.float32(k - run)
                nnz += 1
            out_indptr[r + 1] = nnz
        return nnz
    # (id << 32 | position in row): unique keys, so sorting them is a stable sort by id.
    keys = np.empty(longest, dtype=np.uint64)
    shift = np.uint64(32)
    low = np.uint64(0xFFFFFFFF)
    for r in range(n_rows):
        lo = indptr[r]
        n = indptr[r + 1] - lo
        for k in range(n):
            keys[k] = (np.uint64(ids[lo + k]) << shift) | np.uint64(k)
        if n <= 32:  # click-log rows are a few dozen ids: no call, no allocation
            _insertion_sort(keys, 0, n)
        else:
            keys[:n] = np.sort(keys[:n])
        k = 0
        while k < n:
            cur = keys[k] >> shift
            total = 0.0
            while k < n and (keys[k] >> shift) == cur:
                total += np.float64(values[lo + np.int64(keys[k] & low)])
                k += 1
            out_ids[nnz] = np.uint32(cur)
            out_values[nnz] = np.float32(total)
            nnz += 1
        out_indptr[r + 1] = nnz
    return nnz
