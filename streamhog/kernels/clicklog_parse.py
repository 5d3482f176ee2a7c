"""Numba kernel that parses delimited click logs (Criteo TSV, Avazu-style CSV) held in a
byte block into hashed feature ids, one row per line, in field order (not yet sorted).

Each column has a kind (label, categorical, numeric, ignored) and a seed (the hash of its
name): a categorical value is hashed with its column's seed, a numeric value is first
turned into a token ("SP<int(v)>" for v <= 2, else "<int(ln(v)^2)>") and that token is
hashed the same way (``streamhog.io.hashing`` is the definition; the tests check both agree).
The caller sorts each row and merges collisions (``kernels.hashing.sort_merge_rows``).

Numbers are scanned with the LIBSVM parser's ``_scan_number`` (exact for the usual
numbers); the rare ones it can only approximate ("slow"), and numeric values whose
``ln(v)**2`` falls within rounding of a bin edge, are listed for the caller, which converts
them with ``float()`` / ``streamhog.io.hashing.numeric_token`` and fills in the label or id.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from .hashing import RO_I64, murmur3_range
from .hashing import RW_BYTES as U8_1D
from .decimal import _beyond_float32, _scan_number
from .libsvm_parse import BUF, F32_1D, I64_1D, I64_2D, U32_1D

KIND_IGNORE, KIND_LABEL, KIND_CATEGORICAL, KIND_NUMERIC = 0, 1, 2, 3

E_FIELD_COUNT = 1
E_LABEL_EMPTY = 2
E_LABEL_NOT_NUMBER = 3
E_LABEL_NOT_FINITE = 4
E_LABEL_RANGE = 5
E_LABEL_NOT_BINARY = 6
E_NUMERIC_NOT_NUMBER = 7
E_NUMERIC_NOT_FINITE = 8
E_QUOTE = 9

# stats
S_ROWS, S_NNZ, S_LINES, S_SLOW, S_ERRORS, S_STOPPED = 0, 1, 2, 3, 4, 5
N_STATS = 6
# a row of ``slow``: token start, end, slot (row for a label, entry for a feature), column
SLOW_START, SLOW_END, SLOW_SLOT, SLOW_COLUMN = 0, 1, 2, 3
# a row of ``errors``: code, line (1-based in the block), field start, field end, column, fields found
ERR_CODE, ERR_LINE, ERR_START, ERR_END, ERR_COLUMN, ERR_FOUND = 0, 1, 2, 3, 4, 5
ERR_FIELDS = 6


_MIN_I64_F = -9.2e18  # int(v) of a smaller v does not fit int64: left to Python ("slow")

# A decimal is a finite double exactly when its magnitude is below 2**1024 - 2**970 (halfway
# between DBL_MAX and 2**1024; the tie rounds to the even 2**1024: inf). Slow numbers within a
# hair of it are settled digit by digit: float() of "1e999" is inf, which hashes to nothing.
_F64_INF_DIGITS = np.frombuffer(str(2**1024 - 2**970).encode(), dtype=np.uint8) - 48
_F64_INF_EXP10 = len(str(2**1024 - 2**970)) - 1
_F64_NEAR_MAX = 1.7976931348623157e308 * (1.0 - 1e-12)


@njit(nogil=True, cache=True)
def _decimal_is_double_inf(buf, p, end):
    """Whether the decimal number ``buf[p:end]`` (a scanned number, sign allowed) rounds to an
    infinite double: its magnitude compared with 2**1024 - 2**970, digit by digit."""
    if p < end and (buf[p] == 45 or buf[p] == 43):
        p += 1
    int_digits = 0
    lead_zeros = 0
    seen = False
    in_frac = False
    q = p
    while q < end and (buf[q] == 46 or 48 <= buf[q] <= 57):
        c = buf[q]
        if c == 46:
            in_frac = True
        else:
            if not in_frac:
                int_digits += 1
            if not seen:
                if c == 48:
                    lead_zeros += 1
                else:
                    seen = True
        q += 1
    if not seen:
        return False
    exp = 0
    if q < end and (buf[q] | 32) == 101:
        r = q + 1
        neg = r < end and buf[r] == 45
        if r < end and (buf[r] == 45 or buf[r] == 43):
            r += 1
        while r < end and 48 <= buf[r] <= 57:
            if exp < 1_000_000:
                exp = exp * 10 + (np.int64(buf[r]) - 48)
            r += 1
        if neg:
            exp = -exp
    e_lead = int_digits - lead_zeros - 1 + exp
    if e_lead != _F64_INF_EXP10:
        return e_lead > _F64_INF_EXP10
    k = 0
    nd = _F64_INF_DIGITS.shape[0]
    started = False
    for r in range(p, q):
        c = buf[r]
        if c == 46 or (not started and c == 48):
            continue
        started = True
        d = np.int64(c) - 48
        if k < nd:
            if d != _F64_INF_DIGITS[k]:
                return d > _F64_INF_DIGITS[k]
            k += 1
        elif d != 0:
            return True
    while k < nd:  # every digit matched so far: equal unless the bound has more non-zero digits
        if _F64_INF_DIGITS[k] != 0:
            return False
        k += 1
    return True


@njit(types.UniTuple(types.int64, 2)(BUF, types.int64, types.uint8), nogil=True, cache=True)
def count_lines_and_separators(buf, end, sep):
    """``(b"\\n" count, separator count)`` in ``buf[:end]``: bounds on rows - 1 and on the
    features of the block, to size the output arrays."""
    nl = 0
    ns = 0
    for i in range(end):
        c = buf[i]
        nl += c == 10
        ns += c == sep
    return nl, ns


@njit(nogil=True, cache=True, inline="always")
def _record_slow(slow, n_slow, start, end, slot, column):
    """Note a field Python must finish (row/entry ``slot``) while there is room; returns
    the new count (counted on when full: the caller then parses the block again with room)."""
    if n_slow < slow.shape[0]:
        slow[n_slow, SLOW_START] = start
        slow[n_slow, SLOW_END] = end
        slow[n_slow, SLOW_SLOT] = slot
        slow[n_slow, SLOW_COLUMN] = column
    return n_slow + 1


@njit(nogil=True, cache=True, inline="always")
def _small_int(buf, s, e):
    """``(True, value)`` when ``buf[s:e]`` is ``[-]digits`` of at most 15 digits (exact as a
    double), else ``(False, 0)``: Criteo's integer fields skip the general number scanner."""
    p = s
    neg = p < e and buf[p] == 45
    if neg:
        p += 1
    if p >= e or e - p > 15:
        return False, np.int64(0)
    m = np.int64(0)
    while p < e:
        d = np.int64(buf[p]) - 48
        if d < 0 or d > 9:
            return False, np.int64(0)
        m = m * 10 + d
        p += 1
    return True, -m if neg else m


