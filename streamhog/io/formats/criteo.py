"""Criteo Display Advertising Challenge logs (Kaggle 2014, Criteo 1TB): tab-separated text in,
hashed :class:`~streamhog.io.batch.SparseBatch` blocks out.

A line is 40 tab-separated fields and no header: the label (``0`` or ``1``), 13 integer
fields ``I1``..``I13`` and 26 categorical fields ``C1``..``C26`` (32-bit hex strings). Any
feature field may be empty: no feature. A categorical value ``v`` of ``C<k>`` becomes
``murmur3_32(utf8(v), seed=murmur3_32(b"C<k>", 0)) & (2**hash_bits - 1)``; an integer (or
decimal) value ``v`` of ``I<k>`` is binned as the challenge winners did (Juan et al., 2014) —
the token ``"SP" + str(int(v))`` when ``v <= 2``, else ``str(int(ln(v) ** 2))`` — and that
token is hashed as a categorical value of ``I<k>`` (value 1). Each row's ids are sorted and
collisions merged into counts. Refused, with the file and line (or skipped and counted with
``skip_invalid``): a line without exactly 40 fields, a label other than 0/1, a value of an
``I`` field that is not a finite number. Input may be gzip, bzip2 or xz compressed.
See docs/formats.md, "Click logs".
"""
from __future__ import annotations

from .clicklog import CATEGORICAL, DEFAULT_HASH_BITS, LABEL, NUMERIC, ClickLogReader

__all__ = ["CriteoReader", "CRITEO_COLUMNS", "DEFAULT_HASH_BITS"]

CRITEO_COLUMNS = ("label",) + tuple(f"I{k}" for k in range(1, 14)) + tuple(f"C{k}" for k in range(1, 27))


class CriteoReader(ClickLogReader):
    """Stream a Criteo TSV file (a path, ``"-"`` or a binary file object; gz/bz2/xz detected)
    as hashed :class:`SparseBatch` blocks of ``2**hash_bits`` features (default 2^20)."""

    separator = b"\t"
    quoting = False  # a '"' is just part of a value here
    binary_label = True
    has_header = False

    def _columns(self, header):
        return list(CRITEO_COLUMNS), [LABEL] + [NUMERIC] * 13 + [CATEGORICAL] * 26
