"""The command line of matrix factorization (streamhog/factorization): what ``convert
--input-format ratings``, ``train --loss mf``, ``recommend``, and ``evaluate``, ``predict``,
``info`` on a factorization model or an interaction file run. The other command modules only dispatch
here (on the option, the model's kind, the file's kind), so that the linear models' code
paths stay as they are.

Options of the linear models that mean nothing for a factorization (hashing, FTRL, the
cluster, ...) are refused with a one-line error rather than silently ignored.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from .options import _positive_int

RATING_COLUMNS = ("user_column", "item_column", "rating_column")


# -- convert ---------------------------------------------------------------------------------

def add_ratings_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Ratings (--input-format ratings: user/item/rating text for --loss mf)")
    g.add_argument("--user-column", metavar="NAME",
                   help="the header's user id column (default: userId, user_id or user)")
    g.add_argument("--item-column", metavar="NAME",
                   help="the header's item id column (default: movieId, itemId, item_id, item or movie_id)")
    g.add_argument("--rating-column", metavar="NAME",
                   help="the header's rating column (default: rating or score; none: (user, item) pairs to "
                        "score with predict)")


def check_rating_columns(args) -> None:
    """The column options of ratings belong to ``--input-format ratings`` only."""
    given = [f"--{k.replace('_', '-')}" for k in RATING_COLUMNS if getattr(args, k, None) is not None]
    if given and args.input_format != "ratings":
        raise ConfigError(f"{', '.join(given)} apply to --input-format ratings only")


def run_convert_ratings(args) -> int:
    from ..factorization.convert import RatingsReport, convert_ratings

    dst = Path(args.dst)
    fmt = args.output_format or ("parquet" if dst.suffix == ".parquet" else dst.suffix.lstrip(".") or "none")
    if fmt != "parquet":
        raise ConfigError(f"{args.dst}: ratings convert to Parquet (the interaction layout, a .parquet file), "
                          f"not {fmt}")
    sparse_only = {"--hash-bits": args.hash_bits is not None, "--indices-column": args.indices_column is not None,
                   "--values-column": args.values_column is not None, "--weight-column": args.weight_column is not None,
                   "--fix-rows": args.fix_rows, "--layout": args.layout is not None,
                   "--values": args.values != "auto", "--n-features": args.n_features is not None,
                   "--index-base": args.index_base is not None, "--label-column": args.label_column is not None,
                   "--categorical": args.categorical is not None, "--numeric": args.numeric is not None,
                   "--ignore": args.ignore is not None}
    if given := [k for k, v in sparse_only.items() if v]:
        raise ConfigError(f"{', '.join(given)}: sparse-feature options; they do not apply to --input-format ratings")
    report = RatingsReport(str(args.src), str(args.dst))
    convert_ratings(args.src, args.dst, report, rows_per_group=args.rows_per_group, compression=args.compression,
                    skip_invalid=args.skip_invalid, overwrite=args.overwrite, threads=args.threads,
                    progress=None if not args.quiet else False,
                    **{k: getattr(args, k) for k in RATING_COLUMNS})
    if not args.quiet:
        print(report.summary())
    return 0


# -- train -----------------------------------------------------------------------------------

def add_mf_train_arguments(p: argparse.ArgumentParser) -> None:
    from ..factorization.config import (DEFAULT_INIT_SCALE, DEFAULT_INITIAL_ACCUMULATOR, DEFAULT_L2, DEFAULT_LR,
                                        DEFAULT_NEGATIVES, DEFAULT_SCHEDULE, FEEDBACKS, SCHEDULES, MFConfig)

    d = MFConfig()
    per = lambda table: ", ".join(f"{k} {v:g}" for k, v in table.items())  # noqa: E731
    g = p.add_argument_group("Matrix factorization (--loss mf: interaction data from --input-format ratings; "
                             "--epochs, --threads, --optimizer rowwise-adagrad|adagrad|sgd (default "
                             f"{d.optimizer}: AdaGrad with one sum per factor row), --lr (default per optimizer: "
                             f"{per(DEFAULT_LR)}), --lr-decay, --l2 (default per feedback: {per(DEFAULT_L2)}), "
                             f"--initial-accumulator (default {per(DEFAULT_INITIAL_ACCUMULATOR)}), --holdout, "
                             "--early-stopping, --seed, --valid, "
                             "--resume as above)")
    g.add_argument("--rank", type=_positive_int, help=f"factors per user and per item (default {d.rank})")
    g.add_argument("--l2-bias", type=float, help=f"L2 penalty on the touched biases, per observation "
                                                 f"(default {d.l2_bias:g})")
    g.add_argument("--init-scale", type=float,
                   help="standard deviation of a factor row's seeded start, in standardized rating units "
                        f"(default per optimizer: {per(DEFAULT_INIT_SCALE)})")
    g.add_argument("--schedule", choices=SCHEDULES,
                   help="how --threads share the work: hogwild, each thread trains whole blocks against shared "
                        "rows without locks; strata, they train each block together on a grid of cells that "
                        "share no user and no item (no contention; deterministic for a seed and --threads) "
                        f"(default per optimizer: {', '.join(f'{k} {v}' for k, v in DEFAULT_SCHEDULE.items())})")
    g.add_argument("--feedback", choices=FEEDBACKS,
                   help="explicit: ratings, squared loss (the default); implicit: every row is an interaction (a "
                        "rating column, if any, is ignored; a weight column weighs it), trained against sampled "
                        "items with the logistic loss, for ranking (recommend, evaluate --top)")
    g.add_argument("--negatives", type=_positive_int,
                   help=f"--feedback implicit: items drawn per interaction, uniformly from the data's items "
                        f"(default {DEFAULT_NEGATIVES})")
    g.add_argument("--n-users", type=_positive_int, help="user factor rows (default: the data's largest id + 1; "
                                                        "sparse on disk, unused rows cost nothing)")
    g.add_argument("--n-items", type=_positive_int, help="item factor rows (default: the data's largest id + 1)")


#: Options of the linear models a factorization has no use for: (attribute, flag, unset value).
_LINEAR_ONLY = (("lr_schedule", "--lr-schedule", None), ("power_t", "--power-t", None), ("l1", "--l1", None),
                ("ftrl_beta", "--ftrl-beta", None), ("hash_bits", "--hash-bits", None),
                ("n_features", "--n-features", None), ("hot_features", "--hot-features", None),
                ("sync", "--sync", None), ("warm_start", "--warm-start", None), ("cluster", "--cluster", None),
                ("keep_snapshots", "--keep-snapshots", 0), ("cache", "--no-cache", None),
                ("keep_cache", "--keep-cache", False), ("refit", "--refit/--no-refit", None))
_MF_ONLY = ("rank", "l2_bias", "init_scale", "schedule", "n_users", "n_items", "feedback", "negatives")
#: The train options that are MFConfig fields.
_MF_HYPER = ("rank", "epochs", "optimizer", "lr", "lr_decay", "l2", "l2_bias", "initial_accumulator", "init_scale",
             "holdout", "early_stopping", "seed", "threads", "readers", "schedule", "feedback", "negatives")


def wants_mf(args) -> bool:
    """Whether a ``train`` command is a factorization: ``--loss mf``, or ``--resume`` of a
    factorization model without ``--loss``. MF-only options, or interaction data, on a linear
    run are an error."""
    from ..factorization import is_interaction_file, is_mf_model

    mf = args.loss == "mf" or (args.loss is None and args.resume and is_mf_model(args.model))
    if not mf and (given := [f"--{k.replace('_', '-')}" for k in _MF_ONLY if getattr(args, k, None) is not None]):
        raise ConfigError(f"{', '.join(given)} apply to --loss mf only")
    if not mf and is_interaction_file(args.data):
        raise ConfigError(f"{args.data}: interaction data (user, item, rating): train a factorization with --loss mf"
                          + (f", not --loss {args.loss}" if args.loss else ""))
    return mf


def run_train_mf(args) -> int:
    from ..factorization.train import train_mf

    given = [flag for attr, flag, unset in _LINEAR_ONLY if getattr(args, attr, unset) != unset]
    if given:
        raise ConfigError(f"{', '.join(given)}: linear-model options; they do not apply to --loss mf")
    hyper = {k: getattr(args, k) for k in _MF_HYPER if getattr(args, k, None) is not None}
    say = None if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    model = train_mf(args.data, args.model, valid=args.valid, resume=args.resume, overwrite=args.overwrite,
                     n_users=args.n_users, n_items=args.n_items, checkpoint_every=args.checkpoint_every,
                     quiet=args.quiet, log=say, **hyper)
    if not args.quiet:
        info = model.meta
        best = info.get("training", {}).get("best_epoch")
        kept = model.history[best - 1] if best and best <= len(model.history) else (
            model.history[-1] if model.history else {})
        metric = "logloss" if model.implicit else "rmse"
        figures = [f"train {metric} {kept['train_' + metric]:.4f}"] if kept.get("train_" + metric) is not None else []
        figures += [f"{key} {metric} {kept[key][metric]:.4f}" for key in ("holdout", "valid") if key in kept]
        print(f"saved {model.path}: mf model{' (implicit feedback)' * model.implicit}, rank {model.rank}, "
              f"{info['n_users']:,} users x {info['n_items']:,} "
              f"items, {len(model.history)} epoch(s)" + (f"; kept epoch {kept['epoch']}: " + ", ".join(figures)
                                                       if figures else ""))
    return 0


# -- evaluate, predict, info -----------------------------------------------------------------

def scores_mf(args) -> bool:
    """Whether ``evaluate`` / ``predict`` score a factorization model; interaction data given
    to a linear model is refused by name (its columns are not features)."""
    from ..factorization import is_interaction_file, is_mf_model

    if is_mf_model(args.model):
        return True
    if is_interaction_file(args.data):
        raise ConfigError(f"{args.data}: interaction data (user, item, rating), and {args.model} is not a "
                          "factorization model (train one with --loss mf)")
    return False


def _open_model(args):
    from ..factorization.model import MFModel

    model = MFModel.open(args.model)
    status = model.meta.get("training", {}).get("status")
    if status not in (None, "complete"):
        print(f"streamhog {args.command}: warning: {args.model}: training is {status} (not finished); scoring the "
              "factors as they are", file=sys.stderr)
    return model


def add_ranking_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Ranking (factorization models: how many of each user's test items its top "
                             "recommendations hold)")
    g.add_argument("--top", type=_positive_int, metavar="K",
                   help="add precision@K, recall@K, hit_rate@K, ndcg@K, map@K over the users with a relevant test "
                        "pair, and n_users (data without ratings: these alone)")
    g.add_argument("--exclude", metavar="DATA", nargs="+", default=[],
                   help="with --top: interaction files whose pairs are never recommended (typically the training "
                        "data)")
    g.add_argument("--relevant", type=float, metavar="RATING",
                   help="with --top: a test pair is relevant when rated at least this (default: every pair)")


def ranking_options_given(args) -> list[str]:
    """The ranking options on the command line (``evaluate`` of a linear model refuses them)."""
    return [flag for flag, on in (("--top", args.top is not None), ("--exclude", bool(args.exclude)),
                                  ("--relevant", args.relevant is not None)) if on]


def run_evaluate_mf(args) -> int:
    from ..factorization import is_interaction_file
    from ..factorization.format import InteractionDataset
    from ..factorization.score import evaluate

    if args.top is None and (given := ranking_options_given(args)):
        raise ConfigError(f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --top K (the ranking metrics)")
    for path in args.exclude:
        if not is_interaction_file(path):
            raise ConfigError(f"{path}: not interaction data (--exclude takes the pairs to leave out)")
    model = _open_model(args)
    data = InteractionDataset(args.data)
    metrics = {}
    if args.top is None or data.has_ratings or model.implicit:  # ratings' metrics need ratings
        metrics = evaluate(model, data, threads=args.threads)
    if args.top is not None:
        from ..factorization.ranking import ranking_metrics

        metrics.update(ranking_metrics(model, data, top=args.top, exclude=args.exclude, relevant=args.relevant,
                                       threads=args.threads))
    if args.json:
        print(json.dumps(metrics))
    else:
        print(", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v:,}" for k, v in metrics.items()))
    return 0


def run_predict_mf(args) -> int:
    from ..factorization.score import predict_to_parquet

    n = predict_to_parquet(_open_model(args), args.data, args.out, threads=args.threads, overwrite=args.overwrite)
    print(f"wrote {args.out}: {n:,} predictions")
    return 0


# -- recommend -------------------------------------------------------------------------------

def add_recommend_arguments(p: argparse.ArgumentParser) -> None:
    from ..factorization import DEFAULT_TOP

    p.add_argument("model", help="a factorization model directory (train --loss mf)")
    p.add_argument("--out", required=True, help="output .parquet file: columns user, rank (1 = best), item, score "
                                                "(the predicted rating, unclipped; under implicit feedback the "
                                                "preference in (0, 1))")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--users", metavar="DATA", help="recommend for the users of this interaction file (default: "
                                                     "every user the model saw in training)")
    who.add_argument("--user", metavar="ID", type=int, nargs="+", help="recommend for these user ids")
    p.add_argument("--top", type=_positive_int, default=DEFAULT_TOP,
                   help=f"items per user (default {DEFAULT_TOP}); a user with fewer candidates left gets fewer")
    p.add_argument("--exclude", metavar="DATA", nargs="+", default=[],
                   help="interaction files whose (user, item) pairs are never recommended: typically the training "
                        "data, what each user already rated")
    p.add_argument("--threads", type=_positive_int, default=None, help="threads (default: one per core)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT if it is a streamhog predictions or recommendations file")


def run_recommend(args) -> int:
    from ..factorization import is_interaction_file, is_mf_model

    if not is_mf_model(args.model):
        raise ConfigError(f"{args.model}: not a factorization model: recommend ranks the items of one "
                          "(train it with --loss mf)")
    for path in ([args.users] if args.users else []) + list(args.exclude):
        if not is_interaction_file(path):
            raise ConfigError(f"{path}: not interaction data (a .parquet file of user, item[, rating] columns, or a "
                              "directory of them: convert --input-format ratings writes one)")
    if args.user is not None and (bad := [u for u in args.user if u < 0]):
        raise ConfigError(f"--user: ids are non-negative integers, got {bad[0]}")
    from ..factorization.recommendations import recommend_to_parquet

    users = args.users if args.users else args.user
    n = recommend_to_parquet(_open_model(args), args.out, users, top=args.top, exclude=args.exclude,
                             threads=args.threads, overwrite=args.overwrite)
    print(f"wrote {args.out}: {n:,} recommendations")
    return 0


def mf_info(path) -> dict | None:
    """``streamhog info`` of a factorization model or an interaction file; None for anything
    else (the linear models' and the sparse formats' info then applies)."""
    from ..factorization import is_interaction_file, is_mf_model

    if is_mf_model(path):
        from ..factorization.model import MFModel

        return MFModel.open(path).info()
    if is_interaction_file(path):
        from ..factorization.format import InteractionDataset

        return InteractionDataset(path).info()
    return None
