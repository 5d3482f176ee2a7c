"""Streaming LIBSVM/svmlight reader: text (plain, gzip, bz2, xz; a path, stdin or a file
object) in, :class:`~streamhog.io.batch.SparseBatch` blocks out, in file order.

Memory is bounded whatever the file size: one thread reads (and decompresses) blocks of
``block_bytes`` cut at a line break, ``threads`` workers parse them with a nogil numba
kernel, and the consumer takes the results in order from a window of a few blocks.

Grammar, per line: ``label (whitespace index:value)* [# comment]``; see docs/formats.md.
"""
from __future__ import annotations

import weakref
from contextlib import closing
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..batch import SparseBatch
from ...errors import ConfigError, DataFormatError
from ...kernels import libsvm_parse as K
from .spec import MAX_INDEX
from .text_input import ClosingReader, _decompress_error, _iter_blocks, open_binary_input, parsed_in_order

__all__ = ["LibsvmReader", "open_binary_input", "parse_block", "BlockResult", "MAX_REPORTED_SKIPS"]

#: How many skipped lines (line, message) a reader remembers; all are counted.
MAX_REPORTED_SKIPS = 10

# --------------------------------------------------------------------------------------------
# One block


@dataclass
class BlockResult:
    """What :func:`parse_block` found in one block (arrays are trimmed views)."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    labels: np.ndarray
    n_lines: int
    min_index: int
    max_index: int
    all_ones: bool
    #: bad lines: ``(line in the block, 1-based; message)``, at most MAX_REPORTED_SKIPS
    errors: list = field(default_factory=list)
    n_errors: int = 0
    #: True when the parse stopped at ``errors[0]`` (skip_invalid=False)
    stopped: bool = False
    #: slow tokens in the block (numbers converted with float())
    n_slow: int = 0

    @property
    def n_rows(self) -> int:
        return len(self.labels)


def _quote(buf, start: int, end: int, limit: int = 60) -> str:
    text = bytes(buf[start:min(end, start + limit + 1)]).decode("utf-8", "backslashreplace")
    if end - start > limit:
        text = text[:limit] + "..."
    return "'" + text.replace("\n", "\\n").replace("\r", "\\r") + "'"


def _message(buf, row, index_base: int, n_features) -> str:
    code, start, end, a, b = int(row[K.ERR_CODE]), int(row[K.ERR_START]), int(row[K.ERR_END]), \
        int(row[K.ERR_A]), int(row[K.ERR_B])
    tok = f"(token {_quote(buf, start, end)})"
    colon = bytes(buf[start:end]).find(b":")
    index_text = bytes(buf[start:start + colon]).decode("ascii", "replace") if colon >= 0 else ""
    if code == K.E_LABEL_NOT_NUMBER:
        return f"label is not a number {tok}"
    if code == K.E_LABEL_NOT_FINITE:
        return f"label is NaN or infinite {tok}"
    if code == K.E_LABEL_RANGE:
        return f"label is out of float32 range {tok}"
    if code == K.E_NO_COLON:
        return f"expected index:value, found no ':' {tok}"
    if code == K.E_INDEX_NOT_INT:
        return f"index {_quote(buf, start, start + colon)} is not a non-negative integer {tok}"
    if code == K.E_INDEX_ZERO:
        return f"index 0 is not allowed with index base 1 {tok}"
    if code == K.E_INDEX_TOO_LARGE:
        return (f"index {int(index_text)} is too large: the largest allowed is {MAX_INDEX + index_base} "
                f"with index base {index_base} (stored ids are uint32) {tok}")
    if code == K.E_INDEX_N_FEATURES:
        return (f"index {int(index_text)} is out of range for n_features={n_features} (the largest allowed "
                f"is {n_features - 1 + index_base} with index base {index_base}) {tok}")
    if code == K.E_VALUE_NOT_NUMBER:
        return f"value is not a number {tok}"
    if code == K.E_VALUE_NOT_FINITE:
        return f"value is NaN or infinite {tok}"
    if code == K.E_VALUE_RANGE:
        return f"value is out of float32 range {tok}"
    if code == K.E_DUPLICATE_INDEX:
        return f"duplicate index {b} in one line {tok}"
    if code == K.E_DESCENDING_INDEX:
        return f"index {b} comes after index {a}: indices must be ascending within a line {tok}"
    if code == K.E_QID:
        return f"qid: (ranking data) is not supported {tok}"
    return f"invalid token (error code {code}) {tok}"  # pragma: no cover


def parse_block(data, length: int | None = None, *, index_base: int = 1, n_features: int | None = None,
                skip_invalid: bool = False, slow_capacity: int = 1024) -> BlockResult:
    """Parse the LIBSVM lines in ``data[:length]`` (bytes-like, whole lines).

    Runs the nogil kernel, then converts the numbers it could not round exactly itself
    ("slow tokens") with ``float()``.  Line numbers in ``errors`` are relative to the block.
    """
    if length is None:
        length = len(data)
    arr = np.frombuffer(data, dtype=np.uint8, count=length)
    if arr.flags.writeable:  # the kernel is compiled for read-only input (file bytes are)
        arr = arr.view()
        arr.flags.writeable = False
    n_newlines, n_colons = K.count_newlines_and_colons(arr, length)
    rows_cap = n_newlines + 1
    indptr = np.empty(rows_cap + 1, dtype=np.int64)
    indices = np.empty(n_colons, dtype=np.uint32)
    values = np.empty(n_colons, dtype=np.float32)
    labels = np.empty(rows_cap, dtype=np.float32)
    errors = np.zeros((MAX_REPORTED_SKIPS, K.ERR_FIELDS), dtype=np.int64)
    stats = np.zeros(K.N_STATS, dtype=np.int64)
    base = int(index_base)
    nf = -1 if n_features is None else int(n_features)
    cap = max(16, min(int(slow_capacity), rows_cap + n_colons))
    while True:
        slow = np.empty((cap, 4), dtype=np.int64)
        K.parse_libsvm_block(arr, length, base, nf, bool(skip_invalid), indptr, indices, values, labels,
                             slow, errors, stats)
        if stats[K.S_SLOW] <= cap:
            break
        cap = int(stats[K.S_SLOW])  # rare: more slow numbers than room; parse again, exactly sized
    n_rows, nnz, n_slow = int(stats[K.S_ROWS]), int(stats[K.S_NNZ]), int(stats[K.S_SLOW])
    all_ones = bool(stats[K.S_ALL_ONES])
    if n_slow and not stats[K.S_STOPPED]:
        tokens = slow[:n_slow]
        text = data if isinstance(data, (bytes, bytearray)) else arr.tobytes()
        xs = np.array([float(text[s:e]) for s, e in tokens[:, :2].tolist()], dtype=np.float64)
        is_label = tokens[:, K.SLOW_KIND] == K.SLOW_LABEL
        labels[tokens[is_label, K.SLOW_SLOT]] = xs[is_label]  # float64 -> float32: round to nearest
        values[tokens[~is_label, K.SLOW_SLOT]] = xs[~is_label]
        if not is_label.all():
            all_ones = bool(np.all(values[:nnz] == 1.0))
    n_err = int(stats[K.S_ERRORS])
    reported = [(int(row[K.ERR_LINE]), _message(data, row, base, n_features))
                for row in errors[: min(n_err, MAX_REPORTED_SKIPS)]]
    return BlockResult(
        indptr=indptr[: n_rows + 1],
        indices=indices[:nnz],
        values=values[:nnz],
        labels=labels[:n_rows],
        n_lines=int(stats[K.S_LINES]),
        min_index=int(stats[K.S_MIN_INDEX]),
        max_index=int(stats[K.S_MAX_INDEX]),
        all_ones=all_ones,
        errors=reported,
        n_errors=n_err,
        stopped=bool(stats[K.S_STOPPED]),
        n_slow=n_slow,
    )


# --------------------------------------------------------------------------------------------
# The reader


class LibsvmReader(ClosingReader):
    """Stream a LIBSVM/svmlight file as :class:`SparseBatch` blocks, in file order.

    ``source``: a path, ``"-"`` (standard input) or a binary file object; gzip/bz2/xz are
    detected from the first bytes.  ``index_base``: 1 (LIBSVM convention), 0, or ``"auto"``
    (0-based if any index in the file is 0, else 1-based; reads a seekable file twice).
    ``n_features``: stored ids must be below it.  ``skip_invalid``: drop bad lines (counted in
    ``n_skipped``, the first ten in ``skipped``) instead of raising :class:`DataFormatError`.

    After iteration: ``n_rows``, ``nnz``, ``n_lines``, ``min_index``/``max_index`` (stored,
    0-based ids; -1 when there are no features), ``n_skipped``, ``skipped``, ``bytes_in``
    (bytes read from the input as stored: compressed bytes when compressed; it grows during
    iteration) and ``all_ones`` (every value is exactly 1.0).
    """

    def __init__(self, source, *, index_base=1, n_features=None, skip_invalid=False,
                 block_bytes=8 << 20, threads=2, name=None):
        if isinstance(index_base, str) and index_base in ("0", "1"):
            index_base = int(index_base)
        if index_base not in (0, 1, "auto") or isinstance(index_base, bool):
            raise ConfigError(f"index_base must be 0, 1 or 'auto', got {index_base!r}")
        if index_base != "auto":
            index_base = int(index_base)
        if n_features is not None and not 0 <= int(n_features) <= MAX_INDEX + 1:
            raise ConfigError(f"n_features must be between 0 and 2^32, got {n_features}")
        if int(block_bytes) < 1:
            raise ConfigError(f"block_bytes must be positive, got {block_bytes}")
        if int(threads) < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        self.index_base = index_base
        self.n_features = None if n_features is None else int(n_features)
        self.skip_invalid = bool(skip_invalid)
        self.block_bytes = int(block_bytes)
        self.threads = int(threads)
        self._input, default_name = open_binary_input(source)
        self.name = str(name) if name is not None else default_name
        if index_base == "auto" and not self._input.can_rewind:
            self._input.close()
            raise DataFormatError(
                self.name, "index base 'auto' needs a seekable file (it reads the input twice); "
                "pass --index-base 0 or 1 (index_base=0 or 1)")
        self.n_rows = 0
        self.nnz = 0
        self.n_lines = 0
        self.min_index = -1
        self.max_index = -1
        self.n_skipped = 0
        self.skipped: list[tuple[int, str]] = []
        self.bytes_in = 0
        self.all_ones = True
        self._started = False
        self._gen = None
        self._slow_hint = 1024

    # -- iteration --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[SparseBatch]:
        if self._started:
            raise RuntimeError(f"{self.name}: a LibsvmReader can be iterated only once")
        self._started = True
        gen = self._batches()
        # Weakly held: a loop that breaks out drops the generator, which then closes at once
        # (stopping the threads); a strong reference would make a cycle that waits for the GC.
        self._gen = weakref.ref(gen)
        return gen

    def _decompress_error(self, exc: BaseException) -> BaseException:
        return _decompress_error(self.name, self._input.compression, exc)

    def _resolve_index_base(self) -> int:
        """scikit-learn's rule for "auto": 0-based if any index in the file is 0."""
        if self.index_base != "auto":
            return self.index_base
        zero = False
        try:
            for buf, length, _ in _iter_blocks(self._input, self.block_bytes):
                arr = np.frombuffer(buf, dtype=np.uint8, count=length).view()
                arr.flags.writeable = False
                if K.block_has_zero_index(arr, length):
                    zero = True
                    break
            self._input.rewind()
        except Exception as exc:
            raise self._decompress_error(exc) from exc
        self.index_base = 0 if zero else 1
        return self.index_base

    def _parse(self, buf, length, base):
        res = parse_block(buf, length, index_base=base, n_features=self.n_features,
                          skip_invalid=self.skip_invalid, slow_capacity=self._slow_hint)
        if res.n_slow > self._slow_hint:  # size the next blocks' slow-token lists (benign race)
            self._slow_hint = res.n_slow + res.n_slow // 4
        return res

    def _batches(self) -> Iterator[SparseBatch]:
        try:
            base = self._resolve_index_base()
        except BaseException:
            self._input.close()
            raise

        def submit(pool, buf, length):
            return pool.submit(self._parse, buf, length, base)

        with closing(parsed_in_order(self._input, self.name, self.block_bytes, self.threads, submit,
                                     "libsvm")) as parsed:
            for raw_pos, res in parsed:
                batch = self._take(res, raw_pos)
                if batch is not None:
                    yield batch

    def _take(self, res: BlockResult, raw_pos: int) -> SparseBatch | None:
        """Account for one parsed block (in file order); raise its error in stop mode."""
        line0 = self.n_lines
        if res.stopped:
            line, message = res.errors[0]
            raise DataFormatError(self.name, message, line=line0 + line)
        if res.n_errors:
            self.n_skipped += res.n_errors
            room = MAX_REPORTED_SKIPS - len(self.skipped)
            self.skipped.extend((line0 + line, msg) for line, msg in res.errors[:room])
        self.n_lines += res.n_lines
        self.bytes_in = raw_pos
        if res.max_index >= 0:
            self.max_index = max(self.max_index, res.max_index)
            self.min_index = res.min_index if self.min_index < 0 else min(self.min_index, res.min_index)
        self.all_ones = self.all_ones and res.all_ones
        if res.n_rows == 0:
            return None
        row_start = self.n_rows
        self.n_rows += res.n_rows
        self.nnz += len(res.indices)
        return SparseBatch(
            indptr=res.indptr,
            indices=res.indices,
            values=res.values,
            labels=res.labels,
            weights=None,
            source=f"{self.name} lines {line0 + 1}-{line0 + res.n_lines}",
            row_start=row_start,
        )
