"""Byte-level scanning of text blocks (numba, nogil): token and line boundaries, and exact
decimal numbers, shared by the LIBSVM and click-log parsers (libsvm_parse.py,
clicklog_parse.py).
"""
from __future__ import annotations

import numpy as np
from numba import njit

_INFINITY = np.frombuffer(b"infinity", dtype=np.uint8).copy()
_POW10 = np.array([10.0**i for i in range(23)], dtype=np.float64)  # all exact doubles
_TWO53 = 9007199254740992  # 2**53: integers up to here are exact doubles
_TWO53_F = 9007199254740992.0
# Accumulate mantissa digits while m * 10 + 9 still fits in int64 (18 or 19 digits).
_MANT_LIMIT = (2**63 - 1 - 9) // 10
_EXP_CAP = 1_000_000  # exponents beyond this are all inf / 0 anyway

# np.float32(x) is inf exactly when |x| >= 2**128 - 2**103 (halfway between FLT_MAX and
# 2**128 rounds to even, i.e. up).  That bound T is an exact double, so comparing a correctly
# rounded double with it is exact.  A decimal token rounds to a double >= T exactly when it is
# >= T - 2**74 (halfway to the double below T; the tie rounds to T, whose mantissa is even):
# slow tokens (approximate double) within a hair of T are settled digit by digit against that.
_F32_LIMIT = float(2**128 - 2**103)
_F32_TOKEN_LIMIT = 2**128 - 2**103 - 2**74
_F32_LIMIT_DIGITS = np.frombuffer(str(_F32_TOKEN_LIMIT).encode(), dtype=np.uint8) - 48
_F32_LIMIT_EXP10 = len(str(_F32_TOKEN_LIMIT)) - 1  # decimal exponent of its leading digit

# error_model="numpy": no zero-division checks on the float divides (the divisors are powers
# of ten).  The tiny per-byte predicates are inlined at the numba level (inline="always"):
# numba calls carry a status/exception protocol that LLVM does not remove, and they run for
# every token (~1.5x faster on short "3:1" tokens).  The number scanner and the error paths
# stay calls: inlining them costs compile time and gains nothing measurable; the value "1"
# (binary features) skips the scanner altogether (~2x on such files).


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _is_token_end(buf, p, end):
    # Tokens end at a space, tab, '#', '\n', '\r\n' or the end of the block.  A lone '\r'
    # is part of a token (it is no line break here), so such files fail loudly.
    if p >= end:
        return True
    c = buf[p]
    if c == 32 or c == 9 or c == 10 or c == 35:
        return True
    return c == 13 and (p + 1 >= end or buf[p + 1] == 10)


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _is_content_end(buf, p, end):
    # End of a line's content: '\n', '\r\n', a '#' comment, or the end of the block.
    if p >= end:
        return True
    c = buf[p]
    if c == 10 or c == 35:
        return True
    return c == 13 and (p + 1 >= end or buf[p + 1] == 10)


@njit(nogil=True, cache=True, error_model="numpy")
def _token_end(buf, p, end):
    while not _is_token_end(buf, p, end):
        p += 1
    return p


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _next_line(buf, p, end):
    while p < end and buf[p] != 10:
        p += 1
    return p + 1 if p < end else end


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _skip_blanks(buf, p, end):
    while p < end and (buf[p] == 32 or buf[p] == 9):
        p += 1
    return p


