"""Click logs as CSV with a header row (Avazu's layout): text in, hashed
:class:`~streamhog.io.batch.SparseBatch` blocks out.

The first line names the columns. One column is the label (any finite number); the others
are categorical, numeric or ignored:

- with neither ``categorical`` nor ``numeric`` given, every column other than the label and
  the ``ignore`` ones is categorical;
- with ``numeric`` only, the columns it names are numeric and the rest categorical;
- with ``categorical`` given, exactly the columns it names are categorical (plus the
  ``numeric`` ones); the columns no option names are ignored.

Values are hashed like Criteo's (docs/formats.md, "Click logs"): a categorical value ``v`` of
column ``F`` is ``murmur3_32(utf8(v), seed=murmur3_32(utf8(F), 0)) & (2**hash_bits - 1)``, a
numeric value is binned to ``"SP" + str(int(v))`` (``v <= 2``) or ``str(int(ln(v) ** 2))``
first; an empty field is no feature. Fields may be double-quoted (RFC 4180, ``""`` inside
for a quote) but cannot span lines. Refused, with the file and line (or skipped and counted
with ``skip_invalid``): a line with another number of fields than the header, an empty or
non-numeric label, a numeric field that is not a finite number, a broken quote.
"""
from __future__ import annotations

from ...errors import ConfigError, DataFormatError
from .clicklog import CATEGORICAL, DEFAULT_HASH_BITS, IGNORE, LABEL, NUMERIC, ClickLogReader

__all__ = ["CsvReader", "DEFAULT_HASH_BITS", "column_kinds"]


def _names(value) -> list[str]:
    """A list of column names from a list or a comma-separated string (blank items dropped)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [s.strip() for s in items if s.strip()]


def column_kinds(header: list[str], label_column: str, categorical=None, numeric=None, ignore=None,
                 *, path="<csv>") -> list[str]:
    """The kind of each header column under the rules of the module docstring."""
    cat, num, ign = _names(categorical), _names(numeric), _names(ignore)
    present = set(header)
    if label_column not in present:
        raise DataFormatError(path, f"label column {label_column!r} is not in the header "
                                    f"(columns: {', '.join(header)})", line=1)
    for option, names in (("--categorical", cat), ("--numeric", num), ("--ignore", ign)):
        missing = [n for n in names if n not in present]
        if missing:
            raise DataFormatError(path, f"{option} names column(s) not in the header: {', '.join(missing)} "
                                        f"(columns: {', '.join(header)})", line=1)
    seen: dict[str, str] = {}
    for option, names in (("--categorical", cat), ("--numeric", num), ("--ignore", ign)):
        for n in names:
            if n == label_column:
                raise ConfigError(f"column {n!r} is the label; it cannot also be given to {option}")
            if seen.setdefault(n, option) != option:
                raise ConfigError(f"column {n!r} is given to both {seen[n]} and {option}")
    rest = IGNORE if categorical is not None else CATEGORICAL
    kinds = []
    for n in header:
        if n == label_column:
            kinds.append(LABEL)
        elif n in num:
            kinds.append(NUMERIC)
        elif n in cat:
            kinds.append(CATEGORICAL)
        elif n in ign:
            kinds.append(IGNORE)
        else:
            kinds.append(rest)
    return kinds


class CsvReader(ClickLogReader):
    """Stream a CSV click log with a header row (a path, ``"-"`` or a binary file object;
    gz/bz2/xz detected) as hashed :class:`SparseBatch` blocks of ``2**hash_bits`` features.

    ``categorical``, ``numeric``, ``ignore``: column names, as lists or comma-separated text.
    """

    quoting = True
    binary_label = False
    has_header = True

    def __init__(self, source, *, label_column: str, categorical=None, numeric=None, ignore=None,
                 separator: str = ",", **options):
        if len(separator.encode()) != 1 or separator in "\r\n\"":
            raise ConfigError(f"separator must be one byte other than a quote or a line break, got {separator!r}")
        self.separator = separator.encode()
        self._options = (label_column, categorical, numeric, ignore)
        super().__init__(source, **options)

    def _columns(self, header):
        label, categorical, numeric, ignore = self._options
        return header, column_kinds(header, label, categorical, numeric, ignore, path=self.name)
