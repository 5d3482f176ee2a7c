"""``make demo``: the main job on the embedded dataset (a9a).

Converts a9a's train and test splits (LIBSVM, gzipped inside the package) to Parquet and
Zarr under ``demo-output/``, then reads them back through the streaming readers and
prints what they hold.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .convert import convert
from .datasets import a9a
from .formats import open_dataset
from .inspect import label_counts
from .stream import iter_epoch


def main(out_dir: str = "demo-output") -> int:
    out = Path(out_dir)
    out.mkdir(exist_ok=True)
    for split in ("train", "test"):
        for fmt in ("parquet", "zarr"):
            dst = out / f"a9a-{split}.{fmt}"
            report = convert(a9a(split), dst, overwrite=True)
            print(report.summary())
    ds = open_dataset(out / "a9a-train.parquet")
    with iter_epoch(ds, epoch=0, seed=0, readers=2) as stream:
        rows = sum(b.n_rows for b in stream)
    counts = label_counts(ds)
    print(f"streamed {rows:,} training rows back in {ds.n_blocks} shuffled blocks; labels: "
          + ", ".join(f"{k:+g}: {v:,}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