@njit(nogil=True, cache=True, error_model="numpy")
def _scan_number(buf, p, end):
    """Parse ``[+-] (digits [. digits] | . digits) [(e|E) [+-] digits]`` at ``p``.

    Returns ``(status, value, p_after)``; status 0: value is the correctly rounded double,
    1: value is only approximate (a slow token, the caller converts it with float()),
    2: not a number, 3: a nan/inf/infinity literal.
    """
    neg = False
    if p < end and (buf[p] == 45 or buf[p] == 43):
        neg = buf[p] == 45
        p += 1
    if p < end and ((buf[p] | 32) == 110 or (buf[p] | 32) == 105):  # 'n' or 'i'
        q = p
        while q < end and 97 <= (buf[q] | 32) <= 122:
            q += 1
        n = q - p
        c0 = buf[p] | 32
        if n == 3 and c0 == 110 and (buf[p + 1] | 32) == 97 and (buf[p + 2] | 32) == 110:
            return 3, 0.0, q
        if c0 == 105 and (n == 3 or n == 8):
            ok = True
            for k in range(n):
                if (buf[p + k] | 32) != _INFINITY[k]:
                    ok = False
                    break
            if ok:
                return 3, 0.0, q
        return 2, 0.0, p
    m = 0
    adj = 0  # value = m * 10**(exp + adj)
    any_digit = False
    truncated = False  # a non-zero digit did not fit in m
    while p < end:
        d = np.int64(buf[p]) - 48
        if d < 0 or d > 9:
            break
        any_digit = True
        if m <= _MANT_LIMIT:
            m = m * 10 + d
        else:
            adj += 1
            if d != 0:
                truncated = True
        p += 1
    if p < end and buf[p] == 46:  # '.'
        p += 1
        while p < end:
            d = np.int64(buf[p]) - 48
            if d < 0 or d > 9:
                break
            any_digit = True
            if m <= _MANT_LIMIT:
                m = m * 10 + d
                adj -= 1
            elif d != 0:
                truncated = True
            p += 1
    if not any_digit:
        return 2, 0.0, p
    exp = 0
    if p < end and (buf[p] | 32) == 101:  # 'e' / 'E'
        p += 1
        eneg = False
        if p < end and (buf[p] == 45 or buf[p] == 43):
            eneg = buf[p] == 45
            p += 1
        if p >= end or buf[p] < 48 or buf[p] > 57:
            return 2, 0.0, p
        while p < end and 48 <= buf[p] <= 57:
            if exp < _EXP_CAP:
                exp = exp * 10 + (np.int64(buf[p]) - 48)
            p += 1
        if eneg:
            exp = -exp
    e10 = exp + adj
    if m == 0:
        return 0, -0.0 if neg else 0.0, p
    status = 1
    value = 0.0
    if not truncated:
        if m > _TWO53:
            # Trailing zeros ("1.500000000000000000") do not make a number slow.
            while m % 10 == 0:
                m //= 10
                e10 += 1
        if m <= _TWO53:
            fm = np.float64(m)
            if 0 <= e10 <= 22:
                value = fm * _POW10[e10]
                status = 0
            elif -22 <= e10 < 0:
                value = fm / _POW10[-e10]
                status = 0
            elif 22 < e10 <= 22 + 16:
                # m * 10**(e10-22) is exact while below 2**53; then one rounding by 1e22.
                t = fm * _POW10[e10 - 22]
                if t < _TWO53_F:
                    value = t * 1e22
                    status = 0
    if status == 1:
        value = np.float64(m) * 10.0 ** np.float64(e10)  # approximate: range checks only
    return status, -value if neg else value, p


@njit(nogil=True, cache=True, error_model="numpy")
def _decimal_reaches_f32_limit(buf, p, end):
    """Whether the decimal number in ``buf[p:end]`` has magnitude >= 2**128 - 2**103 - 2**74,
    i.e. whether its double rounds to float32 inf.

    Exact, digit by digit; only used for slow tokens within a hair of the bound.
    """
    if p < end and (buf[p] == 45 or buf[p] == 43):
        p += 1
    # First pass: position of the leading significant digit and the decimal exponent.
    int_digits = 0
    lead_zeros = 0
    seen_nonzero = False
    q = p
    in_frac = False
    while q < end:
        c = buf[q]
        if c == 46:
            in_frac = True
        elif 48 <= c <= 57:
            if not in_frac:
                int_digits += 1
            if not seen_nonzero:
                if c == 48:
                    lead_zeros += 1
                else:
                    seen_nonzero = True
        else:
            break
        q += 1
    if not seen_nonzero:
        return False
    exp = 0
    if q < end and (buf[q] | 32) == 101:
        r = q + 1
        eneg = False
        if r < end and (buf[r] == 45 or buf[r] == 43):
            eneg = buf[r] == 45
            r += 1
        while r < end and 48 <= buf[r] <= 57:
            if exp < _EXP_CAP:
                exp = exp * 10 + (np.int64(buf[r]) - 48)
            r += 1
        if eneg:
            exp = -exp
    e_lead = int_digits - lead_zeros - 1 + exp
    if e_lead != _F32_LIMIT_EXP10:
        return e_lead > _F32_LIMIT_EXP10
    # Same magnitude: compare the significant digits with the bound's.
    k = 0
    nd = _F32_LIMIT_DIGITS.shape[0]
    started = False
    for r in range(p, q):
        c = buf[r]
        if c == 46:
            continue
        if not started:
            if c == 48:
                continue
            started = True
        d = np.int64(c) - 48
        if k < nd:
            if d != _F32_LIMIT_DIGITS[k]:
                return d > _F32_LIMIT_DIGITS[k]
            k += 1
        elif d != 0:
            return True
    # All digits matched (the rest padded with zeros compare below or equal).
    while k < nd:
        if _F32_LIMIT_DIGITS[k] != 0:
            return False
        k += 1
    return True


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _beyond_float32(status, value, buf, p, end):
    a = abs(value)
    if status == 0:
        return a >= _F32_LIMIT
    if a < _F32_LIMIT * (1.0 - 1e-12):
        return False
    if a > _F32_LIMIT * (1.0 + 1e-12):
        return True
    return _decimal_reaches_f32_limit(buf, p, end)
