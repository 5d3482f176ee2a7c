"""Datasets shipped inside the package.

a9a: the UCI Adult census data (income > 50K), binarized by J. Platt and distributed by the
LIBSVM authors (C.-C. Chang and C.-J. Lin, LIBSVM Data: Classification). UCI Machine
Learning Repository, Adult, CC BY 4.0. 32,561 train / 16,281 test rows, 123 binary
features, labels -1/+1. Stored gzipped, byte-identical to the published files once
decompressed (sha256 below, checked by the tests).

criteo_sample: the first 10,000 rows of the Criteo Display Advertising Challenge
``train.txt`` (Kaggle, 2014), Criteo AI Lab, research use under Criteo's terms: 8,000 train /
2,000 test rows of raw click logs (tab-separated label 0/1, 13 integer and 26 categorical
fields, any of them may be empty). Convert with ``streamhog convert SRC DST --input-format
criteo``. Gzipped (``gzip -9 -n``), byte-identical to the published rows once decompressed.

movielens_small: the ratings of MovieLens "latest-small" (ml-latest-small, generated
2018-09-26), GroupLens Research, University of Minnesota: F. M. Harper and J. A. Konstan,
"The MovieLens Datasets: History and Context", ACM TiiS 5(4): 19:1-19:19, 2015,
https://doi.org/10.1145/2827872. 100,836 ratings (0.5-5 stars) by 610 users of 9,724 movies,
``userId,movieId,rating,timestamp`` with CRLF line ends. Used for research under the
GroupLens terms, redistributed under the same terms, which ship beside it
(``movielens_small_README.txt.gz``, the dataset's own README: no endorsement implied,
acknowledge its use, no commercial use without permission). Gzipped (``gzip -9 -n``),
byte-identical to the published ``ratings.csv`` once decompressed. Convert with
``streamhog convert SRC DST --input-format ratings``.

>>> from streamhog.datasets import a9a, criteo_sample, movielens_small
>>> a9a("train").name
'a9a.gz'
>>> criteo_sample("test").name
'criteo_sample_test.txt.gz'
>>> movielens_small().name
'movielens_small_ratings.csv.gz'
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


#: sha256 of the decompressed files (the rows as published).
CRITEO_SAMPLE_SHA256 = {
    "train": "26d49047cbe0ad6ce54197918d71a2dc6688b72b29de7235c9321301116fff6c",
    "test": "75d8552c435e3225f659d4b726ac084539bfd2a44842d0c251913e496cbedbdd",
}


def criteo_sample(split: str = "train") -> Path:
    """Path of the gzipped Criteo TSV of the sample's ``"train"`` (8,000 rows) or ``"test"``
    (2,000 rows) split."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return DATA_DIR / f"criteo_sample_{split}.txt.gz"


#: sha256 of the decompressed ratings.csv and README.txt (as published).
MOVIELENS_SMALL_SHA256 = {
    "ratings": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    "readme": "63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404",
}


def movielens_small(what: str = "ratings") -> Path:
    """Path of MovieLens latest-small's gzipped ``"ratings"`` (ratings.csv) or ``"readme"``
    (its README.txt, which holds the terms of use)."""
    if what not in MOVIELENS_SMALL_SHA256:
        raise ValueError(f"what must be 'ratings' or 'readme', got {what!r}")
    return DATA_DIR / ("movielens_small_ratings.csv.gz" if what == "ratings" else "movielens_small_README.txt.gz")
