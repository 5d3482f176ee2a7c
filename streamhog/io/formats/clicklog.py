"""What the Criteo and CSV click-log readers share: delimited text in, hashed
:class:`~streamhog.io.batch.SparseBatch` blocks out, in file order.

A column is the label, categorical, numeric or ignored. Every feature is hashed into
``2**hash_bits`` slots (docs/formats.md, "Feature hashing" and "Click logs"):

- a categorical value ``v`` of column ``F``: ``murmur3_32(utf8(v), seed=murmur3_32(utf8(F), 0))``;
- a numeric value ``v`` of column ``F``: the token ``"SP" + str(int(v))`` when ``v <= 2``,
  else ``str(int(ln(v) ** 2))``, hashed as a categorical value of ``F``;
- an empty field is no feature; each row's ids are sorted and collisions merged (counts).

The streaming machinery (a reader thread, nogil parse workers, blocks in file order, gzip/
bz2/xz detection, ``skip_invalid`` accounting) is :class:`~streamhog.io.formats.libsvm.LibsvmReader`'s;
this class only swaps the block parser, and reads a header line first when there is one.
"""
from __future__ import annotations

import io

import numpy as np

from ...errors import ConfigError, DataFormatError
from ..hashing import DEFAULT_HASH_BITS, check_bits, field_seed, numeric_feature_id
from ...kernels import clicklog_parse as K
from ...kernels.hashing import sort_merge_rows
from .libsvm import MAX_REPORTED_SKIPS, BlockResult, LibsvmReader, _quote

__all__ = ["ClickLogReader", "DEFAULT_HASH_BITS", "LABEL", "CATEGORICAL", "NUMERIC", "IGNORE"]

LABEL, CATEGORICAL, NUMERIC, IGNORE = "label", "categorical", "numeric", "ignore"
_KIND_CODE = {IGNORE: K.KIND_IGNORE, LABEL: K.KIND_LABEL, CATEGORICAL: K.KIND_CATEGORICAL, NUMERIC: K.KIND_NUMERIC}
#: A header line longer than this is not a header (a binary file, a file with no newline).
MAX_HEADER_BYTES = 1 << 20