@njit(nogil=True, cache=True, inline="always")
def _number_token(v, tok):
    """Write the numeric token of ``v`` (finite, >= -9.2e18) into ``tok``; returns its length,
    or -1 when ``ln(v)**2`` lies within rounding of an integer (a bin edge): there the last
    bit of libm's ``pow``/``log`` decides the bin, so the caller asks Python's ``math.log(v)
    ** 2``, the definition (``l * l`` here is exact-rounded, ``pow`` may differ by an ulp)."""
    n = 0
    if v <= 2.0:
        tok[0] = 83  # 'S'
        tok[1] = 80  # 'P'
        n = 2
        t = np.int64(v)  # truncates toward zero, as Python's int()
    else:
        lg = math.log(v)
        sq = lg * lg
        if abs(sq - np.floor(sq + 0.5)) <= sq * 1e-13:
            return -1
        t = np.int64(sq)
    if t < 0:
        tok[n] = 45  # '-'
        n += 1
        t = -t
    digits = 1
    q = t
    while q >= 10:
        q //= 10
        digits += 1
    for k in range(digits - 1, -1, -1):
        tok[n + k] = 48 + t % 10
        t //= 10
    return n + digits


@njit(nogil=True, cache=True, inline="always")
def _field_end(buf, p, line_end, sep, quoting):
    """End of the field starting at ``p`` and whether it is quoted: ``(end, content start,
    content end, has escaped quotes, ok)``; a quoted field's content is inside the quotes."""
    if quoting and p < line_end and buf[p] == 34:  # '"'
        q = p + 1
        escaped = False
        while q < line_end:
            if buf[q] == 34:
                if q + 1 < line_end and buf[q + 1] == 34:
                    escaped = True
                    q += 2
                    continue
                # closing quote: the field must end right here
                if q + 1 < line_end and buf[q + 1] != sep:
                    return q + 1, p + 1, q, escaped, False
                return q + 1, p + 1, q, escaped, True
            q += 1
        return line_end, p + 1, line_end, escaped, False  # not closed on its line
    q = p
    while q < line_end and buf[q] != sep:
        q += 1
    return q, p, q, False, True


