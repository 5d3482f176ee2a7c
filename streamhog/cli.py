"""The ``streamhog`` command line: convert, train, evaluate, predict, info."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import StreamhogError
from .interrupt import Interrupted
from .formats.spec import DEFAULT_COMPRESSION, PARQUET_COMPRESSIONS, PARQUET_LAYOUTS


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


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="LIBSVM/svmlight text (plain, .gz, .bz2, .xz; '-' for stdin), Parquet, Zarr, "
                               "or a click log (Criteo TSV, CSV with a header; compressed too)")
    p.add_argument("dst", help="output: NAME.parquet or NAME.zarr")
    p.add_argument("--format", dest="output_format", choices=("parquet", "zarr"),
                   help="output format (default: from DST's suffix)")
    p.add_argument("--input-format", choices=("auto", "libsvm", "parquet", "zarr", "criteo", "csv"), default="auto",
                   help="input format (default: auto = Parquet/Zarr when SRC is one, else LIBSVM text); criteo: "
                        "Criteo challenge TSV (label, I1..I13, C1..C26); csv: a header row, see --label-column")
    p.add_argument("--hash-bits", type=_hash_bits, metavar="B",
                   help="hash feature ids into 2^B slots (MurmurHash3, collisions summed; docs/formats.md); "
                        "click logs are always hashed, default B=20")
    p.add_argument("--label-column", metavar="NAME", help="csv: the label column (required for csv)")
    p.add_argument("--categorical", metavar="COLS",
                   help="csv: comma-separated categorical columns (default: every column but the label and "
                        "--ignore/--numeric ones; when given, columns no option names are ignored)")
    p.add_argument("--numeric", metavar="COLS", help="csv: comma-separated numeric columns (log-binned, then hashed)")
    p.add_argument("--ignore", metavar="COLS", help="csv: comma-separated columns to leave out")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamhog", description="Hogwild! SGD on sparse data larger than memory.")
    parser.add_argument("--version", action="version", version=f"streamhog {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("convert", help="convert LIBSVM text or click logs to Parquet/Zarr, or between them",
                       description="Convert LIBSVM/svmlight text or raw click logs (Criteo TSV, CSV) to the "
                                   "sparse Parquet or Zarr format, or between them. Streams with bounded "
                                   "memory; on bad input it stops with the file, line and problem and leaves "
                                   "no output.")
    add_convert_arguments(p)
    p.set_defaults(run=run_convert)

    p = sub.add_parser("train", help="train a linear model with Hogwild! SGD",
                       description="Train a linear model with lock-free (Hogwild!) SGD: reader threads stream "
                                   "blocks into a bounded buffer, consumer threads update one memory-mapped "
                                   "weight vector without locks.")
    add_train_arguments(p)
    p.set_defaults(run=run_train)

    p = sub.add_parser("evaluate", help="metrics of a model on a dataset")
    _add_scoring_arguments(p)
    p.add_argument("--json", action="store_true", help="exactly one JSON object on stdout")
    p.set_defaults(run=run_evaluate)

    p = sub.add_parser("predict", help="write one prediction per example to Parquet")
    _add_scoring_arguments(p)
    p.add_argument("--out", required=True, help="output .parquet file: columns prediction, label (softmax models: class, "
                                                          "probability, label)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT if it is a predictions file (anything else is refused)")
    p.set_defaults(run=run_predict)

    p = sub.add_parser("info", help="what a dataset or a model holds")
    p.add_argument("path", help="a .parquet file, a directory of them, a .zarr store, or a model directory")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(run=run_info)
    return parser


def _add_scoring_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="a .parquet file, a directory of them, or a .zarr store")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--threads", type=_positive_int, default=None, help="scoring threads (default: one per core)")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .config import LR_SCHEDULES, OPTIMIZER_DEFAULTS, TrainConfig
    from .model import OPTIMIZERS

    d = TrainConfig()
    # Hyper-parameters default to None here so that a resumed run knows which ones the user
    # actually gave (the run's own settings apply otherwise); the defaults shown are TrainConfig's.
    p.add_argument("data", help="training data: a .parquet file, a directory of them, or a .zarr store")
    p.add_argument("--model", required=True, help="model directory to create (or to continue, with --resume)")
    p.add_argument("--loss", choices=("logistic", "hinge", "squared", "softmax"),
                   help=f"logistic regression, linear SVM, least squares, or softmax (multinomial logistic "
                        f"regression: labels 0..K-1, K weights per feature) (default {d.loss})")
    p.add_argument("--epochs", type=_positive_int,
                   help=f"total passes over the data, counting those of a resumed run (default {d.epochs})")
    p.add_argument("--threads", type=_positive_int, help="training threads (default: one per core)")
    p.add_argument("--readers", type=_positive_int,
                   help="reader threads (default: one per core; decoding bounds the throughput)")
    p.add_argument("--optimizer", choices=OPTIMIZERS,
                   help=f"per-coordinate update rule: sgd (plain), adagrad, normalized (scale-invariant "
                        f"AdaGrad, like Vowpal Wabbit's default), ftrl (FTRL-Proximal, sparse models with --l1) "
                        f"(default {d.optimizer})")
    defaults = ", ".join(f"{k} {lr:g} {sched}" for k, (lr, sched) in OPTIMIZER_DEFAULTS.items())
    p.add_argument("--lr", type=float, help=f"learning rate; FTRL's alpha (default per optimizer: {defaults})")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                   help="constant; decay: lr * lr_decay^epoch (the Hogwild! paper); invscaling: "
                        "lr / (1 + t)^power_t (default per optimizer, see --lr)")
    p.add_argument("--lr-decay", type=float, help=f"per-epoch factor of 'decay' (default {d.lr_decay:g})")
    p.add_argument("--power-t", type=float, help=f"exponent of 'invscaling' (default {d.power_t:g})")
    p.add_argument("--l2", type=float, help=f"L2 penalty on the touched coordinates, per example; for ftrl "
                                            f"FTRL-Proximal's lambda2 on the summed loss (default {d.l2:g})")
    p.add_argument("--l1", type=float, help="L1 penalty of --optimizer ftrl, on the summed loss as in McMahan et al. "
                                            "2013: larger values give sparser models (default 0)")
    p.add_argument("--ftrl-beta", type=float, help=f"FTRL-Proximal's beta (default {d.ftrl_beta:g})")
    p.add_argument("--initial-accumulator", type=float,
                   help=f"adagrad: the squared-gradient sum every weight starts from; damps the first steps of "
                        f"rare features (default {d.initial_accumulator:g}; 0: plain AdaGrad)")
    p.add_argument("--holdout", type=float, metavar="FRACTION",
                   help="fraction of the rows held out from training and scored after each epoch, for early "
                        "stopping (default 0.1 with more than one epoch and no --valid, else 0)")
    p.add_argument("--early-stopping", type=int, metavar="EPOCHS",
                   help=f"stop when the holdout (else --valid) loss has not improved for EPOCHS epochs, and keep "
                        f"the best epoch's model (default {d.early_stopping}; 0: run every epoch, keep the last)")
    p.add_argument("--hash-bits", type=int, metavar="B",
                   help="hash feature ids into 2^B weights (MurmurHash3, docs/formats.md): a fixed model size "
                        "whatever the data's ids; scoring hashes the same way")
    p.add_argument("--seed", type=int, help="seed of the block and row shuffling (default 0)")
    p.add_argument("--n-features", type=_positive_int,
                   help="model dimension (default: the data's); up to 2^34, sparse on disk")
    p.add_argument("--valid", help="a dataset to evaluate after each epoch")
    p.add_argument("--sync", choices=("none", "lock"),
                   help="none: lock-free Hogwild! (default); lock: a lock around each update (the baseline)")
    p.add_argument("--checkpoint-every", type=float, metavar="SECONDS",
                   help="also checkpoint every SECONDS (checkpoints are always written at the end of each epoch, "
                        "on Ctrl-C/SIGTERM and at the end)")
    p.add_argument("--resume", action="store_true", help="continue the run in --model from its checkpoint")
    p.add_argument("--warm-start", metavar="MODEL", help="start a new run from MODEL's weights")
    p.add_argument("--keep-snapshots", type=int, default=0, metavar="K",
                   help="keep K rollback copies of the model (sparse-aware), taken at epoch ends; on divergence "
                        "training rolls back to the newest")
    p.add_argument("--no-cache", dest="cache", action="store_false", default=None,
                   help="decode the data every epoch (default: with more than one epoch, the first epoch's "
                        "decoded blocks are cached in MODEL/cache and memory-mapped by later epochs)")
    p.add_argument("--keep-cache", action="store_true", help="keep MODEL/cache after training")
    p.add_argument("--overwrite", action="store_true", help="replace the model directory if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")


_HYPER = ("loss", "epochs", "optimizer", "threads", "readers", "lr", "lr_schedule", "lr_decay", "power_t", "l2", "l1",
          "ftrl_beta", "initial_accumulator", "holdout", "early_stopping", "hash_bits", "seed", "sync")


def run_convert(args) -> int:
    from .conversion import convert

    report = convert(args.src, args.dst, output_format=args.output_format, input_format=args.input_format,
                     index_base=args.index_base, n_features=args.n_features, rows_per_group=args.rows_per_group,
                     compression=args.compression, values=args.values, layout=args.layout, skip_invalid=args.skip_invalid,
                     overwrite=args.overwrite, threads=args.threads, progress=None if not args.quiet else False,
                     hash_bits=args.hash_bits, label_column=args.label_column, categorical=args.categorical,
                     numeric=args.numeric, ignore=args.ignore)
    if not args.quiet:
        print(report.summary())
    return 0


def run_train(args) -> int:
    from .training import train

    given = {k: getattr(args, k) for k in _HYPER if getattr(args, k) is not None}
    model = train(args.data, args.model, n_features=args.n_features, valid=args.valid, overwrite=args.overwrite,
                  resume=args.resume, warm_start=args.warm_start, checkpoint_every=args.checkpoint_every,
                  keep_snapshots=args.keep_snapshots, quiet=args.quiet, cache=args.cache,
                  keep_cache=args.keep_cache, **given)
    if not args.quiet:
        print(f"saved {model.path}: {model.loss} model of {model.n_features:,} features")
    return 0


def run_evaluate(args) -> int:
    from .model import Model

    metrics = Model.open(args.model).evaluate(args.data, threads=args.threads)
    if args.json:
        print(json.dumps(metrics))
    else:
        print(", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v:,}" for k, v in metrics.items()))
    return 0


def run_predict(args) -> int:
    from .inference import predict_to_parquet
    from .model import Model

    n = predict_to_parquet(Model.open(args.model), args.data, args.out, overwrite=args.overwrite, threads=args.threads)
    print(f"wrote {args.out}: {n:,} predictions")
    return 0


def run_info(args) -> int:
    from .formats import open_dataset
    from .describe import label_counts, model_info

    if (Path(args.path) / "model.json").is_file():
        info = model_info(args.path)
    else:
        ds = open_dataset(args.path)
        info = ds.info()
        info["labels"] = {f"{k:g}": v for k, v in label_counts(ds).items()}
    if args.json:
        print(json.dumps(info))
        return 0
    width = max(map(len, info))
    for key, value in info.items():
        if isinstance(value, (dict, list)) and key != "labels":
            value = json.dumps(value)
        elif key == "labels":
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
    except Interrupted as exc:  # before StreamhogError: its own exit status, 128 + signal
        print(f"streamhog {args.command}: {exc}", file=sys.stderr)
        return 128 + int(exc.signum)
    except (StreamhogError, ValueError, FileNotFoundError, NotADirectoryError, FileExistsError) as exc:
        print(f"streamhog {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"streamhog {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
