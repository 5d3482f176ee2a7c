"""Feature hashing: ids of any size, and categorical (field, value) pairs, into 2^bits slots.

The hash is MurmurHash3_x86_32 (``streamhog.kernels.hashing``), the hash of Vowpal Wabbit
and scikit-learn. docs/formats.md ("Feature hashing") is the specification:

- an integer feature id ``i`` (LIBSVM, Parquet/Zarr re-conversion with ``--hash-bits``):
  ``murmur3_32(uint32_le(i), seed=0) & (2**bits - 1)``;
- a categorical value ``v`` of field ``F`` (click logs), Vowpal Wabbit's namespace-as-seed
  scheme: ``murmur3_32(utf8(v), seed=murmur3_32(utf8(F), seed=0)) & (2**bits - 1)``;
- a numeric value of field ``F`` is first turned into a token (:func:`numeric_token`) and
  then hashed as a categorical value of ``F``.

Distinct ids that land in one slot (collisions) are merged: a row's ids are sorted and equal
ids summed, so rows keep the format's strictly ascending ids and binary features become counts.

>>> categorical_feature_id("C1", "68fd1e64", 20)
5292
>>> numeric_token(1382), numeric_token(2), numeric_token(-1)
('52', 'SP2', 'SP-1')
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .batch import SparseBatch
from ..errors import ConfigError, DataFormatError

#: Dataset metadata key (Parquet key-value metadata, Zarr attribute): the ``bits`` the ids
#: were hashed with, so n_features == 2**hash_bits; absent when ids are not hashed.
META_HASH_BITS = "hash_bits"

__all__ = ["DEFAULT_HASH_BITS", "META_HASH_BITS", "read_hash_bits", "murmur3", "field_seed", "categorical_feature_id", "numeric_token", "numeric_feature_id",
           "hash_batch", "merge_duplicates", "check_bits"]


#: Default hash space for click logs: 2^20 slots (1M weights, 4 MiB as float32).
DEFAULT_HASH_BITS = 20


def check_bits(bits: int) -> int:
    """``bits`` as an int in 1..32 (ids are uint32), else ValueError."""
    if isinstance(bits, bool) or int(bits) != bits or not 1 <= int(bits) <= 32:
        raise ConfigError(f"hash bits must be an integer from 1 to 32, got {bits!r}")
    return int(bits)


def read_hash_bits(value, path) -> int | None:
    """A dataset's ``hash_bits`` metadata (an int, or decimal text in Parquet) as an int in
    1..32, or None when absent; anything else is a DataFormatError naming ``path``."""
    if value is None:
        return None
    text = str(value)
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= 32:
        raise DataFormatError(path, f"metadata '{META_HASH_BITS}' must be an integer from 1 to 32, got {value!r}")
    return int(text)


def _kernels():
    """The numba hashing kernels, imported on first use: reading a dataset's ``hash_bits``
    (every Parquet/Zarr open) must not load numba (start-up, issue 5)."""
    from ..kernels import hashing
    return hashing


def _bytes(data) -> np.ndarray:
    if isinstance(data, str):
        data = data.encode("utf-8")
    arr = np.frombuffer(bytes(data), dtype=np.uint8)
    return arr


def murmur3(data, seed: int = 0) -> int:
    """MurmurHash3_x86_32 of ``data`` (bytes, or str as UTF-8) with a seed in [0, 2^32)."""
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2^32), got {seed}")
    arr = _bytes(data)
    return int(_kernels().murmur3_32(arr, 0, len(arr), np.uint32(seed)))


def field_seed(field: str) -> int:
    """The seed a field's values are hashed with: ``murmur3_32(utf8(field), seed=0)``."""
    return murmur3(field, 0)


def categorical_feature_id(field: str, value: str, bits: int) -> int:
    """``murmur3_32(utf8(value), seed=murmur3_32(utf8(field), seed=0)) & (2**bits - 1)``."""
    return murmur3(value, field_seed(field)) & ((1 << check_bits(bits)) - 1)


def numeric_token(v: float) -> str:
    """The token a numeric value is hashed as (the Criteo challenge winners' binning, Juan et
    al. 2014): ``"SP" + str(int(v))`` when ``v <= 2``, else ``str(int(ln(v) ** 2))``.

    ``int`` truncates toward zero. The "SP" prefix keeps the small values apart from the
    log bins (without it 2 and 5 would share the token "2"). ``v`` must be finite.
    """
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"numeric value must be finite, got {v!r}")
    if v <= 2:
        return "SP" + str(int(v))
    return str(int(math.log(v) ** 2))


def numeric_feature_id(field: str, v: float, bits: int) -> int:
    """:func:`categorical_feature_id` of the :func:`numeric_token` of ``v``."""
    return categorical_feature_id(field, numeric_token(v), bits)


def merge_duplicates(batch: SparseBatch) -> SparseBatch:
    """Each row's ids sorted ascending, equal ids merged by summing their values (in row
    order, in float64, rounded once to float32). ``values`` is None when every sum is 1.0."""
    n = batch.nnz
    out_indptr = np.empty(batch.n_rows + 1, dtype=np.int64)
    out_ids = np.empty(n, dtype=np.uint32)
    out_values = np.empty(n, dtype=np.float32)
    has_values = batch.values is not None
    values = np.ascontiguousarray(batch.values, dtype=np.float32) if has_values else np.empty(0, np.float32)
    nnz = _kernels().sort_merge_rows(_readonly(np.ascontiguousarray(batch.indptr, dtype=np.int64)),
                            np.ascontiguousarray(batch.indices, dtype=np.uint32), _readonly(values),
                            has_values, out_indptr, out_ids, out_values)
    out_values = out_values[:nnz]
    return replace(batch, indptr=out_indptr, indices=out_ids[:nnz],
                   values=None if bool(np.all(out_values == 1.0)) else out_values)


def hash_batch(batch: SparseBatch, bits: int, *, merge: bool = True, seed: int = 0) -> SparseBatch:
    """The batch with every id ``i`` replaced by ``murmur3_32(uint32_le(i), seed) & (2**bits - 1)``.

    With ``merge`` (the default) rows are then sorted and collisions merged
    (:func:`merge_duplicates`), as the dataset format requires; ``merge=False`` keeps each
    row's order and duplicates (not a valid dataset row when ids collide).
    """
    bits = check_bits(bits)
    out = np.empty(batch.nnz, dtype=np.uint32)
    _kernels().hash_ids(np.ascontiguousarray(batch.indices, dtype=np.uint32), bits, np.uint32(seed), out)
    hashed = replace(batch, indices=out)
    return merge_duplicates(hashed) if merge else hashed


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view: the kernels are compiled for read-only inputs (dataset buffers are)."""
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a