@njit(nogil=True, cache=True, inline="always")
def _unescape(buf, s, e, scratch):
    """Copy ``buf[s:e]`` into ``scratch`` with each '""' turned into '"'; returns the length."""
    n = 0
    q = s
    while q < e:
        scratch[n] = buf[q]
        n += 1
        q += 2 if buf[q] == 34 else 1
    return n


@njit(
    types.void(BUF, types.int64, types.int64, types.uint8, types.boolean, RO_I64, RO_I64, types.int64,
               types.boolean, types.boolean, I64_1D, U32_1D, F32_1D, I64_2D, I64_2D, I64_1D, U8_1D),
    nogil=True, cache=True, error_model="numpy",
)
def parse_clicklog_block(buf, start, end, sep, quoting, kinds, seeds, bits, binary_label, skip_invalid,
                         indptr, ids, labels, slow, errors, stats, scratch):
    """Parse the lines in ``buf[start:end]`` into rows of hashed ids (field order, unmerged).

    kinds, seeds  per column: KIND_* and the column's hash seed (< 2^32)
    bits          ids are ``hash & (2**bits - 1)``
    binary_label  the label must be exactly 0 or 1 (Criteo)
    skip_invalid  False: stop at the first bad line; True: drop bad lines (counted, the first
                  ``errors.shape[0]`` recorded)
    indptr, ids, labels   the output rows: rows <= count(b"\\n") + 1, ids <= rows * columns
    slow          int64 (cap, 4): numbers for the caller to convert with float() (see
                  SLOW_*); stats[S_SLOW] may exceed cap: then the caller parses again
    scratch       uint8 room for the longest field (unescaped values, numeric tokens)
    Empty lines (nothing, or a lone '\\r') are skipped but counted.
    """
    n_cols = kinds.shape[0]
    mask = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    n_rows = 0
    nnz = 0
    line = 0
    n_slow = 0
    n_err = 0
    err_cap = errors.shape[0]
    stopped = False
    indptr[0] = 0
    pos = start
    while pos < end:
        line += 1
        line_end = pos
        while line_end < end and buf[line_end] != 10:
            line_end += 1
        next_pos = line_end + 1
        if line_end > pos and buf[line_end - 1] == 13:  # CRLF
            line_end -= 1
        if line_end == pos:
            pos = next_pos
            continue
        row_nnz0 = nnz
        row_slow0 = n_slow
        code = 0
        e_start = pos
        e_end = pos
        e_col = -1
        col = 0
        p = pos
        while True:
            fe, cs, ce, escaped, ok = _field_end(buf, p, line_end, sep, quoting)
            kind = kinds[col] if col < n_cols else KIND_IGNORE
            if code == 0:  # the first problem of the line is reported (but a wrong field count wins)
                if not ok:
                    code = E_QUOTE
                elif kind == KIND_LABEL:
                    if ce == cs:
                        code = E_LABEL_EMPTY
                    else:
                        status, v, q = _scan_number(buf, cs, ce)
                        if status == 2 or q != ce or escaped:
                            code = E_LABEL_NOT_NUMBER
                        elif status == 3:
                            code = E_LABEL_NOT_FINITE
                        elif binary_label and (status != 0 or (v != 0.0 and v != 1.0)):
                            code = E_LABEL_NOT_BINARY
                        elif _beyond_float32(status, v, buf, cs, ce):
                            code = E_LABEL_RANGE
                        else:
                            if status == 1:
                                n_slow = _record_slow(slow, n_slow, cs, ce, n_rows, col)
                            labels[n_rows] = np.float32(v)
                elif kind == KIND_CATEGORICAL:
                    if ce > cs:
                        seed = np.uint64(seeds[col])
                        if escaped:
                            h = murmur3_range(scratch, 0, _unescape(buf, cs, ce, scratch), seed)
                        else:
                            h = murmur3_range(buf, cs, ce, seed)
                        ids[nnz] = np.uint32(h & mask)
                        nnz += 1
                elif kind == KIND_NUMERIC:
                    if ce > cs:
                        is_int, iv = _small_int(buf, cs, ce)
                        if is_int and not escaped:
                            status, v, q = 0, np.float64(iv), ce
                        else:
                            status, v, q = _scan_number(buf, cs, ce)
                        if status == 2 or q != ce or escaped:
                            code = E_NUMERIC_NOT_NUMBER
                        elif status == 3 or (status == 1 and abs(v) >= _F64_NEAR_MAX
                                                 and _decimal_is_double_inf(buf, cs, ce)):
                            code = E_NUMERIC_NOT_FINITE
                        else:
                            n = -1 if status == 1 or v < _MIN_I64_F else _number_token(v, scratch)
                            if n < 0:  # Python decides this one
                                n_slow = _record_slow(slow, n_slow, cs, ce, nnz, col)
                                ids[nnz] = 0  # filled in by the caller
                            else:
                                ids[nnz] = np.uint32(murmur3_range(scratch, 0, n, np.uint64(seeds[col])) & mask)
                            nnz += 1
                if code != 0:
                    e_start = cs
                    e_end = ce
                    e_col = col
            col += 1
            if fe >= line_end:
                break
            p = fe + 1  # past the separator
            if p == line_end:  # a separator ends the line: one more, empty, field
                kind = kinds[col] if col < n_cols else KIND_IGNORE
                if code == 0 and kind == KIND_LABEL:
                    code = E_LABEL_EMPTY
                    e_start = p
                    e_end = p
                    e_col = col
                col += 1
                break
        if col != n_cols and code != E_QUOTE:  # a broken quote miscounts the fields: say so instead
            code = E_FIELD_COUNT
            e_start = pos
            e_end = line_end
            e_col = -1
        if code != 0:
            nnz = row_nnz0
            n_slow = row_slow0
            if n_err < err_cap:
                errors[n_err, ERR_CODE] = code
                errors[n_err, ERR_LINE] = line
                errors[n_err, ERR_START] = e_start
                errors[n_err, ERR_END] = e_end
                errors[n_err, ERR_COLUMN] = e_col
                errors[n_err, ERR_FOUND] = col
            n_err += 1
            if not skip_invalid:
                stopped = True
                break
            pos = next_pos
            continue
        n_rows += 1
        indptr[n_rows] = nnz
        pos = next_pos
    stats[S_ROWS] = n_rows
    stats[S_NNZ] = nnz
    stats[S_LINES] = line
    stats[S_SLOW] = n_slow
    stats[S_ERRORS] = n_err
    stats[S_STOPPED] = 1 if stopped else 0
