"""Streaming reader of rating text: MovieLens-style CSV, ``user item rating [timestamp]``
lines (.data/.base/.test) and ``::``-separated ratings.dat; plain, gzip, bz2 or xz (from
the first bytes), a path or standard input.

Memory is bounded whatever the file size: one thread reads blocks of ``block_bytes`` cut
at a line break (streamhog.io.formats.libsvm's input layer), ``threads`` workers parse them
with the nogil kernel of parse_kernel.py, and the consumer takes the results in file order.

The first non-blank line decides the layout: ``::`` in it means ratings.dat, a comma CSV,
anything else whitespace-separated fields. It is a header when one of its first three
fields is not a number; the user, item and rating columns are then found by name
(``--user-column`` and the like, else the usual names, case-insensitively: userId /
user_id / user, movieId / itemId / item_id / item / movie_id, rating / score), and every
line must have as many fields as the header. Without a header the fields are
``user item rating`` with an optional fourth (a timestamp, not kept). A file of pairs to
score has no rating: a header without a rating column (and no ``--rating-column``), or
lines of exactly two numbers; its ratings come out as 0 and ``Layout.has_ratings`` is False. A bad line (a
non-integer or negative id, a rating that is not a finite number, fields missing) stops the
reader with the file, the line and the problem (``skip_invalid``: skipped, counted, and the
first ten remembered).
"""
from __future__ import annotations

import weakref
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataFormatError
from ..io.formats.libsvm import MAX_REPORTED_SKIPS, _quote
from ..io.formats.text_input import ClosingReader, open_binary_input, parsed_in_order
from . import parse_kernel as K

DEFAULT_COLUMNS = {
    "user": ("userid", "user_id", "user"),
    "item": ("movieid", "itemid", "item_id", "item", "movie_id"),
    "rating": ("rating", "score"),
}
_SEPARATORS = {K.SEP_WHITESPACE: "whitespace", K.SEP_COMMA: "comma", K.SEP_DOUBLE_COLON: "'::'"}


@dataclass
class Layout:
    """How the lines of a file are read: separator, header, field positions, field count."""

    sep: int
    header: list | None
    user_col: int = 0
    item_col: int = 1
    rating_col: int = 2
    min_fields: int = 3
    max_fields: int = 4

    @property
    def has_ratings(self) -> bool:
        return self.rating_col >= 0


def _split(line: str, sep: int) -> list[str]:
    if sep == K.SEP_WHITESPACE:
        parts = line.split()
    else:
        parts = line.split("," if sep == K.SEP_COMMA else "::")
    return [p.strip().strip('"').strip() for p in parts]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def detect_layout(first_line: str, name: str, columns: dict) -> Layout:
    """The layout of a file from its first non-blank line (see the module docstring)."""
    sep = K.SEP_DOUBLE_COLON if "::" in first_line else K.SEP_COMMA if "," in first_line else K.SEP_WHITESPACE
    fields = _split(first_line, sep)
    given = {k: v for k, v in columns.items() if v is not None}
    if len(fields) == 2 and all(_is_number(f) for f in fields) and not given:
        return Layout(sep, None, 0, 1, -1, 2, 2)  # user item: pairs to score
    header = len(fields) < 3 or not all(_is_number(f) for f in fields[:3])
    if not header:
        if given:
            flags = ", ".join(f"--{k}-column" for k in given)
            raise DataFormatError(name, f"{flags} names a column, but the first line is not a header "
                                        f"({_SEPARATORS[sep]}-separated numbers: columns are user item rating "
                                        "[timestamp])", line=1)
        return Layout(sep, None)
    lower = [f.lower() for f in fields]
    if len(set(lower)) != len(lower):
        raise DataFormatError(name, f"the header names a column twice: {', '.join(fields)}", line=1)
    cols = {"rating": -1}
    for role, names in DEFAULT_COLUMNS.items():
        wanted = (given[role].lower(),) if role in given else names
        found = [lower.index(n) for n in wanted if n in lower]
        if not found and role == "rating" and role not in given:
            continue  # no rating column: (user, item) pairs to score
        if not found:
            what = f"no column '{given[role]}'" if role in given else f"no {role} column ({' / '.join(names)})"
            raise DataFormatError(name, f"the header has {what}; its columns are {', '.join(fields)}: name them "
                                        "with --user-column, --item-column and --rating-column", line=1)
        cols[role] = found[0]
    if len(set(cols.values())) < 3:
        raise DataFormatError(name, "the user, item and rating columns must be three different columns", line=1)
    n = len(fields)
    return Layout(sep, fields, cols["user"], cols["item"], cols["rating"], n, n)


def _message(buf, row, layout: Layout) -> str:
    code, start, end, n_fields, col = (int(row[k]) for k in (K.ERR_CODE, K.ERR_START, K.ERR_END, K.ERR_A, K.ERR_B))
    text = _quote(buf, start, end)
    what = {layout.user_col: "user id", layout.item_col: "item id", layout.rating_col: "rating"}.get(col, "field")
    if code == K.E_FIELD_COUNT:
        want = (f"{layout.min_fields} (as the header)" if layout.header is not None
                else "3 or 4 (user item rating [timestamp])" if layout.has_ratings else "2 (user item)")
        return f"{n_fields} field(s), expected {want}: {text}"
    if code in (K.E_ID_EMPTY, K.E_RATING_EMPTY):
        return f"{what} is missing (empty field)"
    if code == K.E_ID_NEGATIVE:
        return f"{what} {text} is negative; ids are non-negative integers"
    if code == K.E_ID_NOT_INT:
        return f"{what} {text} is not a non-negative integer"
    if code == K.E_ID_TOO_LARGE:
        return f"{what} {text} is too large (at most {K.MAX_ID})"
    if code == K.E_RATING_NOT_NUMBER:
        return f"rating {text} is not a number"
    if code == K.E_RATING_NOT_FINITE:
        return f"rating {text} is NaN or infinite"
    if code == K.E_RATING_RANGE:
        return f"rating {text} is out of float32 range"
    return f"invalid line (error code {code})"  # pragma: no cover


