"""Reaching a Dask cluster: ``--cluster local:N`` or ``tcp://HOST:PORT``, or a Client given.

Dask is optional (``pip install 'streamhog[dask]'``): it is imported here, on first use,
and its absence is a one-line error saying how to install it. ``local:N`` starts a
``LocalCluster`` of N worker processes (each with two Dask threads: the training task and
the small reduction tasks may overlap) and stops it at the end; an address joins an
existing scheduler and leaves it running; a ``distributed.Client`` is used as it is.
"""
from __future__ import annotations

import contextlib
import logging

from ..errors import ClusterError, ConfigError

INSTALL_HINT = "pip install 'streamhog[dask]'"


def import_distributed():
    """The ``distributed`` module, or a ClusterError saying how to get it."""
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"--cluster needs Dask's distributed scheduler, which is not installed: "
                           f"{INSTALL_HINT}") from None
    return distributed


def parse_cluster(spec) -> tuple[str, object]:
    """``("local", N)``, ``("address", "tcp://...")`` or ``("client", client)``."""
    if not isinstance(spec, str):
        if hasattr(spec, "submit") and hasattr(spec, "scheduler_info"):
            return "client", spec
        raise ConfigError(f"--cluster must be local:N, a scheduler address or a distributed.Client, got {spec!r}")
    if spec.startswith("local:"):
        n = spec.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(f"--cluster local:N needs N >= 1 worker processes, got {spec!r}")
        return "local", int(n)
    if "://" in spec:
        return "address", spec
    raise ConfigError(f"--cluster must be local:N (N worker processes on this machine) or a scheduler "
                      f"address such as tcp://HOST:8786, got {spec!r}")


@contextlib.contextmanager
def connect(spec, *, timeout: float = 60.0):
    """A ``distributed.Client`` for ``spec`` (see the module docstring), closed at the end
    unless it was given."""
    kind, value = parse_cluster(spec)
    if kind == "client":
        yield value
        return
    distributed = import_distributed()
    if kind == "local":
        cluster = distributed.LocalCluster(n_workers=value, threads_per_worker=2, processes=True,
                                           dashboard_address=":0", silence_logs=logging.ERROR)
        try:
            with distributed.Client(cluster) as client:
                client.wait_for_workers(value, timeout=timeout)
                yield client
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(value, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"--cluster {value}: cannot reach the scheduler ({exc})") from None
    with client:
        yield client
