"""Worker processes of benchmarks/run.py: the in-memory kernel ceiling and scikit-learn.

Each runs in its own process (run.py measures its wall time and memory from outside) and
prints one JSON object on its last stdout line: the seconds of its timed section, what it
processed, and test metrics where it has a model.

    python benchmarks/workers.py kernel DATA.parquet --threads 2
    python benchmarks/workers.py sklearn-fit DATA_DIR --epochs 5
    python benchmarks/workers.py sklearn-partial DATA_DIR
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common



def run_kernel(args) -> dict:
    """The ceiling: ``train_block`` over in-memory blocks for one epoch, as the trainer
    calls it (common/kernel.py), without I/O."""
    from common.kernel import kernel_epoch, load_blocks

    ds, blocks = load_blocks(args.data)
    out = kernel_epoch(blocks, ds.n_features, args.threads, args.optimizer)
    out.pop("arrays")
    return out


def _csr(batch, n_features):
    m = batch.to_scipy(n_features)
    return m.astype(np.float64)  # SGDClassifier works in float64: convert before the clock starts


def _metrics(clf, X, y) -> dict:
    """scikit-learn's margins scored as `streamhog evaluate` scores streamhog's."""
    from streamhog.model.metrics import MetricAccumulator

    acc = MetricAccumulator("logistic")
    acc.update(clf.decision_function(X), np.asarray(y, np.float32))
    return acc.result()


def _load_split(path):
    import scipy.sparse as sp

    from common.kernel import load_blocks

    ds, blocks = load_blocks(path)
    X = sp.vstack([_csr(b, ds.n_features) for b in blocks], format="csr")
    y = np.concatenate([b.labels for b in blocks]).astype(np.float64)
    return ds, X, y


def _sgd(epochs: int):
    from sklearn.linear_model import SGDClassifier

    # tol=None: exactly `epochs` passes, no early stop.
    return SGDClassifier(loss="log_loss", max_iter=epochs, tol=None, random_state=0)


def run_sklearn_fit(args) -> dict:
    import warnings

    data = Path(args.data)
    ds, X, y = _load_split(data / "train.parquet")
    clf = _sgd(args.epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: expected with tol=None
        start = time.perf_counter()
        clf.fit(X, y)
        seconds = time.perf_counter() - start
    rows, nnz = X.shape[0], X.nnz
    del X
    _, Xt, yt = _load_split(data / "test.parquet")
    return {"seconds": seconds, "rows": rows * args.epochs, "nnz": nnz * args.epochs, **_metrics(clf, Xt, yt)}


def table_csr(t):
    """(indptr int64 from 0, indices, values float32 or None, labels) of a streamhog Parquet
    table, with pyarrow and NumPy only, as a user of another library would read it: the
    packed layout's binary cells by their byte offsets (docs/formats.md), or list columns."""
    def parts(name, dtype):
        col = t.column(name).combine_chunks()
        if col.type == pa.binary():
            _, off, data = col.buffers()
            offsets = np.frombuffer(off, np.int32, count=len(col) + 1, offset=4 * col.offset).astype(np.int64)
            flat = np.frombuffer(data, dtype, count=(offsets[-1] - offsets[0]) // 4, offset=int(offsets[0])) \
                if offsets[-1] > offsets[0] else np.zeros(0, dtype)
            return (offsets - offsets[0]) // 4, flat
        offsets = col.offsets.to_numpy().astype(np.int64)
        return offsets - offsets[0], col.values.to_numpy()[offsets[0]:offsets[-1]]

    import pyarrow as pa

    indptr, indices = parts("indices", "<u4")
    values = parts("values", "<f4")[1] if "values" in t.column_names else None
    return indptr, indices, values, t.column("label").to_numpy()


def run_sklearn_partial(args) -> dict:
    """One epoch of partial_fit, streamed: pyarrow read_row_group → scipy CSR → partial_fit,
    row groups in a seeded random order (as streamhog reads blocks)."""
    import pyarrow.parquet as pq
    import scipy.sparse as sp

    data = Path(args.data)
    pf = pq.ParquetFile(data / "train.parquet")
    n_features = int(pf.metadata.metadata[b"n_features"])
    clf = _sgd(1)
    classes = np.array([-1.0, 1.0])
    rows = nnz = 0
    start = time.perf_counter()
    for g in np.random.default_rng(0).permutation(pf.num_row_groups).tolist():
        t = pf.read_row_group(g)
        indptr, indices, values, labels = table_csr(t)
        values = values.astype(np.float64) if values is not None else np.ones(len(indices))
        X = sp.csr_matrix((values, indices, indptr), shape=(t.num_rows, n_features))
        y = labels.astype(np.float64)
        clf.partial_fit(X, y, classes=classes)
        rows += t.num_rows
        nnz += len(indices)
    seconds = time.perf_counter() - start
    _, Xt, yt = _load_split(data / "test.parquet")
    return {"seconds": seconds, "rows": rows, "nnz": nnz, **_metrics(clf, Xt, yt)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("kernel")
    p.add_argument("data", help="train split (.parquet or .zarr)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--optimizer", default=None, help="default: streamhog's")
    p.set_defaults(run=run_kernel)
    p = sub.add_parser("sklearn-fit")
    p.add_argument("data", help="directory with train.parquet and test.parquet")
    p.add_argument("--epochs", type=int, default=1)
    p.set_defaults(run=run_sklearn_fit)
    p = sub.add_parser("sklearn-partial")
    p.add_argument("data", help="directory with train.parquet and test.parquet")
    p.set_defaults(run=run_sklearn_partial)
    args = ap.parse_args(argv)
    print(json.dumps(args.run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