@dataclass
class RatingBlock:
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    n_lines: int
    errors: list = field(default_factory=list)
    n_errors: int = 0
    stopped: bool = False


def parse_ratings(data, length: int | None = None, *, layout: Layout, skip_first: bool = False,
                  skip_invalid: bool = False) -> RatingBlock:
    """Parse the rating lines in ``data[:length]`` (whole lines); line numbers in
    ``errors`` are relative to the block."""
    length = len(data) if length is None else length
    arr = np.frombuffer(data, np.uint8, count=length)
    if arr.flags.writeable:  # the kernel is compiled for read-only input (file bytes are)
        arr = arr.view()
        arr.flags.writeable = False
    cap = K.count_lines(arr, length)
    users, items = np.empty(cap, np.uint64), np.empty(cap, np.uint64)
    ratings = np.empty(cap, np.float32)
    errors = np.zeros((MAX_REPORTED_SKIPS, K.ERR_FIELDS), np.int64)
    stats = np.zeros(K.N_STATS, np.int64)
    slow = np.empty((64, 3), np.int64)
    while True:
        K.parse_ratings_block(arr, length, layout.sep, layout.min_fields, layout.max_fields, layout.user_col,
                              layout.item_col, layout.rating_col, skip_first, skip_invalid, users, items, ratings,
                              slow, errors, stats)
        if stats[K.S_SLOW] <= len(slow):
            break
        slow = np.empty((int(stats[K.S_SLOW]), 3), np.int64)  # rare: parse again with room for all
    n, n_slow = int(stats[K.S_ROWS]), int(stats[K.S_SLOW])
    if n_slow and not stats[K.S_STOPPED]:
        text = bytes(data[:length])
        for s, e, slot in slow[:n_slow].tolist():
            ratings[slot] = float(text[s:e])  # exact, then rounded to float32
    n_err = int(stats[K.S_ERRORS])
    reported = [(int(r[K.ERR_LINE]), _message(data, r, layout)) for r in errors[:min(n_err, MAX_REPORTED_SKIPS)]]
    return RatingBlock(users[:n], items[:n], ratings[:n], int(stats[K.S_LINES]), reported, n_err,
                       bool(stats[K.S_STOPPED]))


class RatingsReader(ClosingReader):
    """Stream a rating text file as ``(users uint64, items uint64, ratings float32, first
    line)`` blocks in file order. ``user_column`` / ``item_column`` / ``rating_column``
    name the columns of a file with a header. After iteration: ``n_rows``, ``n_lines``,
    ``n_skipped``, ``skipped`` (line, problem) of the first ten, ``bytes_in``, ``layout``."""

    def __init__(self, source, *, user_column=None, item_column=None, rating_column=None, skip_invalid=False,
                 block_bytes=8 << 20, threads=2):
        if int(threads) < 1 or int(block_bytes) < 1:
            raise ConfigError("threads and block_bytes must be positive")
        self.columns = {"user": user_column, "item": item_column, "rating": rating_column}
        self.skip_invalid = bool(skip_invalid)
        self.block_bytes = int(block_bytes)
        self.threads = int(threads)
        self._input, self.name = open_binary_input(source)
        self.layout: Layout | None = None
        self.n_rows = self.n_lines = self.n_skipped = self.bytes_in = 0
        self.skipped: list[tuple[int, str]] = []
        self._gen = None

    def __iter__(self):
        if self._gen is not None or self.layout is not None:
            raise RuntimeError(f"{self.name}: a RatingsReader can be iterated only once")
        gen = self._blocks()
        self._gen = weakref.ref(gen)  # weak: a dropped loop closes the generator (and threads) at once
        return gen

    def _first_line(self, buf, length) -> str | None:
        for raw in bytes(buf[:length]).split(b"\n"):
            if raw.strip():
                return raw.decode("utf-8", "replace").rstrip("\r")
        return None

    def _blocks(self):
        skip_first = False

        def submit(pool, buf, length):
            nonlocal skip_first
            if self.layout is None:
                first = self._first_line(buf, length)
                if first is None:
                    self.n_lines += bytes(buf[:length]).count(b"\n")  # blank lines only
                    return None
                self.layout = detect_layout(first, self.name, self.columns)
                # The header is the first non-blank line: blank lines before it stay lines.
                skip_first = self.layout.header is not None
            future = pool.submit(parse_ratings, buf, length, layout=self.layout, skip_first=skip_first,
                                 skip_invalid=self.skip_invalid)
            skip_first = False
            return future

        with closing(parsed_in_order(self._input, self.name, self.block_bytes, self.threads, submit,
                                     "ratings")) as parsed:
            for raw_pos, res in parsed:
                out = self._take(res, raw_pos)
                if out is not None:
                    yield out

    def _take(self, res: RatingBlock, raw_pos: int):
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
        if not len(res.ratings):
            return None
        self.n_rows += len(res.ratings)
        return res.users, res.items, res.ratings, line0 + 1