class _AfterHeader(io.RawIOBase):
    """The input past its header line: the bytes read beyond the header first, then the rest."""

    def __init__(self, inp, rest: bytes):
        super().__init__()
        self._inp = inp
        self._rest = rest
        self.compression = inp.compression

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        mv = memoryview(b).cast("B")
        if self._rest:
            n = min(len(self._rest), len(mv))
            mv[:n] = self._rest[:n]
            self._rest = self._rest[n:]
            return n
        return self._inp.readinto(mv)

    @property
    def bytes_read(self) -> int:
        return self._inp.bytes_read

    @property
    def can_rewind(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self._inp.close()
        super().close()


class ClickLogReader(LibsvmReader):
    """Stream delimited click-log text as hashed :class:`SparseBatch` blocks.

    Subclasses set ``separator``, ``quoting`` (RFC 4180 double quotes), ``binary_label``
    (labels must be 0 or 1) and ``has_header``, and implement :meth:`_columns`, which returns
    ``(names, kinds)`` (kinds: LABEL, CATEGORICAL, NUMERIC or IGNORE; exactly one LABEL) from
    the header fields (``None`` without a header). ``hash_bits``: ids lie in ``[0, 2**hash_bits)``.
    After iteration the counters of :class:`LibsvmReader` hold (lines include the header).
    """

    separator: bytes      # set by each subclass, with quoting, binary_label, has_header
    quoting: bool
    binary_label: bool
    has_header: bool

    def __init__(self, source, *, hash_bits: int = DEFAULT_HASH_BITS, skip_invalid: bool = False,
                 block_bytes: int = 8 << 20, threads: int = 2, name=None):
        self.hash_bits = check_bits(hash_bits)
        super().__init__(source, index_base=0, skip_invalid=skip_invalid, block_bytes=block_bytes,
                         threads=threads, name=name)
        try:
            header = self._read_header() if self.has_header else None
            names, kinds = self._columns(header)
            if sum(k == LABEL for k in kinds) != 1:
                raise ConfigError("exactly one column must be the label")
        except BaseException:
            self._input.close()
            raise
        self.columns = tuple(names)
        self.kinds = tuple(kinds)
        self._n_feature_columns = sum(k in (CATEGORICAL, NUMERIC) for k in kinds)
        ro = np.array([_KIND_CODE[k] for k in kinds], dtype=np.int64)
        ro.flags.writeable = False
        self._kind_codes = ro
        seeds = np.array([field_seed(n) for n in names], dtype=np.int64)
        seeds.flags.writeable = False
        self._seeds = seeds
        self.n_lines = 1 if self.has_header else 0  # line numbers count the header

    # -- hooks --------------------------------------------------------------------------------
    def _columns(self, header: list[str] | None) -> tuple[list[str], list[str]]:
        raise NotImplementedError

    # -- header ---------------------------------------------------------------------------------
    def _read_header(self) -> list[str]:
        """Read the first line (up to MAX_HEADER_BYTES) and split it into column names."""
        import csv

        data = b""
        try:
            while b"\n" not in data and len(data) <= MAX_HEADER_BYTES:
                chunk = self._input.read(64 << 10)
                if not chunk:
                    break
                data += chunk
        except Exception as exc:
            raise self._decompress_error(exc) from exc
        cut = data.find(b"\n")
        if cut < 0 and (len(data) > MAX_HEADER_BYTES or not data):
            raise DataFormatError(self.name, "no header line (the first line names the columns)", line=1)
        line, rest = (data, b"") if cut < 0 else (data[:cut], data[cut + 1:])
        self._input = _AfterHeader(self._input, rest)
        try:
            text = line.rstrip(b"\r").decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DataFormatError(self.name, "the header line is not UTF-8 text", line=1) from None
        names = [n.strip() for n in next(csv.reader([text], delimiter=self.separator.decode()))]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise DataFormatError(self.name, f"the header names column(s) {', '.join(map(repr, dup))} more "
                                             "than once", line=1)
        return names

    # -- one block ------------------------------------------------------------------------------
    def _parse(self, buf, length, base):
        arr = np.frombuffer(buf, dtype=np.uint8, count=length).view()
        arr.flags.writeable = False
        sep = self.separator[0]
        n_newlines, n_seps = K.count_lines_and_separators(arr, length, sep)
        rows_cap = n_newlines + 1
        ids_cap = min(rows_cap * self._n_feature_columns, n_seps + rows_cap)  # a feature needs a field
        indptr = np.empty(rows_cap + 1, dtype=np.int64)
        ids = np.empty(ids_cap, dtype=np.uint32)
        labels = np.empty(rows_cap, dtype=np.float32)
        errors = np.zeros((MAX_REPORTED_SKIPS, K.ERR_FIELDS), dtype=np.int64)
        stats = np.zeros(K.N_STATS, dtype=np.int64)
        scratch = np.empty(length + 64, dtype=np.uint8)  # an unescaped field, or a numeric token
        cap = 256
        while True:
            slow = np.empty((cap, 4), dtype=np.int64)
            K.parse_clicklog_block(arr, 0, length, np.uint8(sep), self.quoting, self._kind_codes, self._seeds,
                                   self.hash_bits, self.binary_label, self.skip_invalid, indptr, ids, labels,
                                   slow, errors, stats, scratch)
            if stats[K.S_SLOW] <= cap:
                break
            cap = int(stats[K.S_SLOW])  # rare: more slow numbers than room; parse again
        n_rows, nnz = int(stats[K.S_ROWS]), int(stats[K.S_NNZ])
        stopped = bool(stats[K.S_STOPPED])
        if not stopped:
            self._fill_slow(buf, slow[: int(stats[K.S_SLOW])], ids, labels)
        n_err = int(stats[K.S_ERRORS])
        reported = [(int(row[K.ERR_LINE]), self._message(buf, row)) for row in errors[: min(n_err, MAX_REPORTED_SKIPS)]]
        out_indptr = np.empty(n_rows + 1, dtype=np.int64)
        out_ids = np.empty(nnz, dtype=np.uint32)
        out_values = np.empty(nnz, dtype=np.float32)
        ro_indptr = indptr[: n_rows + 1]
        ro_indptr.flags.writeable = False
        merged = sort_merge_rows(ro_indptr, ids[:nnz], _EMPTY, False, out_indptr, out_ids, out_values)
        out_ids, out_values = out_ids[:merged], out_values[:merged]
        return BlockResult(
            indptr=out_indptr, indices=out_ids, values=out_values, labels=labels[:n_rows],
            n_lines=int(stats[K.S_LINES]),
            min_index=int(out_ids.min()) if merged else -1, max_index=int(out_ids.max()) if merged else -1,
            all_ones=bool(np.all(out_values == 1.0)), errors=reported, n_errors=n_err, stopped=stopped)

    def _fill_slow(self, buf, slow: np.ndarray, ids: np.ndarray, labels: np.ndarray) -> None:
        """The numbers the kernel could only approximate, converted with float()."""
        for start, end, slot, col in slow.tolist():
            v = float(bytes(buf[start:end]))
            if self.kinds[col] == LABEL:
                labels[slot] = v  # float64 -> float32: rounds to nearest (range checked by the kernel)
            else:
                ids[slot] = numeric_feature_id(self.columns[col], v, self.hash_bits)

    def _message(self, buf, row) -> str:
        code, start, end, col, found = (int(row[K.ERR_CODE]), int(row[K.ERR_START]), int(row[K.ERR_END]),
                                        int(row[K.ERR_COLUMN]), int(row[K.ERR_FOUND]))
        sep = {b"\t": "tab", b",": "comma"}.get(self.separator, repr(self.separator.decode()))
        if code == K.E_FIELD_COUNT:
            return f"expected {len(self.columns)} {sep}-separated fields, found {found}"
        name = self.columns[col] if 0 <= col < len(self.columns) else f"#{col + 1}"
        field = f"field {name!r}: {_quote(buf, start, end)}"
        if code == K.E_LABEL_EMPTY:
            return f"the label ({name!r}) is empty"
        if code == K.E_LABEL_NOT_NUMBER:
            return f"label is not a number ({field})"
        if code == K.E_LABEL_NOT_FINITE:
            return f"label is NaN or infinite ({field})"
        if code == K.E_LABEL_RANGE:
            return f"label is out of float32 range ({field})"
        if code == K.E_LABEL_NOT_BINARY:
            return f"label must be 0 or 1 ({field})"
        if code == K.E_NUMERIC_NOT_NUMBER:
            return f"numeric {field} is not a number"
        if code == K.E_NUMERIC_NOT_FINITE:
            return f"numeric {field} is NaN or infinite"
        if code == K.E_QUOTE:
            return (f"{field}: unclosed quote, or text after the closing quote (a quoted field "
                    "cannot span lines)")
        return f"invalid field (error code {code})"  # pragma: no cover


_EMPTY = np.empty(0, dtype=np.float32)
_EMPTY.flags.writeable = False
