"""The ``streamhog`` command line: ``convert`` and ``info``."""
from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .errors import StreamhogError
from .formats.spec import DEFAULT_COMPRESSION, PARQUET_COMPRESSIONS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="LIBSVM/svmlight text (plain, .gz, .bz2, .xz; '-' for stdin), Parquet or Zarr")
    p.add_argument("dst", help="output: NAME.parquet or NAME.zarr")
    p.add_argument("--format", dest="output_format", choices=("parquet", "zarr"),
                   help="output format (default: from DST's suffix)")
    p.add_argument("--input-format", choices=("auto", "libsvm", "parquet", "zarr"), default="auto",
                   help="input format (default: auto = Parquet/Zarr when SRC is one, else LIBSVM text)")
    p.add_argument("--index-base", choices=("1", "0", "auto"), default="1",
                   help="LIBSVM feature ids start at 1 (the convention, default), 0, or auto (0-based if any "
                        "index is 0; needs a seekable file)")
    p.add_argument("--n-features", type=_non_negative_int,
                   help="number of features (default: the largest index seen + 1); larger ids are an error")
    p.add_argument("--rows-per-group", type=_positive_int, default=None,
                   help="rows per Parquet row group / Zarr block (default: 16,384 for Parquet, 65,536 for "
                        "Zarr, the fastest to decode); it sets the reader's memory per block")
    p.add_argument("--compression", choices=PARQUET_COMPRESSIONS, default=DEFAULT_COMPRESSION,
                   help=f"codec (default {DEFAULT_COMPRESSION}: decodes fastest, see benchmarks/decode_formats.py; "
                        "snappy is Parquet-only)")
    p.add_argument("--values", choices=("auto", "keep", "drop"), default="auto",
                   help="values column: auto leaves it out when every value is 1.0 (default)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip malformed lines, report how many and the first few, instead of stopping")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.add_argument("--threads", type=_positive_int, default=2, help="parser / reader threads (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamhog", description="Hogwild! SGD on sparse data larger than memory.")
    parser.add_argument("--version", action="version", version=f"streamhog {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("convert", help="convert LIBSVM text to Parquet/Zarr, or between Parquet and Zarr",
                       description="Convert LIBSVM/svmlight text to the sparse Parquet or Zarr format, or "
                                   "between them. Streams with bounded memory; on bad input it stops with "
                                   "the file, line and problem and leaves no output.")
    add_convert_arguments(p)
    p.set_defaults(run=run_convert)

    p = sub.add_parser("info", help="what a dataset holds")
    p.add_argument("path", help="a .parquet file, a directory of them, or a .zarr store")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(run=run_info)
    return parser


def run_convert(args) -> int:
    from .convert import convert

    report = convert(args.src, args.dst, output_format=args.output_format, input_format=args.input_format,
                     index_base=args.index_base, n_features=args.n_features, rows_per_group=args.rows_per_group,
                     compression=args.compression, values=args.values, skip_invalid=args.skip_invalid,
                     overwrite=args.overwrite, threads=args.threads, progress=None if not args.quiet else False)
    if not args.quiet:
        print(report.summary())
    return 0


def run_info(args) -> int:
    from .formats import open_dataset
    from .inspect import label_counts

    ds = open_dataset(args.path)
    info = ds.info()
    info["labels"] = {f"{k:g}": v for k, v in label_counts(ds).items()}
    if args.json:
        print(json.dumps(info))
        return 0
    width = max(map(len, info))
    for key, value in info.items():
        if key == "labels":
            value = ", ".join(f"{k}: {v:,}" for k, v in list(value.items())[:10]) + (
                f" ... ({len(value)} distinct)" if len(value) > 10 else "")
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        print(f"{key:<{width}}  {value}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (StreamhogError, ValueError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"streamhog {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"streamhog {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
