"""The ``streamhog`` command line: convert, train, evaluate, predict, recommend, info, plot.

``main`` parses, runs the command (cli/convert.py, cli/train.py, cli/score.py) and is the
error boundary: one line for every error streamhog expects, a bug said to be one.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys

from .._version import __version__
from ..errors import Interrupted, StreamhogError
from .convert import add_convert_arguments, run_convert
from .mf import add_ranking_arguments, add_recommend_arguments, run_recommend
from .options import add_data_arguments
from .score import _add_scoring_arguments, run_evaluate, run_info, run_plot, run_predict
from .train import add_train_arguments, run_train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamhog", description="Hogwild! SGD on sparse data larger than memory.")
    parser.add_argument("--version", action="version", version=f"streamhog {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
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
    add_ranking_arguments(p)
    p.set_defaults(run=run_evaluate)

    p = sub.add_parser("predict", help="write one prediction per example to Parquet")
    _add_scoring_arguments(p)
    p.add_argument("--out", required=True, help="output .parquet file, or a URL (s3://...): columns prediction, label "
                                                "(softmax models: class, probability, label)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT if it is a predictions file (anything else is refused)")
    p.set_defaults(run=run_predict)

    p = sub.add_parser("recommend", help="each user's best items from a factorization model, to Parquet",
                       description="Rank the items a factorization model saw in training for each user, best "
                                   "first, leaving out the pairs of --exclude files (what the users already rated); "
                                   "users are scored in batches, so memory stays bounded whatever their number.")
    add_recommend_arguments(p)
    p.set_defaults(run=run_recommend)

    p = sub.add_parser("info", help="what a dataset or a model holds")
    p.add_argument("path", help="a .parquet file, a directory of them, a .zarr store, or a model directory")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_data_arguments(p)
    p.set_defaults(run=run_info)

    p = sub.add_parser("plot", help="draw a model's training history (needs matplotlib: the plot extra)",
                       description="Draw a model's training history: the training loss and the holdout or "
                                   "validation metric per epoch, the kept (best) epoch marked.")
    p.add_argument("model", help="model directory")
    p.add_argument("--out", required=True, help="the picture: .png, .svg, .pdf or .jpg")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=run_plot)
    for command in sub.choices.values():  # also after the command: streamhog train ... --debug
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of an unexpected error")
    return parser


def _os_error(exc: OSError) -> str:
    """An OS error as one line naming the path: 'PATH: No space left on device'."""
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    what = exc.strerror or str(exc)
    hint = {errno.ENOSPC: " (the disk is full)", errno.EFBIG: " (a file size limit: ulimit -f)",
            errno.EROFS: " (a read-only filesystem)", errno.EACCES: " (check the permissions)",
            errno.EPERM: " (check the permissions)", errno.EDQUOT: " (disk quota exceeded)"}.get(exc.errno, "")
    return f"{where}: {what}{hint}" if where else f"{what}{hint}"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("STREAMHOG_DEBUG", "") not in ("", "0")
    try:
        return args.run(args)
    except Interrupted as exc:  # before StreamhogError: its own exit status, 128 + signal
        print(f"streamhog {args.command}: {exc}", file=sys.stderr)
        return 128 + int(exc.signum)
    # The errors streamhog raises on purpose, and the OS's errors about a file (they name the
    # path: a missing file, no permission, a full disk): one line each.
    except StreamhogError as exc:
        print(f"streamhog {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Whoever read stdout left (streamhog info m | head): stop quietly, as Unix tools do on
        # SIGPIPE; stdout goes to /dev/null so that the interpreter's last flush fails no more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as exc:
        named = exc.filename is not None or isinstance(exc, (FileNotFoundError, NotADirectoryError, FileExistsError))
        if debug or not (named or exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)):
            raise
        print(f"streamhog {args.command}: error: {_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"streamhog {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so, and how to see where (never hide it)
        if debug:
            raise
        print(f"streamhog {args.command}: internal error: {type(exc).__name__}: {exc}\n"
              f"  This is a bug in streamhog; run with --debug (or STREAMHOG_DEBUG=1) for the traceback "
              "and report it.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
