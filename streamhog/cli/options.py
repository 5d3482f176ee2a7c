"""What several commands share: option types with readable errors, and the data options
(columns, index base, ...) of train, evaluate, predict, convert and info."""
from __future__ import annotations

import argparse
import sys


def _whole_number(text: str) -> int:
    # argparse names the type function in its message ("invalid _positive_int value"): say
    # what is expected instead.
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _hash_bits(text: str) -> int:
    value = _whole_number(text)
    if not 1 <= value <= 32:
        raise argparse.ArgumentTypeError(f"must be from 1 to 32, got {value}")
    return value


def _hot_features(text: str):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be auto or a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be auto or >= 0, got {value}")
    return value


def add_data_arguments(p: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """The options of Parquet written by other tools (DuckDB, Polars, pandas, Spark), shared by
    train, evaluate, predict and convert; ``skip`` names those a command already has."""
    g = p.add_argument_group("Parquet written by other tools (streamhog's own files need none of these)")
    if "label_column" not in skip:
        g.add_argument("--label-column", metavar="NAME", help="the label column (default: label)")
    g.add_argument("--indices-column", metavar="NAME",
                   help="the feature-id column, a list of integers per row (default: indices)")
    g.add_argument("--values-column", metavar="NAME",
                   help="the feature-value column, a list of numbers per row (default: values; absent: every value 1)")
    g.add_argument("--weight-column", metavar="NAME", help="the importance-weight column (default: weight, if present)")
    if "index_base" not in skip:
        g.add_argument("--index-base", choices=("0", "1"), default=None,
                       help="feature ids start at 0 (default) or 1")
    if "n_features" not in skip:
        g.add_argument("--n-features", type=_positive_int,
                       help="the data's dimension when its metadata does not say (default: the largest id + 1, "
                            "found by a pass over the ids)")
    g.add_argument("--fix-rows", action="store_true",
                   help="sort each row's ids and sum repeated ones, instead of refusing such rows")


def data_options(args) -> dict:
    """open_dataset's keyword arguments from the options of :func:`add_data_arguments`."""
    base = getattr(args, "index_base", None)
    return dict(label_column=args.label_column, indices_column=args.indices_column, values_column=args.values_column,
                weight_column=args.weight_column, index_base=int(base) if base not in (None, "auto") else 0,
                fix_rows=args.fix_rows, n_features=args.n_features)


def _open_data(path, args, notes: bool = True):
    """The dataset at ``path`` (a path or URL) with the command's data options; its notes
    (e.g. how n_features was found) to stderr unless ``notes`` is False (train says them)."""
    from ..io.formats import open_dataset

    ds = open_dataset(path, **data_options(args))
    for note in getattr(ds, "notes", ()) if notes else ():
        print(note, file=sys.stderr)
    return ds
