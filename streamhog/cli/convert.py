"""``streamhog convert``: its options and its run."""
from __future__ import annotations

import argparse

from ..io.formats.spec import DEFAULT_COMPRESSION, PARQUET_COMPRESSIONS, PARQUET_LAYOUTS
from .mf import add_ratings_arguments, check_rating_columns, run_convert_ratings
from .options import _hash_bits, _non_negative_int, _positive_int, add_data_arguments


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="LIBSVM/svmlight text (plain, .gz, .bz2, .xz; '-' for stdin), Parquet, Zarr, "
                               "or a click log (Criteo TSV, CSV with a header; compressed too)")
    p.add_argument("dst", help="output: NAME.parquet or NAME.zarr")
    p.add_argument("--format", dest="output_format", choices=("parquet", "zarr"),
                   help="output format (default: from DST's suffix)")
    p.add_argument("--input-format", choices=("auto", "libsvm", "parquet", "zarr", "criteo", "csv", "ratings"),
                   default="auto",
                   help="input format (default: auto = Parquet/Zarr when SRC is one, else LIBSVM text); criteo: "
                        "Criteo challenge TSV (label, I1..I13, C1..C26); csv: a header row, see --label-column; "
                        "ratings: user/item/rating text (MovieLens CSV, 'user item rating [timestamp]' lines) into "
                        "the interaction layout, for --loss mf")
    p.add_argument("--hash-bits", type=_hash_bits, metavar="B",
                   help="hash feature ids into 2^B slots (MurmurHash3, collisions summed; docs/formats.md); "
                        "click logs are always hashed, default B=20")
    p.add_argument("--label-column", metavar="NAME",
                   help="csv: the label column (required for csv); Parquet: the label column (default: label)")
    p.add_argument("--categorical", metavar="COLS",
                   help="csv: comma-separated categorical columns (default: every column but the label and "
                        "--ignore/--numeric ones; when given, columns no option names are ignored)")
    p.add_argument("--numeric", metavar="COLS", help="csv: comma-separated numeric columns (log-binned, then hashed)")
    p.add_argument("--ignore", metavar="COLS", help="csv: comma-separated columns to leave out")
    p.add_argument("--index-base", choices=("1", "0", "auto"), default=None,
                   help="LIBSVM feature ids start at 1 (the convention, default), 0, or auto (0-based if any "
                        "index is 0; needs a seekable file); Parquet ids at 0 (default) or 1")
    p.add_argument("--n-features", type=_non_negative_int,
                   help="number of features (default: the largest index seen + 1); larger ids are an error")
    p.add_argument("--rows-per-group", type=_positive_int, default=None,
                   help="rows per Parquet row group / Zarr block (default: 16,384 for Parquet, 65,536 for "
                        "Zarr, the fastest to decode); it sets the reader's memory per block")
    p.add_argument("--compression", choices=PARQUET_COMPRESSIONS, default=DEFAULT_COMPRESSION,
                   help=f"codec (default {DEFAULT_COMPRESSION}: decodes fastest, see benchmarks/decode_formats.py; "
                        "snappy is Parquet-only)")
    p.add_argument("--layout", choices=PARQUET_LAYOUTS, default=None,
                   help="Parquet: packed (default) stores each row's ids as one binary cell of little-endian "
                        "uint32 and decodes about 2x faster (1.6x with zstd, 2.7x without a values column: "
                        "benchmarks/decode_formats.py); list writes list<uint32>/list<float32> columns, as "
                        "other tools do (docs/formats.md)")
    p.add_argument("--values", choices=("auto", "keep", "drop"), default="auto",
                   help="values column: auto leaves it out when every value is 1.0 (default)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip malformed lines, report how many and the first few, instead of stopping")
    p.add_argument("--overwrite", action="store_true",
                   help="replace DST if it is a streamhog dataset (anything else is refused)")
    p.add_argument("--threads", type=_positive_int, default=2, help="parser / reader threads (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    add_data_arguments(p, skip=("label_column", "index_base", "n_features"))
    add_ratings_arguments(p)


def run_convert(args) -> int:
    from ..io.conversion import convert

    check_rating_columns(args)
    if args.input_format == "ratings":  # matrix factorization's interaction layout: cli/mf.py
        return run_convert_ratings(args)
    report = convert(args.src, args.dst, output_format=args.output_format, input_format=args.input_format,
                     indices_column=args.indices_column, values_column=args.values_column,
                     weight_column=args.weight_column, fix_rows=args.fix_rows,
                     index_base=args.index_base, n_features=args.n_features, rows_per_group=args.rows_per_group,
                     compression=args.compression, values=args.values, layout=args.layout, skip_invalid=args.skip_invalid,
                     overwrite=args.overwrite, threads=args.threads, progress=None if not args.quiet else False,
                     hash_bits=args.hash_bits, label_column=args.label_column, categorical=args.categorical,
                     numeric=args.numeric, ignore=args.ignore)
    if not args.quiet:
        print(report.summary())
    return 0
