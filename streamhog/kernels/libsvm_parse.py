"""Numba kernels that parse LIBSVM/svmlight text held in a byte block.

The reader (``streamhog.io.formats.libsvm``) cuts the input into blocks that end at a line
break and hands each block to :func:`parse_libsvm_block`, which fills caller-owned CSR
arrays.  The kernels release the GIL (``nogil``) so several blocks parse at once, and take
the block as a read-only ``uint8`` array: bytes read from a file arrive read-only.

Numbers are parsed here, not with ``float()``: a decimal ``m * 10**e`` whose mantissa fits in
53 bits and whose exponent is at most 22 (plus a few extensions below) is computed with a
single correctly rounded multiply or divide of two exact doubles (Clinger's fast path), so
it equals Python's ``float()``.  Every other number (long mantissas, large exponents) is
listed as a "slow token" that the caller converts with ``float()``: results match
``float(token)`` in all cases, then are rounded to float32.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

from .decimal import _beyond_float32, _is_content_end, _is_token_end, _next_line, _scan_number, _skip_blanks, _token_end

#: Largest feature id the uint32 ids can hold (io/formats/spec.MAX_INDEX: the format's rule).
MAX_INDEX = int(np.iinfo(np.uint32).max)
_INDEX_CAP = 1 << 40  # stop accumulating absurd index digits (it is an error anyway)

# --- error codes (the reader turns them into messages) -------------------------------------
E_LABEL_NOT_NUMBER = 1
E_LABEL_NOT_FINITE = 2
E_LABEL_RANGE = 3
E_NO_COLON = 4
E_INDEX_NOT_INT = 5
E_INDEX_ZERO = 6
E_INDEX_TOO_LARGE = 7
E_INDEX_N_FEATURES = 8
E_VALUE_NOT_NUMBER = 9
E_VALUE_NOT_FINITE = 10
E_VALUE_RANGE = 11
E_DUPLICATE_INDEX = 12
E_DESCENDING_INDEX = 13
E_QID = 14

# --- layout of the ``stats`` output array -----------------------------------------------------
S_ROWS = 0        # rows written
S_NNZ = 1         # entries written
S_LINES = 2       # lines seen (blank and comment lines included); on a stop: the error's line
S_MIN_INDEX = 3   # smallest stored index (-1 when no entries)
S_MAX_INDEX = 4   # largest stored index (-1 when no entries)
S_ALL_ONES = 5    # 1 when every value parsed exactly to 1.0 (slow tokens count as "not one")
S_SLOW = 6        # slow tokens needed (may exceed the capacity of ``slow``: then parse again)
S_ERRORS = 7      # bad lines seen (skip mode) or 1 (stop mode, the parse stopped there)
S_STOPPED = 8     # 1 when the parse stopped at an error
N_STATS = 9

# --- layout of a row of ``slow`` and of ``errors`` --------------------------------------------
SLOW_START, SLOW_END, SLOW_SLOT, SLOW_KIND = 0, 1, 2, 3
SLOW_VALUE, SLOW_LABEL = 0, 1
ERR_CODE, ERR_LINE, ERR_START, ERR_END, ERR_A, ERR_B = 0, 1, 2, 3, 4, 5
ERR_FIELDS = 6

BUF = types.Array(types.uint8, 1, "C", readonly=True)
I64_1D = types.Array(types.int64, 1, "C")
I64_2D = types.Array(types.int64, 2, "C")
U32_1D = types.Array(types.uint32, 1, "C")
F32_1D = types.Array(types.float32, 1, "C")


@njit(nogil=True, cache=True, error_model="numpy")
def _classify_bad_feature(buf, ts, te):
    # A feature token that is not "digits:...": say what is wrong with it.
    if te - ts >= 4 and buf[ts] == 113 and buf[ts + 1] == 105 and buf[ts + 2] == 100 and buf[ts + 3] == 58:
        return E_QID
    for q in range(ts, te):
        if buf[q] == 58:
            return E_INDEX_NOT_INT
    return E_NO_COLON


@njit(types.UniTuple(types.int64, 2)(BUF, types.int64), nogil=True, cache=True, error_model="numpy")
def count_newlines_and_colons(buf, end):
    """``(b"\\n" count, b":" count)`` in ``buf[:end]``: bounds on rows - 1 and on nnz,
    so the caller can size the output arrays before parsing."""
    nl = 0
    colons = 0
    for i in range(end):
        c = buf[i]
        nl += c == 10
        colons += c == 58
    return nl, colons


@njit(types.boolean(BUF, types.int64), nogil=True, cache=True, error_model="numpy")
def block_has_zero_index(buf, end):
    """Whether any feature token in ``buf[:end]`` has index 0 (scikit-learn's "auto" rule:
    such a file is 0-based).  Only the structure is scanned; bad tokens are ignored here
    (the real parse reports them)."""
    pos = 0
    while pos < end:
        p = _skip_blanks(buf, pos, end)
        if not _is_content_end(buf, p, end):
            p = _token_end(buf, p, end)  # the label
            while True:
                p = _skip_blanks(buf, p, end)
                if _is_content_end(buf, p, end):
                    break
                nd = 0
                nonzero = False
                while p < end and 48 <= buf[p] <= 57:
                    nonzero |= buf[p] != 48
                    nd += 1
                    p += 1
                if nd > 0 and not nonzero and p < end and buf[p] == 58:
                    return True
                p = _token_end(buf, p, end)
        pos = _next_line(buf, p, end)
    return False


@njit(
    types.void(BUF, types.int64, types.int64, types.int64, types.boolean,
               I64_1D, U32_1D, F32_1D, F32_1D, I64_2D, I64_2D, I64_1D),
    nogil=True,
    error_model="numpy",
    cache=True,
)
def parse_libsvm_block(buf, end, index_base, n_features, skip_invalid,
                       indptr, indices, values, labels, slow, errors, stats):
    """Parse the LIBSVM lines in ``buf[:end]`` into CSR arrays.

    buf          the text; ``end`` is at a line start (or the end of the input)
    index_base   0 or 1: stored index = written index - index_base
    n_features   stored indices must be below it; -1: only the uint32 limit (MAX_INDEX)
    skip_invalid False: stop at the first bad line. True: drop bad lines (the row's output
                 is rewound), count them, record the first ``errors.shape[0]``
    indptr       int64 (rows + 1,)   rows <= count(b"\\n") + 1
    indices      uint32 (nnz,)       nnz <= count(b":")
    values       float32 (nnz,)
    labels       float32 (rows,)
    slow         int64 (cap, 4): start, end, output slot, kind (SLOW_VALUE/SLOW_LABEL) of each
                 number the caller must convert with float(); stats[S_SLOW] may exceed cap,
                 then the caller parses again with a larger array
    errors       int64 (k, 6): code, line (1-based in the block), token start, token end, a, b
                 (a: previous index for E_DESCENDING_INDEX)
    stats        int64 (N_STATS,): see the S_* constants
    """
    n_rows = 0
    nnz = 0
    line = 0
    n_slow = 0
    n_err = 0
    min_idx = np.int64(MAX_INDEX) + 1
    max_idx = np.int64(-1)
    all_ones = True
    slow_cap = slow.shape[0]
    err_cap = errors.shape[0]
    max_stored = np.int64(MAX_INDEX)
    if n_features >= 0 and n_features - 1 < max_stored:
        max_stored = n_features - 1
    stopped = False
    indptr[0] = 0
    pos = 0
    while pos < end:
        line += 1
        p = _skip_blanks(buf, pos, end)
        if _is_content_end(buf, p, end):  # blank or comment-only line: not a row
            pos = _next_line(buf, p, end)
            continue
        code = 0
        err_a = np.int64(0)
        err_b = np.int64(0)
        row_nnz0 = nnz
        row_slow0 = n_slow
        row_ones = True
        # label
        ts = p
        status, v, p = _scan_number(buf, p, end)
        if status == 2 or not _is_token_end(buf, p, end):
            code = _classify_bad_feature(buf, ts, _token_end(buf, ts, end))
            if code != E_QID:
                code = E_LABEL_NOT_NUMBER
        elif status == 3:
            code = E_LABEL_NOT_FINITE
        elif _beyond_float32(status, v, buf, ts, p):
            code = E_LABEL_RANGE
        else:
            if status == 1:
                if n_slow < slow_cap:
                    slow[n_slow, 0] = ts
                    slow[n_slow, 1] = p
                    slow[n_slow, 2] = n_rows
                    slow[n_slow, 3] = SLOW_LABEL
                n_slow += 1
            labels[n_rows] = np.float32(v)
            prev = np.int64(-1)
            # features
            while True:
                p = _skip_blanks(buf, p, end)
                if _is_content_end(buf, p, end):
                    break
                ts = p
                raw = np.int64(0)
                nd = 0
                if buf[p] == 43:  # '+5:1' is index 5, as for strtol() and int()
                    p += 1
                while p < end:
                    d = np.int64(buf[p]) - 48
                    if d < 0 or d > 9:
                        break
                    if raw < _INDEX_CAP:
                        raw = raw * 10 + d
                    nd += 1
                    p += 1
                if nd == 0 or p >= end or buf[p] != 58:
                    code = _classify_bad_feature(buf, ts, _token_end(buf, ts, end))
                    break
                if raw < index_base:
                    code = E_INDEX_ZERO
                    break
                idx = raw - index_base
                if idx > max_stored:
                    code = E_INDEX_TOO_LARGE if idx > MAX_INDEX else E_INDEX_N_FEATURES
                    err_b = raw
                    break
                if idx <= prev:
                    code = E_DUPLICATE_INDEX if idx == prev else E_DESCENDING_INDEX
                    err_a = prev + index_base
                    err_b = raw
                    break
                p += 1  # ':'
                vs = p
                if p < end and buf[p] == 49 and _is_token_end(buf, p + 1, end):
                    # "idx:1": binary features are common enough to skip the number scanner
                    p += 1
                    indices[nnz] = idx
                    values[nnz] = 1.0
                    nnz += 1
                    prev = idx
                    continue
                status, v, p = _scan_number(buf, p, end)
                if status == 2 or not _is_token_end(buf, p, end):
                    code = E_VALUE_NOT_NUMBER
                    break
                if status == 3:
                    code = E_VALUE_NOT_FINITE
                    break
                if _beyond_float32(status, v, buf, vs, p):
                    code = E_VALUE_RANGE
                    break
                f = np.float32(v)
                if status == 1:
                    if n_slow < slow_cap:
                        slow[n_slow, 0] = vs
                        slow[n_slow, 1] = p
                        slow[n_slow, 2] = nnz
                        slow[n_slow, 3] = SLOW_VALUE
                    n_slow += 1
                    row_ones = False  # unknown until converted: the caller re-checks
                elif f != 1.0:
                    row_ones = False
                indices[nnz] = idx
                values[nnz] = f
                nnz += 1
                prev = idx
        if code != 0:
            if n_err < err_cap:
                errors[n_err, 0] = code
                errors[n_err, 1] = line
                errors[n_err, 2] = ts
                errors[n_err, 3] = _token_end(buf, ts, end)
                errors[n_err, 4] = err_a
                errors[n_err, 5] = err_b
            n_err += 1
            if not skip_invalid:
                stopped = True
                break
            nnz = row_nnz0  # drop the line: rewind its output
            n_slow = row_slow0
            pos = _next_line(buf, ts, end)
            continue
        # commit the row; indices ascend within it, so its first/last are its min/max
        if nnz > row_nnz0:
            if indices[row_nnz0] < min_idx:
                min_idx = np.int64(indices[row_nnz0])
            if indices[nnz - 1] > max_idx:
                max_idx = np.int64(indices[nnz - 1])
        all_ones = all_ones and row_ones
        n_rows += 1
        indptr[n_rows] = nnz
        pos = _next_line(buf, p, end)
    stats[S_ROWS] = n_rows
    stats[S_NNZ] = nnz
    stats[S_LINES] = line
    stats[S_MIN_INDEX] = min_idx if max_idx >= 0 else -1
    stats[S_MAX_INDEX] = max_idx
    stats[S_ALL_ONES] = 1 if all_ones else 0
    stats[S_SLOW] = n_slow
    stats[S_ERRORS] = n_err
    stats[S_STOPPED] = 1 if stopped else 0
