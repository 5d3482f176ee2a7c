"""The ``streamhog`` command line: convert, train, evaluate, predict, info."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._version import __version__
from .errors import StreamhogError, TrainingInterrupted
from .io.formats.spec import DEFAULT_COMPRESSION, PARQUET_COMPRESSIONS, PARQUET_LAYOUTS


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


def _hash_bits(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 32:
        raise argparse.ArgumentTypeError(f"must be from 1 to 32, got {value}")
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
    from .io.formats import open_dataset

    ds = open_dataset(path, **data_options(args))
    for note in getattr(ds, "notes", ()) if notes else ():
        print(note, file=sys.stderr)
    return ds


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
                        "uint32 and decodes about 3x faster; list writes list<uint32>/list<float32> columns, "
                        "as other tools do (docs/formats.md)")
    p.add_argument("--values", choices=("auto", "keep", "drop"), default="auto",
                   help="values column: auto leaves it out when every value is 1.0 (default)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip malformed lines, report how many and the first few, instead of stopping")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.add_argument("--threads", type=_positive_int, default=2, help="parser / reader threads (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    add_data_arguments(p, skip=("label_column", "index_base", "n_features"))


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
    p.add_argument("--out", required=True, help="output .parquet file, or a URL (s3://...): columns prediction, label "
                                                "(softmax models: class, probability, label)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=run_predict)

    p = sub.add_parser("info", help="what a dataset or a model holds")
    p.add_argument("path", help="a .parquet file, a directory of them, a .zarr store, or a model directory")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_data_arguments(p)
    p.set_defaults(run=run_info)
    return parser


def _add_scoring_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="a .parquet file, a directory of them, or a .zarr store; local or a URL (s3://, "
                                "gs://, http(s)://, file://)")
    p.add_argument("--model", required=True, help="model directory (on local disk)")
    p.add_argument("--threads", type=_positive_int, default=None, help="scoring threads (default: one per core)")
    add_data_arguments(p)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .losses import LOSSES
    from .model.directory import OPTIMIZERS
    from .training.config import LR_SCHEDULES, OPTIMIZER_DEFAULTS, TrainConfig

    d = TrainConfig()
    # Hyper-parameters default to None here so that a resumed run knows which ones the user
    # actually gave (the run's own settings apply otherwise); the defaults shown are TrainConfig's.
    p.add_argument("data", help="training data: a .parquet file, a directory of them, or a .zarr store; local or a "
                                "URL (s3://, gs://, http(s)://, file://)")
    p.add_argument("--model", required=True, help="model directory to create (or to continue, with --resume)")
    p.add_argument("--loss", choices=tuple(LOSSES),
                   help="; ".join(f"{name}: {loss.description}" for name, loss in LOSSES.items())
                        + f" (default {d.loss})")
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
                   help="model dimension (default: the data's; for data whose metadata does not say, the largest "
                        "id + 1, found by a pass over the ids); up to 2^34, sparse on disk")
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
    add_data_arguments(p, skip=("n_features",))
    add_cluster_arguments(p)


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    """Training on a Dask cluster (streamhog/cluster; names only: nothing of Dask is imported here)."""
    from .cluster.options import COMBINES, POLISHES, STALE_POLICIES, SYNC_MODES

    g = p.add_argument_group("Training on a Dask cluster (pip install 'streamhog[dask]')")
    g.add_argument("--cluster", metavar="SPEC",
                   help="local:N (a LocalCluster of N worker processes, started and stopped here) or the address "
                        "of a running scheduler (tcp://HOST:8786); DATA must be a path every worker sees, or a URL")
    g.add_argument("--workers", type=_positive_int, metavar="N", help="use at most N of the cluster's workers")
    g.add_argument("--sync-mode", choices=SYNC_MODES, default="average",
                   help="average: rounds of local Hogwild! training whose sparse changes are combined (default); "
                        "async: Downpour SGD with parameter-server shards; lbfgs: full-batch L-BFGS (--epochs counts "
                        "its iterations, 100 by default)")
    g.add_argument("--sync-every", metavar="ROWS|Ns",
                   help="average: rows each worker trains between two synchronisations (default 65536), or seconds "
                        "(2s)")
    g.add_argument("--sync-combine", choices=COMBINES, default="average",
                   help="average: the mean of the workers' changes, the workers stepping with lr x sqrt(workers) "
                        "(default); sum: the changes add up")
    g.add_argument("--polish", choices=POLISHES, default="none",
                   help="lbfgs: full-batch L-BFGS iterations after the SGD epochs (--polish-iterations, default 30)")
    g.add_argument("--polish-iterations", type=_positive_int, default=30, metavar="N",
                   help="L-BFGS iterations of --polish lbfgs (default 30)")
    g.add_argument("--push-every", type=_positive_int, default=1, metavar="BLOCKS",
                   help="async: blocks a worker trains between two pushes of its changes (default 1)")
    g.add_argument("--fetch-every", type=_positive_int, default=1, metavar="BLOCKS",
                   help="async: blocks between two fetches of the model from the shards (default 1)")
    g.add_argument("--max-staleness", type=_non_negative_int, metavar="PUSHES",
                   help="async: pushes by other workers since a worker's fetch beyond which its update is stale "
                        "(default: 2 x workers)")
    g.add_argument("--stale-policy", choices=STALE_POLICIES, default="scale",
                   help="async: scale a stale update by 1/staleness (default), or drop it")


_CLUSTER = ("workers", "push_every", "fetch_every", "max_staleness", "stale_policy", "polish_iterations")
_HYPER = ("loss", "epochs", "optimizer", "threads", "readers", "lr", "lr_schedule", "lr_decay", "power_t", "l2", "l1",
          "ftrl_beta", "initial_accumulator", "holdout", "early_stopping", "hash_bits", "seed", "sync")


def run_convert(args) -> int:
    from .io.conversion import convert

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


def run_train(args) -> int:
    from .training.job import train

    given = {k: getattr(args, k) for k in _HYPER if getattr(args, k) is not None}
    valid = _open_data(args.valid, args) if args.valid is not None else None
    common = dict(n_features=args.n_features, valid=valid, overwrite=args.overwrite, resume=args.resume,
                  warm_start=args.warm_start, checkpoint_every=args.checkpoint_every,
                  keep_snapshots=args.keep_snapshots, quiet=args.quiet, **given)
    if args.cluster is not None:
        from .cluster.job import train_on_cluster  # Dask is imported only here

        options = {"n_workers" if k == "workers" else k: getattr(args, k) for k in _CLUSTER}
        model = train_on_cluster(args.data, args.model, cluster=args.cluster, sync_mode=args.sync_mode,
                                 sync_every=args.sync_every, combine=args.sync_combine, polish=args.polish,
                                 data_options=data_options(args), cluster_options=options, **common)
    else:
        data = _open_data(args.data, args, notes=False)
        model = train(data, args.model, cache=args.cache, keep_cache=args.keep_cache, **common)
    if not args.quiet:
        print(f"saved {model.path}: {model.loss} model of {model.n_features:,} features")
    return 0


def run_evaluate(args) -> int:
    from .model.directory import Model

    model = Model.open(args.model)
    metrics = model.evaluate(_open_data(args.data, args), threads=args.threads)
    if args.json:
        print(json.dumps(metrics))
    else:
        print(", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v:,}" for k, v in metrics.items()))
    return 0


def run_predict(args) -> int:
    from .model.inference import predict_to_parquet
    from .model.directory import Model

    model = Model.open(args.model)
    n = predict_to_parquet(model, _open_data(args.data, args), args.out, overwrite=args.overwrite,
                           threads=args.threads)
    print(f"wrote {args.out}: {n:,} predictions")
    return 0


def run_info(args) -> int:
    from .io.formats.storage import is_remote
    from .io.summary import label_counts
    from .model.info import model_info

    if not is_remote(args.path) and (Path(args.path) / "model.json").is_file():
        info = model_info(args.path)
    else:
        ds = _open_data(args.path, args, notes=False)  # info lists them
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
    except TrainingInterrupted as exc:  # before StreamhogError: its own exit status, 128 + signal
        print(f"streamhog {args.command}: {exc}", file=sys.stderr)
        return 128 + int(exc.signum)
    # Only the errors streamhog raises on purpose, and the OS's file errors (they name the
    # path): anything else is a bug and keeps its traceback.
    except (StreamhogError, FileNotFoundError, NotADirectoryError, FileExistsError) as exc:
        print(f"streamhog {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"streamhog {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
