"""Start-up cost (issue 5): commands import only what they use.

numba and its kernels cost about a second to load, zarr about 0.3 s; the timings live in
benchmarks/ (run.py's start-up column), these tests guard what is imported, in a fresh
interpreter each.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from streamhog.io.batch import SparseBatch
from streamhog.io.formats import create_writer

HEAVY = ("numba", "zarr", "pyarrow")

_PROBE = """
import json, runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_module("streamhog", run_name="__main__")
except SystemExit as e:
    code = e.code
else:
    code = 0
print(json.dumps({{"code": code, "loaded": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


def _run_cli(*args):
    """Run the CLI in a fresh interpreter; returns (exit code, heavy modules it imported)."""
    probe = _PROBE.format(argv=["streamhog", *map(str, args)], heavy=HEAVY)
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return out["code"], out["loaded"]


def test_help_loads_no_heavy_module():
    for args in (["--help"], ["train", "--help"], ["convert", "--help"], ["plot", "--help"],
                 ["recommend", "--help"]):
        code, loaded = _run_cli(*args)
        assert code == 0
        assert loaded == [], f"streamhog {' '.join(args)} imported {loaded}"


def test_parquet_commands_do_not_import_zarr(tmp_path):
    rng = np.random.default_rng(0)
    n, k, n_features = 200, 5, 50
    # Strictly ascending, distinct ids within each row (the format's rule).
    indices = np.concatenate([np.sort(rng.choice(n_features, k, replace=False)) for _ in range(n)])
    batch = SparseBatch(indptr=np.arange(n + 1, dtype=np.int64) * k, indices=indices.astype(np.uint32),
                        values=rng.normal(size=n * k).astype(np.float32),
                        labels=rng.integers(0, 2, n).astype(np.float32))
    data = tmp_path / "train.parquet"
    writer = create_writer("parquet", data)
    writer.write(batch)
    writer.close(n_features)
    code, loaded = _run_cli("train", data, "--model", tmp_path / "model", "--epochs", "1", "--quiet")
    assert code == 0
    assert "numba" in loaded and "pyarrow" in loaded  # it did train
    assert "zarr" not in loaded
