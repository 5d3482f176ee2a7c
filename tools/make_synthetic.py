#!/usr/bin/env python3
"""Generate a synthetic sparse classification dataset shaped like RCV1/url, with a known true model.

    python tools/make_synthetic.py out/ --rows 1800000 --test-rows 200000 --features 1000000 --nnz 39
    python tools/make_synthetic.py out/ --rows 100000 --format libsvm      # text, for the peers

Writes out/train.<ext> and out/test.<ext> (Parquet, Zarr, or LIBSVM text with 1-based ids)
and out/spec.json with the generating parameters and the Bayes logloss of the test split
(the best any learner can reach). Zipf-distributed feature ids, unit-norm positive values
(or --binary), labels drawn from a logistic model. Memory is bounded by one block.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from streamhog.datasets.synthetic import SyntheticSpec, bayes_logloss, synthetic_batches
from streamhog.io.formats import create_writer
from streamhog.io.formats.spec import DEFAULT_ROWS_PER_GROUP


def write_libsvm(path: Path, batches) -> None:
    with open(path, "w") as f:
        for b in batches:
            vals = b.values_or_ones()
            for r in range(b.n_rows):
                lo, hi = b.indptr[r], b.indptr[r + 1]
                feats = " ".join(f"{i + 1}:{v:.6g}" for i, v in zip(b.indices[lo:hi].tolist(), vals[lo:hi].tolist()))
                f.write(f"{int(b.labels[r]):+d} {feats}\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="output directory")
    ap.add_argument("--rows", type=int, default=100_000, help="training rows")
    ap.add_argument("--test-rows", type=int, default=20_000)
    ap.add_argument("--features", type=int, default=1_000_000)
    ap.add_argument("--nnz", type=int, default=39, help="mean non-zeros per row")
    ap.add_argument("--zipf", type=float, default=1.1, help="exponent of the feature-frequency law")
    ap.add_argument("--binary", action="store_true", help="all values 1.0")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", choices=("parquet", "zarr", "libsvm"), default="parquet")
    ap.add_argument("--rows-per-group", type=int, default=None)
    args = ap.parse_args(argv)
    spec = SyntheticSpec(n_rows=args.rows + args.test_rows, n_features=args.features, nnz_per_row=args.nnz,
                         zipf_exponent=args.zipf, binary=args.binary, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    ext = {"parquet": "parquet", "zarr": "zarr", "libsvm": "svm"}[args.format]
    for split, (a, b) in {"train": (0, args.rows), "test": (args.rows, spec.n_rows)}.items():
        batches = synthetic_batches(spec, rows_per_block=65_536, start_row=a, stop_row=b)
        path = args.out / f"{split}.{ext}"
        if args.format == "libsvm":
            write_libsvm(path, batches)
        else:
            w = create_writer(args.format, path,
                              rows_per_group=args.rows_per_group or DEFAULT_ROWS_PER_GROUP[args.format])
            for batch in batches:
                w.write(batch)
            w.close(spec.n_features)
        print(f"wrote {path}", file=sys.stderr)
    test = synthetic_batches(spec, rows_per_block=65_536, start_row=args.rows, stop_row=spec.n_rows)
    info = {"spec": asdict(spec), "train_rows": args.rows, "test_rows": args.test_rows,
            "bayes_test_logloss": bayes_logloss(spec, test)}
    (args.out / "spec.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
