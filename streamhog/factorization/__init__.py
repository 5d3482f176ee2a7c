"""Matrix factorization with Hogwild!: biased MF on interaction data streamed from Parquet.

Each observation (user u, item i, rating r) touches one row of the user factors and one of
the item factors, so lock-free SGD applies directly (the Hogwild! paper's matrix
completion experiments). The pieces, bottom up:

- ``format``: the Parquet interaction layout (user, item, rating[, weight]) — writer,
  dataset of row-group blocks, read-time validation (docs/formats.md, "Interactions").
- ``parse``, ``parse_kernel``: streaming readers of rating text (MovieLens CSV, .data,
  ratings.dat), nogil numba parsing, errors with the file, line and problem.
- ``kernels``: nogil numba kernels — train a block (sgd, AdaGrad per row or per
  coordinate, lazy seeded row starts), predict, error sums, the seeded row order of a block.
- ``model``: the model directory of sparse memory-mapped ``.npy`` factor and bias files.
- ``config``, ``trainer``, ``copies``, ``train``: hyper-parameters and progress
  (dataclasses), the epochs (stream → consumer threads → kernel), the best epoch's copies,
  the job (new run or resume).
- ``score``: evaluate (rmse, mae) and predict, streamed and threaded.
- ``topk``, ``recommendations``: each user's best-scored items (a nogil heap kernel over the
  items training saw), without the pairs of given interaction files.

The submodules load on first use (as streamhog.io.formats'), so that telling whether a path is
a factorization model or interaction data (``is_mf_model``, ``is_interaction_file``) costs
no numba or pyarrow import.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

from ..kernels import purge_stale_numba_cache

# The kernels here compile in streamhog/kernels' number scanner and prefetch: their sources
# are part of this directory's numba cache key too.
_HERE = Path(__file__).resolve().parent
purge_stale_numba_cache(_HERE, _HERE / "__pycache__", extra_sources=(_HERE.parent / "kernels",))

_LAZY = {"MFConfig": "config", "MFState": "config", "InteractionBatch": "format", "InteractionDataset": "format",
         "InteractionWriter": "format", "write_interactions": "format", "MFModel": "model", "model_files": "model",
         "evaluate": "score", "predict": "score", "predict_to_parquet": "score", "recommend": "recommendations",
         "recommend_to_parquet": "recommendations", "train_mf": "train"}


#: Items per user that ``recommend`` returns by default (here, not in recommendations.py: the
#: command line's parser reads it without loading numba).
DEFAULT_TOP = 10


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_mf_model(path) -> bool:
    """Whether ``path`` is a factorization model directory (reads model.json only)."""
    try:
        return json.loads((Path(path) / "model.json").read_text()).get("kind") == "mf"
    except (OSError, ValueError, AttributeError):
        return False


def is_interaction_file(path) -> bool:
    """Whether ``path`` (a .parquet file, or a directory of them) holds interactions: one
    footer read, and nothing at all for other paths."""
    p = Path(path)
    files = sorted(f for f in p.glob("*.parquet") if not f.name.startswith((".", "_"))) if p.is_dir() else [p]
    if not files or files[0].suffix != ".parquet" or not files[0].is_file():
        return False
    import pyarrow.parquet as pq

    try:
        md = pq.read_metadata(files[0])
    except Exception:  # noqa: BLE001 - not Parquet: the sparse readers will say why
        return False
    return b"interactions_version" in (md.metadata or {})


__all__ = sorted(_LAZY) + ["is_interaction_file", "is_mf_model"]
