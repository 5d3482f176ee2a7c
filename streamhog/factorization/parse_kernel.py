"""The numba kernel that parses rating lines held in a byte block (nogil, read-only input).

One observation per line: fields separated by runs of spaces/tabs (``user item rating
[timestamp]``, MovieLens .data/.base/.test), by ``,`` (CSV) or by ``::`` (MovieLens
ratings.dat). The caller says which fields hold the user, the item and the rating, and how
many fields a line must have. Ids are non-negative decimal integers (at most 2^63 - 1);
ratings decimal numbers parsed exactly as Python's ``float()`` (libsvm_parse's scanner:
numbers it cannot round exactly itself are handed back as "slow tokens" for ``float()``),
then rounded to float32. In CSV a field may be wrapped in double quotes and padded with
spaces. ``\\r\\n`` line ends are accepted, blank lines skipped (but counted).
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

from ..kernels.decimal import _beyond_float32, _scan_number

SEP_WHITESPACE, SEP_COMMA, SEP_DOUBLE_COLON = 0, 1, 2

E_FIELD_COUNT = 1       # a = fields found
E_ID_EMPTY = 2          # b = field
E_ID_NEGATIVE = 3
E_ID_NOT_INT = 4
E_ID_TOO_LARGE = 5
E_RATING_NOT_NUMBER = 6
E_RATING_NOT_FINITE = 7
E_RATING_RANGE = 8
E_RATING_EMPTY = 9

S_ROWS, S_LINES, S_SLOW, S_ERRORS, S_STOPPED = range(5)
N_STATS = 5
ERR_CODE, ERR_LINE, ERR_START, ERR_END, ERR_A, ERR_B = range(6)
ERR_FIELDS = 6
MAX_ID = 2**63 - 1
_ID_DIGITS_CAP = (2**63 - 1 - 9) // 10

BUF = types.Array(types.uint8, 1, "C", readonly=True)
_I64_1D = types.Array(types.int64, 1, "C")
_I64_2D = types.Array(types.int64, 2, "C")
_U64_1D = types.Array(types.uint64, 1, "C")
_F32_1D = types.Array(types.float32, 1, "C")


@njit(inline="always", cache=True, error_model="numpy")
def _is_blank(c):
    return c == 32 or c == 9


@njit(inline="always", cache=True, error_model="numpy")
def _field_end(buf, p, end, sep):
    """End of the field starting at p (the separator's position, or the content end)."""
    if sep == SEP_WHITESPACE:
        while p < end and not _is_blank(buf[p]):
            p += 1
    elif sep == SEP_COMMA:
        while p < end and buf[p] != 44:
            p += 1
    else:
        while p < end and not (buf[p] == 58 and p + 1 < end and buf[p + 1] == 58):
            p += 1
    return p


@njit(inline="always", cache=True, error_model="numpy")
def _trim(buf, s, e):
    """Strip blanks, then one pair of surrounding double quotes, then blanks inside them."""
    while s < e and _is_blank(buf[s]):
        s += 1
    while e > s and _is_blank(buf[e - 1]):
        e -= 1
    if e - s >= 2 and buf[s] == 34 and buf[e - 1] == 34:
        s += 1
        e -= 1
        while s < e and _is_blank(buf[s]):
            s += 1
        while e > s and _is_blank(buf[e - 1]):
            e -= 1
    return s, e


@njit(cache=True, error_model="numpy")
def _parse_id(buf, s, e):
    """(error code or 0, id)."""
    if s >= e:
        return E_ID_EMPTY, 0
    if buf[s] == 45:  # '-'
        q = s + 1
        digits = q < e
        while q < e:
            if buf[q] < 48 or buf[q] > 57:
                digits = False
                break
            q += 1
        return (E_ID_NEGATIVE if digits else E_ID_NOT_INT), 0
    p = s + 1 if buf[s] == 43 else s  # '+'
    if p >= e:
        return E_ID_NOT_INT, 0
    v = np.int64(0)
    while p < e:
        c = buf[p]
        if c < 48 or c > 57:
            return E_ID_NOT_INT, 0
        if v > _ID_DIGITS_CAP:
            return E_ID_TOO_LARGE, 0
        v = v * 10 + (np.int64(c) - 48)
        p += 1
    return 0, v


@njit(types.void(BUF, types.int64, types.int64, types.int64, types.int64, types.int64, types.int64, types.int64,
                 types.boolean, types.boolean, _U64_1D, _U64_1D, _F32_1D, _I64_2D, _I64_2D, _I64_1D),
      nogil=True, cache=True, error_model="numpy")
def parse_ratings_block(buf, end, sep, min_fields, max_fields, user_col, item_col, rating_col, skip_first,
                        skip_invalid, users, items, ratings, slow, errors, stats):
    """Parse the lines of ``buf[:end]`` into users/items/ratings (sized by the caller: one
    slot per line at least). ``slow`` rows: (start, end, slot) of ratings for ``float()``;
    ``errors`` rows: ERR_* fields of the first bad lines; ``stats``: S_*. A line must have
    min_fields..max_fields fields; ``skip_first`` skips the first non-blank line (the
    header). In stop mode (not skip_invalid) the parse stops at the
    first bad line (S_STOPPED = 1, S_LINES = its line)."""
    n_rows = 0
    n_lines = 0
    n_slow = 0
    n_err = 0
    max_err = errors.shape[0]
    p = 0
    while p < end:
        n_lines += 1
        le = p
        while le < end and buf[le] != 10:
            le += 1
        nxt = le + 1
        ce = le
        if ce > p and buf[ce - 1] == 13:
            ce -= 1
        line_start = p
        q = p
        while q < ce and _is_blank(buf[q]):
            q += 1
        if q == ce:
            p = nxt
            continue
        if skip_first:  # the header: the block's first non-blank line
            skip_first = False
            p = nxt
            continue
        # Split: remember where the three wanted fields are; count the fields.
        n_fields = 0
        us = ue = is_ = ie = rs = re_ = -1
        f = q if sep == SEP_WHITESPACE else p
        while True:
            fe = _field_end(buf, f, ce, sep)
            if n_fields == user_col:
                us, ue = f, fe
            if n_fields == item_col:
                is_, ie = f, fe
            if n_fields == rating_col:
                rs, re_ = f, fe
            n_fields += 1
            if fe >= ce:
                break
            if sep == SEP_WHITESPACE:
                f = fe
                while f < ce and _is_blank(buf[f]):
                    f += 1
                if f >= ce:
                    break  # trailing blanks
            elif sep == SEP_COMMA:
                f = fe + 1
            else:
                f = fe + 2
        code = 0
        e_start, e_end, e_field = line_start, ce, -1
        uid = np.int64(0)
        iid = np.int64(0)
        value = 0.0
        if n_fields < min_fields or n_fields > max_fields:
            code = E_FIELD_COUNT
        if code == 0:
            s, e = _trim(buf, us, ue)
            code, uid = _parse_id(buf, s, e)
            e_start, e_end, e_field = s, e, user_col
        if code == 0:
            s, e = _trim(buf, is_, ie)
            code, iid = _parse_id(buf, s, e)
            e_start, e_end, e_field = s, e, item_col
        if code == 0 and rating_col >= 0:  # rating_col < 0: (user, item) pairs, no rating
            s, e = _trim(buf, rs, re_)
            e_start, e_end, e_field = s, e, rating_col
            if s >= e:
                code = E_RATING_EMPTY
            else:
                status, value, after = _scan_number(buf, s, e)
                if status == 2 or after != e:
                    code = E_RATING_NOT_NUMBER
                elif status == 3:
                    code = E_RATING_NOT_FINITE
                elif _beyond_float32(status, value, buf, s, e):
                    code = E_RATING_RANGE
                elif status == 1:
                    if n_slow < slow.shape[0]:
                        slow[n_slow, 0] = s
                        slow[n_slow, 1] = e
                        slow[n_slow, 2] = n_rows
                    n_slow += 1
        if code != 0:
            if n_err < max_err:
                errors[n_err, ERR_CODE] = code
                errors[n_err, ERR_LINE] = n_lines
                errors[n_err, ERR_START] = e_start
                errors[n_err, ERR_END] = e_end
                errors[n_err, ERR_A] = n_fields
                errors[n_err, ERR_B] = e_field
            n_err += 1
            if not skip_invalid:
                stats[S_ROWS] = n_rows
                stats[S_LINES] = n_lines
                stats[S_SLOW] = n_slow
                stats[S_ERRORS] = n_err
                stats[S_STOPPED] = 1
                return
            p = nxt
            continue
        users[n_rows] = np.uint64(uid)
        items[n_rows] = np.uint64(iid)
        ratings[n_rows] = np.float32(value)
        n_rows += 1
        p = nxt
    stats[S_ROWS] = n_rows
    stats[S_LINES] = n_lines
    stats[S_SLOW] = n_slow
    stats[S_ERRORS] = n_err
    stats[S_STOPPED] = 0


@njit(types.int64(BUF, types.int64), nogil=True, cache=True, error_model="numpy")
def count_lines(buf, end):
    """Newlines in ``buf[:end]``, + 1: a bound on the rows of the block."""
    n = 1
    for p in range(end):
        if buf[p] == 10:
            n += 1
    return n
