"""Datasets shipped inside the package.

a9a: the UCI Adult census data (income > 50K), binarized by J. Platt and distributed by the
LIBSVM authors (C.-C. Chang and C.-J. Lin, LIBSVM Data: Classification). UCI Machine
Learning Repository, Adult, CC BY 4.0. 32,561 train / 16,281 test rows, 123 binary
features, labels -1/+1. Stored gzipped, byte-identical to the published files once
decompressed (sha256 below, checked by the tests).

>>> from streamhog.datasets import a9a
>>> a9a("train").name
'a9a.gz'
"""
from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"

A9A_SHA256 = {
    "train": "f5d5ffd8d865ff41328e7ee043e4b020816914ff6843ff15b98905ddbedce906",
    "test": "1f448a153f0320399a7e40836eb207655b0bde0f21fc941cc472193daa9f5de9",
}


def a9a(split: str = "train") -> Path:
    """Path of the gzipped LIBSVM file of a9a's ``"train"`` or ``"test"`` split."""
    name = {"train": "a9a.gz", "test": "a9a.t.gz"}.get(split)
    if name is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return DATA_DIR / name
