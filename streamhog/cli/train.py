"""``streamhog train``: its options (hyper-parameters, run options, the cluster's) and its run."""
from __future__ import annotations

import argparse

from .mf import add_mf_train_arguments, run_train_mf, wants_mf
from .options import _hot_features, _non_negative_int, _open_data, _positive_int, add_data_arguments, data_options


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from ..factorization.model import OPTIMIZERS as MF_OPTIMIZERS
    from ..losses import LOSSES
    from ..model.directory import OPTIMIZERS
    from ..training.config import INITIAL_ACCUMULATOR_DEFAULTS, LR_SCHEDULES, OPTIMIZER_DEFAULTS, TrainConfig

    d = TrainConfig()
    # Hyper-parameters default to None here so that a resumed run knows which ones the user
    # actually gave (the run's own settings apply otherwise); the defaults shown are TrainConfig's.
    p.add_argument("data", help="training data: a .parquet file, a directory of them, or a .zarr store; local or a "
                                "URL (s3://, gs://, http(s)://, file://)")
    p.add_argument("--model", required=True, help="model directory to create (or to continue, with --resume)")
    p.add_argument("--loss", choices=tuple(LOSSES) + ("mf",),
                   help="; ".join(f"{name}: {loss.description}" for name, loss in LOSSES.items())
                        + f"; mf: biased matrix factorization of interaction data, see --rank (default {d.loss})")
    p.add_argument("--epochs", type=_positive_int,
                   help=f"total passes over the data, counting those of a resumed run (default {d.epochs})")
    p.add_argument("--threads", type=_positive_int, help="training threads (default: one per core)")
    p.add_argument("--readers", type=_positive_int,
                   help="reader threads (default: one per core; decoding bounds the throughput)")
    p.add_argument("--optimizer", choices=OPTIMIZERS + tuple(o for o in MF_OPTIMIZERS if o not in OPTIMIZERS),
                   help=f"per-coordinate update rule: normalized (scale-free adaptive, importance-invariant "
                        f"steps, like Vowpal Wabbit's default), adagrad, ftrl (FTRL-Proximal, sparse models with "
                        f"--l1), sgd (plain) (default {d.optimizer}); --loss mf: adagrad, rowwise-adagrad, sgd")
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
                   help="adagrad, normalized: the squared-gradient sum every weight starts from (normalized: "
                        "in normalized units); damps the first steps of rare features (default "
                        + ", ".join(f"{k} {v:g}" for k, v in INITIAL_ACCUMULATOR_DEFAULTS.items())
                        + "; 0: plain AdaGrad)")
    p.add_argument("--holdout", type=float, metavar="FRACTION",
                   help="fraction of the rows held out from training and scored after each epoch, for early "
                        "stopping (default 0.1 with more than one epoch and no --valid, else 0)")
    p.add_argument("--early-stopping", type=int, metavar="EPOCHS",
                   help=f"stop when the holdout (else --valid) loss has not improved for EPOCHS epochs, and keep "
                        f"the best epoch's model (default {d.early_stopping}; 0: run every epoch, keep the last)")
    p.add_argument("--refit", action=argparse.BooleanOptionalAction, default=None,
                   help="after early stopping on the holdout, retrain on every row for the epochs it chose "
                        "(default: when the data has at most 100,000 rows)")
    p.add_argument("--hash-bits", type=int, metavar="B",
                   help="hash feature ids into 2^B weights (MurmurHash3, docs/formats.md): a fixed model size "
                        "whatever the data's ids; scoring hashes the same way")
    p.add_argument("--seed", type=int, help="seed of the block and row shuffling (default 0)")
    p.add_argument("--n-features", type=_positive_int,
                   help="model dimension (default: the data's; for data whose metadata does not say, the largest "
                        "id + 1, found by a pass over the ids); up to 2^34, sparse on disk")
    p.add_argument("--valid", help="a dataset to evaluate after each epoch")
    p.add_argument("--hot-features", type=_hot_features, metavar="N|auto",
                   help="keep the N features most rows hold per thread, published like the intercept: on skewed "
                        "data their cache lines otherwise bounce between the cores (default auto: with 4 or more "
                        "threads running at once, at most one per core, and sgd, adagrad or normalized; 0: none)")
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
    add_mf_train_arguments(p)
    add_cluster_arguments(p)


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    """Training on a Dask cluster (streamhog/cluster; names only: nothing of Dask is imported here)."""
    from ..cluster.options import COMBINES, POLISHES, STALE_POLICIES, SYNC_MODES

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
                   help="async: beyond --max-staleness, scale the update by 1/(1 + staleness) as every push "
                        "is (default), or drop it")


_CLUSTER = ("workers", "push_every", "fetch_every", "max_staleness", "stale_policy", "polish_iterations")


_HYPER = ("loss", "epochs", "optimizer", "threads", "readers", "lr", "lr_schedule", "lr_decay", "power_t", "l2", "l1",
          "ftrl_beta", "initial_accumulator", "holdout", "early_stopping", "refit", "hash_bits", "seed", "sync",
          "hot_features")


def run_train(args) -> int:
    from ..training.job import train

    if wants_mf(args):  # --loss mf, or resuming a factorization model: cli/mf.py
        return run_train_mf(args)
    given = {k: getattr(args, k) for k in _HYPER if getattr(args, k) is not None}
    valid = _open_data(args.valid, args) if args.valid is not None else None
    common = dict(n_features=args.n_features, valid=valid, overwrite=args.overwrite, resume=args.resume,
                  warm_start=args.warm_start, checkpoint_every=args.checkpoint_every,
                  keep_snapshots=args.keep_snapshots, quiet=args.quiet, **given)
    if args.cluster is not None:
        from ..cluster.job import train_on_cluster  # Dask is imported only here

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
