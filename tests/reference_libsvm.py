"""An independent, deliberately plain LIBSVM reference parser, written from docs/formats.md
(regular expressions and Python's float()), for the property tests and the atheris harness.

It shares no code with streamhog's numba kernel: the two are compared on random and mutated
input, line by line (which lines are rows, which are refused, and every parsed number bit for
bit).
"""
from __future__ import annotations

import re
import warnings

import numpy as np

MAX_INDEX = 2**32 - 1
_NUMBER = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INDEX = re.compile(rb"\+?[0-9]+")
_BLANKS = re.compile(rb"[ \t]+")


def _number(token: bytes):
    """float32 of a decimal token as float() then float32 rounding; None when refused."""
    if not _NUMBER.fullmatch(token):
        return None  # also nan / inf / infinity: not numbers here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # float32 overflow: refused below
        x = np.float32(float(token))
    return None if not np.isfinite(x) else x


def parse_line(content: bytes, index_base: int, n_features: int | None):
    """One line's content (no line end): None for a blank/comment line, False when refused,
    else (label, [ids], [values])."""
    content = content.split(b"#", 1)[0]
    tokens = [t for t in _BLANKS.split(content) if t]
    if not tokens:
        return None
    label = _number(tokens[0])
    if label is None:
        return False
    ids, vals = [], []
    limit = MAX_INDEX if n_features is None else min(MAX_INDEX, n_features - 1)
    for tok in tokens[1:]:
        idx_text, colon, val_text = tok.partition(b":")
        if not colon or not _INDEX.fullmatch(idx_text):
            return False
        idx = int(idx_text) - index_base
        if idx < 0 or idx > limit or (ids and idx <= ids[-1]):
            return False
        v = _number(val_text)
        if v is None:
            return False
        ids.append(idx)
        vals.append(v)
    return label, ids, vals


def parse(data: bytes, *, index_base: int = 1, n_features: int | None = None):
    """Every line of ``data``: a list of (1-based line number, parse_line's answer)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the text ended with a line break
    out = []
    for number, line in enumerate(lines, 1):
        if line.endswith(b"\r"):
            line = line[:-1]  # "\r\n" ends a line; a lone "\r" elsewhere stays in its token
        out.append((number, parse_line(line, index_base, n_features)))
    return out


def rows_of(indptr, indices, values, labels):
    """CSR arrays as a list of (label bits, ids, value bits): exact comparison, -0.0 included."""
    out = []
    for r in range(len(labels)):
        lo, hi = int(indptr[r]), int(indptr[r + 1])
        out.append((np.float32(labels[r]).view(np.uint32).item(), [int(i) for i in indices[lo:hi]],
                    np.asarray(values[lo:hi], np.float32).view(np.uint32).tolist()))
    return out


def expected_rows(lines, *, skip_invalid: bool):
    """What a parse must give for ``parse``'s answer: (rows, refused line numbers, the line a
    stopping parse stops at or None)."""
    bad = [n for n, r in lines if r is False]
    stop = None if skip_invalid or not bad else bad[0]
    kept = [r for n, r in lines if r and (stop is None or n < stop)]
    rows = [(np.float32(lab).view(np.uint32).item(), ids, [np.float32(v).view(np.uint32).item() for v in vals])
            for lab, ids, vals in kept]
    return rows, bad, stop
