"""``train_on_cluster``: a training job (training/job.py) whose epochs run on a Dask cluster.

Everything a one-machine job does — a new, resumed or warm-started run, model-directory
protection, label checks, holdout and early stopping, checkpoints and ``--resume`` — is
training.job.train's, with :class:`~streamhog.cluster.run.ClusterRun` as its run. The data
must be a path or URL every worker can open (a shared file system, s3://, ...): workers
read their own blocks; nothing is shipped from the client but the model.
"""
from __future__ import annotations

import functools
import os

from ..errors import ConfigError
from ..io.formats import is_dataset, open_dataset
from ..io.formats.storage import is_remote, location
from ..io.threads import cpu_count
from ..model.directory import Model
from ..training.job import train
from .connect import connect, parse_cluster
from .options import ClusterOptions
from .run import ClusterRun

_DATA_OPTIONS = ("label_column", "indices_column", "values_column", "weight_column", "index_base", "fix_rows",
                 "n_features", "storage_options")


def _data_ref(data, data_options: dict) -> dict:
    if is_dataset(data) or not isinstance(data, (str, os.PathLike)):
        raise ConfigError("a cluster run reads DATA on every worker: give a path on a shared file system or a "
                          "URL (s3://, gs://, ...), not data in memory or an open dataset")
    path = os.fspath(data)
    return {"data": path if is_remote(path) else location(path), "options": data_options}


def _default_threads(client, kind: str, value) -> int:
    """Training threads per worker when --threads is not given: the worker's Dask threads, or
    this machine's cores shared among local:N workers."""
    if kind == "local":
        return max(1, cpu_count() // int(value))
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return max(1, min((w.get("nthreads", 1) for w in workers), default=1))


def train_on_cluster(data, model_dir, *, cluster, sync_mode: str = "average", sync_every=None,
                     combine: str = "average", polish: str = "none", data_options: dict | None = None,
                     cluster_options: dict | None = None, **kwargs) -> Model:
    """Train on the workers of ``cluster`` (a ``distributed.Client``, ``"local:N"`` or a
    scheduler address) into the local ``model_dir``.

    ``sync_mode``: ``average`` (rounds of ``sync_every`` rows per worker, or ``"2s"``;
    changes combined by ``combine``: average or sum; cluster/changes.py), ``async`` (Downpour: parameter-server
    shards) or ``lbfgs`` (full-batch L-BFGS; ``epochs`` counts its iterations, 100 at most by
    default, and no rows are held out unless ``holdout`` is given). ``polish="lbfgs"`` runs
    L-BFGS after the SGD epochs. ``data_options``: the column options of open_dataset
    (label_column=, index_base=, ...), applied by every worker. ``cluster_options``: the other
    fields of :class:`~streamhog.cluster.options.ClusterOptions`. Everything else is
    training.job.train's (epochs, lr, threads per worker, holdout, resume, ...).
    """
    opts = ClusterOptions(sync_mode=sync_mode, sync_every=sync_every, combine=combine, polish=polish,
                          **(cluster_options or {})).check()
    data_options = {k: v for k, v in (data_options or {}).items() if v is not None}
    unknown = sorted(set(data_options) - set(_DATA_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown data options: {', '.join(unknown)}")
    ref = _data_ref(data, data_options)
    kind, value = parse_cluster(cluster)
    if opts.sync_mode == "lbfgs" and not kwargs.get("resume"):
        kwargs.setdefault("holdout", 0.0)
        kwargs.setdefault("epochs", 100)
    if kwargs.get("cache"):
        raise ConfigError("--cluster: the workers decode their own blocks; the block cache is one machine's")
    ds = open_dataset(ref["data"], **data_options)
    with connect(cluster) as client:
        if kwargs.get("threads") is None:
            kwargs["threads"] = _default_threads(client, kind, value)
        if kwargs.get("readers") is None:
            kwargs["readers"] = kwargs["threads"]
        factory = functools.partial(ClusterRun, client=client, options=opts, data_ref=ref)
        return train(ds, model_dir, cache=False, run_factory=factory, **kwargs)
