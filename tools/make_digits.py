#!/usr/bin/env python3
"""Write scikit-learn's bundled digits as a multiclass LIBSVM train/test split.

    python tools/make_digits.py out/      # out/digits.train (1,400 rows), out/digits.test (397)

The 1,797 8x8 images (sklearn.datasets.load_digits: no download), pixel values / 16 so
every feature is in [0, 1], rows shuffled with numpy.random.default_rng(0).permutation,
written by sklearn.datasets.dump_svmlight_file: labels 0..9, 1-based feature ids 1..64,
zero pixels omitted (the values k/16 print exactly). A small, fixed sanity check for softmax training: an exact (unregularized)
softmax regression reaches about 0.98 test accuracy on this split.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

N_TRAIN = 1400  # of 1,797 rows; the other 397 are the test split


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="output directory")
    args = ap.parse_args(argv)
    from sklearn.datasets import dump_svmlight_file, load_digits  # the test extra; only this tool needs it

    digits = load_digits()
    X = digits.data.astype(np.float64) / 16.0
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))  # 1797
    X, y = X[order], y[order]
    args.out.mkdir(parents=True, exist_ok=True)
    dump_svmlight_file(X[:N_TRAIN], y[:N_TRAIN], str(args.out / "digits.train"), zero_based=False)
    dump_svmlight_file(X[N_TRAIN:], y[N_TRAIN:], str(args.out / "digits.test"), zero_based=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
