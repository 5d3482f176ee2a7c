"""How fast the data of the rest of the stack reaches the kernels, beside streamhog's own Parquet.

Reads every block of one synthetic dataset (RCV1-like, as decode_formats.py) with one reader, as
one reader thread does, interleaved and repeated: streamhog's packed and list Parquet (the fast
path), Parquet as other tools write it (list<int32> and 1-based list<int64> ids with float64
values: formats/columns.py, written with pq.write_table's defaults, snappy and dictionary pages,
as such tools do), and data in memory (a CSR matrix, float32 and float64; an Arrow table; a
dense array when rows x features fit in 2 GiB). Prints M nnz/s (median, min-max) per source.
Other tools' files are bound by pyarrow decoding their pages (columns.py's decode and the
validation take about 5% of it); `streamhog convert` turns them into the packed layout.

    python benchmarks/decode_foreign.py [--rows 200000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from streamhog.io.batch import concat_batches
from streamhog.datasets.synthetic import SyntheticSpec, synthetic_batches
from streamhog.io.formats import create_writer, open_dataset

ROWS_PER_GROUP = 16_384


def sources(root: Path, rows: int) -> dict:
    spec = SyntheticSpec(n_rows=rows, seed=0)
    batches = list(synthetic_batches(spec, rows_per_block=ROWS_PER_GROUP))
    whole = concat_batches(batches)
    out = {}
    for layout in ("packed", "list"):
        path = root / f"own-{layout}.parquet"
        w = create_writer("parquet", path, rows_per_group=ROWS_PER_GROUP, layout=layout, values="keep")
        for b in batches:
            w.write(b)
        w.close(spec.n_features)
        out[f"streamhog Parquet, {layout}"] = open_dataset(path)
    offsets = pa.array(whole.indptr.astype(np.int32))
    label = pa.array(whole.labels.astype(np.float64))
    values = pa.ListArray.from_arrays(offsets, pa.array(whole.values.astype(np.float64)))
    for kind, ids, base in (("list<int32>", whole.indices.astype(np.int32), 0),
                            ("list<int64>, 1-based", whole.indices.astype(np.int64) + 1, 1)):
        path = root / f"foreign-{base}.parquet"
        table = pa.table({"y": label, "ids": pa.ListArray.from_arrays(offsets, pa.array(ids)), "vals": values})
        pq.write_table(table, path, row_group_size=ROWS_PER_GROUP)
        out[f"other tools' Parquet, {kind}, float64 values"] = open_dataset(
            path, label_column="y", indices_column="ids", values_column="vals", index_base=base,
            n_features=spec.n_features)
    X = whole.to_scipy(spec.n_features)
    y = whole.labels
    out["in memory: CSR float32 (views)"] = open_dataset(sp.csr_matrix(X, dtype=np.float32), labels=y)
    out["in memory: CSR float64 (per-block cast)"] = open_dataset(sp.csr_matrix(X, dtype=np.float64), labels=y)
    out["in memory: Arrow table, list<int32>"] = open_dataset(
        pa.table({"label": label, "indices": pa.ListArray.from_arrays(offsets, pa.array(whole.indices.astype(np.int32))),
                  "values": values}), n_features=spec.n_features)
    dense_rows = min(rows, 20_000)  # rows x n_features float32 must fit in memory
    if spec.n_features * dense_rows * 4 < 2**31:
        out[f"in memory: dense float32 ({dense_rows:,} rows)"] = open_dataset(
            X[:dense_rows].toarray().astype(np.float32), labels=y[:dense_rows])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="streamhog-foreign-") as tmp:
        datasets = sources(Path(tmp), args.rows)
        times = {k: [] for k in datasets}
        nnz = {}
        for _ in range(args.repeats):  # interleaved: every source once per round
            for name, ds in datasets.items():
                reader = ds.open_reader()
                t0 = time.perf_counter()
                nnz[name] = sum(reader.read(k).nnz for k in range(ds.n_blocks))
                times[name].append(time.perf_counter() - t0)
                reader.close()
        print(f"{'source':58} {'M nnz/s (median, min-max)':>28}")
        for name in datasets:
            rates = sorted(nnz[name] / t / 1e6 for t in times[name])
            print(f"{name:58} {statistics.median(rates):>12.1f} ({rates[0]:6.1f}-{rates[-1]:6.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
