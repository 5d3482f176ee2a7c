"""How fast each on-disk layout decodes into CSR blocks: the rate that bounds streaming training.

Writes one synthetic dataset (RCV1-like: Zipf ids, ~39 nnz/row) in each layout — Parquet
(packed and list columns) and Zarr, codec none/snappy/zstd/lz4, with and without the values
column, two row-group sizes — then reads every block with one reader (as one reader thread does), from the page
cache, interleaved and repeated. Prints nnz/s (median, min-max), the share of the time
spent in read-time validation, and the size on disk. The fastest layout is the default
of ``streamhog convert``.

    python benchmarks/decode_formats.py [--rows 400000] [--repeats 5] [--only zarr]

Zarr rows are timed twice, with the chunk-file check of every block read (issue 16: a
missing file must not read as zeros) and without it ("no check"), interleaved, to measure
what the check costs.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from streamhog._fs.sparse_files import apparent_size
from streamhog.datasets.synthetic import SyntheticSpec, synthetic_batches
from streamhog.io.formats import create_writer, open_dataset
from streamhog.kernels.validate import describe_csr_problem


def write(fmt, layout, path, batches, n_features, rows_per_group, compression, values):
    extra = {"layout": layout} if fmt == "parquet" else {}
    w = create_writer(fmt, path, rows_per_group=rows_per_group, compression=compression, values=values, **extra)
    for b in batches:
        w.write(b)
    w.close(n_features)


def _validation_seconds(ds) -> float:
    reader = ds.open_reader()
    spent = 0.0
    for k in range(ds.n_blocks):
        b = reader.read(k)
        v0 = time.perf_counter()
        describe_csr_problem(b.indptr, b.indices, b.values, b.labels, b.weights, ds.n_features)
        spent += time.perf_counter() - v0
    reader.close()
    return spent


def _chunk_check_seconds(ds, repeats: int) -> float:
    """The per-block chunk-file checks of a Zarr store alone, as ZarrBlockReader.read makes
    them before reading, over every block (a block's entries taken as its share of nnz);
    the fastest of ``repeats`` passes."""
    from streamhog.formats import spec

    files = ds.chunk_files
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for k in range(ds.n_blocks):
            r0 = int(ds.block_row_start[k])
            r1 = r0 + int(ds.block_rows[k])
            lo, hi = k * ds.nnz // ds.n_blocks, (k + 1) * ds.nnz // ds.n_blocks
            files[spec.INDPTR].first_missing(r0, r1 + 1)
            files[spec.LABELS].first_missing(r0, r1)
            for name in (spec.INDICES, spec.VALUES):
                if name in files:
                    files[name].first_missing(lo, hi)
        best = min(best, time.perf_counter() - t0)
    return best


@contextmanager
def _chunk_check(enabled: bool):
    """Zarr's per-block chunk-file check on (the default) or off, to measure its cost."""
    from streamhog.formats import zarr as zarr_format

    saved = zarr_format._ChunkFiles.first_missing
    if not enabled:
        zarr_format._ChunkFiles.first_missing = lambda self, *a, **k: None
    try:
        yield
    finally:
        zarr_format._ChunkFiles.first_missing = saved


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    ap.add_argument("--only", choices=("parquet", "zarr"), help="time one format only")
    args = ap.parse_args(argv)
    root = Path(args.dir or tempfile.mkdtemp(prefix="streamhog-decode-"))
    root.mkdir(parents=True, exist_ok=True)
    layouts = []
    for rpg in (16_384, 65_536):
        for layout in ("packed", "list"):
            for comp in ("none", "snappy", "zstd", "lz4"):
                layouts.append(("parquet", layout, rpg, comp, "keep"))
            layouts.append(("parquet", layout, rpg, "none", "binary"))
        for comp in ("none", "zstd"):
            layouts.append(("zarr", "-", rpg, comp, "keep"))
    layouts = [x for x in layouts if args.only in (None, x[0])]
    print(f"writing {len(layouts)} layouts of {args.rows:,} synthetic rows to {root} ...", file=sys.stderr)
    datasets = {}
    generated = {}
    for fmt, layout, rpg, comp, vals in layouts:
        spec = SyntheticSpec(n_rows=args.rows, binary=(vals == "binary"), seed=0)
        if spec not in generated:
            generated[spec] = list(synthetic_batches(spec, rows_per_block=16_384))
        path = root / f"{fmt}-{layout}-{rpg}-{comp}-{vals}.{fmt}"
        if not path.exists():
            write(fmt, layout, path, generated[spec], spec.n_features, rpg, comp,
                  "drop" if vals == "binary" else "keep")
        datasets[(fmt, layout, rpg, comp, vals)] = open_dataset(path)
    for key in [k for k in datasets if k[0] == "zarr"]:
        datasets[key + ("no check",)] = datasets[key]
    times = {k: [] for k in datasets}
    nnz = {}
    for _ in range(args.repeats):  # interleaved: every layout once per round
        for key, ds in datasets.items():
            with _chunk_check(enabled=len(key) == 5):
                reader = ds.open_reader()
                t0 = time.perf_counter()
                nnz[key] = sum(reader.read(k).nnz for k in range(ds.n_blocks))
                times[key].append(time.perf_counter() - t0)
                reader.close()
    print(f"\n{'format':8} {'layout':7} {'rows/group':>10} {'codec':7} {'values':7} {'M nnz/s (median, min-max)':>28} "
          f"{'validate':>9} {'MB on disk':>10}")
    for key, ds in datasets.items():
        rates = sorted(nnz[key] / t / 1e6 for t in times[key])
        share = _validation_seconds(ds) / statistics.median(times[key])
        fmt, layout, rpg, comp, vals = key[:5]
        layout = "no check" if len(key) > 5 else layout
        print(f"{fmt:8} {layout:7} {rpg:>10,} {comp:7} {vals:7} {statistics.median(rates):>12.1f} "
              f"({rates[0]:6.1f}-{rates[-1]:6.1f}) {share:>8.0%} {apparent_size(ds.path) / 1e6:>10.1f}")
    for key, ds in datasets.items():
        if key[0] == "zarr" and len(key) == 5:
            per_block = _chunk_check_seconds(ds, args.repeats) / ds.n_blocks
            read = statistics.median(times[key]) / ds.n_blocks
            print(f"zarr {key[2]:,} rows/block, {key[3]}: the chunk-file check alone takes {per_block * 1e6:.0f} us "
                  f"a block, {per_block / read:.2%} of the median block read ({read * 1e3:.1f} ms)")
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
