#!/usr/bin/env python3
"""Convert sparse data: LIBSVM/svmlight text or raw click logs (Criteo, CSV) → Parquet or Zarr,
and Parquet ↔ Zarr, optionally hashing the feature ids (--hash-bits).

    python tools/convert.py train.svm train.parquet
    python tools/convert.py train.svm.gz train.zarr --n-features 1048576
    python tools/convert.py train.parquet train.zarr

The same implementation as ``streamhog convert`` (see ``--help`` for every option).
"""
import sys

from streamhog.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
