"""Data-parallel training on a Dask cluster (issue 17).

``streamhog train DATA --model M --cluster local:N`` (a LocalCluster of N worker
processes), ``--cluster tcp://HOST:PORT`` (a running scheduler), or from Python
``train_on_cluster(DATA, M, cluster=client)``. Each worker streams its share of DATA's
blocks (a shared path or a URL) through the one-machine reader threads and Hogwild!
consumer threads; the workers synchronise in one of three modes (``--sync-mode``):

* ``average`` (run.py): rounds of ``--sync-every`` rows or seconds; each worker's sparse
  change (touched coordinates, optimizer state, intercept) is combined up a tree of
  workers (``--sync-combine average|sum``) and the result sent back down (changes.py,
  session.py); the bytes and seconds of every round are in the epoch's history.
* ``async`` (downpour.py): Downpour SGD with parameter-server shards on the workers;
  pushes every ``--push-every`` blocks, fetches every ``--fetch-every``; every push is
  scaled by 1/(1 + staleness) (shards.py), and one staler than ``--max-staleness`` is
  scaled so too or dropped (``--stale-policy``).
* ``lbfgs`` (lbfgs.py): full-batch L-BFGS with the loss and gradient summed over the
  workers' partitions; ``--polish lbfgs`` runs it after ``average`` epochs.

The client's model directory is the crash-safe copy (checkpoints between rounds,
``--resume``); a worker lost mid-round makes the run restart the round on the workers
present (session.py). Dask is optional: ``pip install 'streamhog[dask]'``.
"""
from __future__ import annotations


def __getattr__(name):
    if name == "train_on_cluster":
        from .job import train_on_cluster
        return train_on_cluster
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["train_on_cluster"]
