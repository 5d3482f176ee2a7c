"""Feature hashing: MurmurHash3_x86_32 against published test vectors and scikit-learn's
independent C implementation, collision rates against theory, row merging against a dict,
and ``convert --hash-bits`` against scikit-learn's LIBSVM parser + hash + numpy."""
from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from sklearn.datasets import load_svmlight_file
from sklearn.utils import murmurhash3_32 as sk_murmur

import streamhog.io.hashing as hashing_module
from streamhog.io.batch import SparseBatch
from streamhog.cli import main
from streamhog.io.conversion import convert
from streamhog.datasets import a9a
from streamhog.errors import DataFormatError
from streamhog.io.formats import open_dataset
from streamhog.io.hashing import (categorical_feature_id, check_bits, field_seed, hash_batch, merge_duplicates,
                               murmur3, numeric_token)
from streamhog.kernels import hashing as K

from conftest import random_batch
from test_formats import read_all, read_raw

# MurmurHash3_x86_32 test vectors (as published with the reference implementation's ports,
# e.g. SMHasher users' tables): (data, seed, hash).
VECTORS = [
    (b"", 0, 0x00000000),
    (b"", 1, 0x514E28B7),
    (b"", 0xFFFFFFFF, 0x81F16F39),
    (b"\x00\x00\x00\x00", 0, 0x2362F9DE),
    (b"\xff\xff\xff\xff", 0, 0x76293B50),
    (b"\x21\x43\x65\x87", 0, 0xF55B516B),
    (b"\x21\x43\x65\x87", 0x5082EDEE, 0x2362F9DE),
    (b"\x21\x43\x65", 0, 0x7E4A8634),
    (b"\x21\x43", 0, 0xA0F7B07A),
    (b"\x21", 0, 0x72661CF4),
    (b"\x00\x00\x00", 0, 0x85F0B427),
    (b"\x00\x00", 0, 0x30F4C306),
    (b"\x00", 0, 0x514E28B7),
    (b"Hello, world!", 1234, 0xFAF6CDB3),
    (b"Hello, world!", 4321, 0xBF505788),
    (b"The quick brown fox jumps over the lazy dog", 0, 0x2E4FF723),
    (b"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD),
]


def kernel_hash(data: bytes, seed: int, readonly=True, offset=0) -> int:
    arr = np.frombuffer(b"#" * offset + data + b"junk", dtype=np.uint8)
    if not readonly:
        arr = arr.copy()
    assert arr.flags.writeable is not readonly
    return int(K.murmur3_32(arr, offset, offset + len(data), np.uint32(seed)))


@pytest.mark.parametrize("data,seed,expected", VECTORS, ids=[f"{d[:12]!r}/{s:#x}" for d, s, _ in VECTORS])
def test_published_vectors(data, seed, expected):
    assert murmur3(data, seed) == expected
    assert kernel_hash(data, seed, readonly=True, offset=3) == expected
    assert kernel_hash(data, seed, readonly=False) == expected
    assert sk_murmur(data, seed=seed, positive=True) == expected  # the reference agrees too


def test_agrees_with_sklearn_on_random_bytes_and_seeds():
    rng = np.random.default_rng(7)
    seeds = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF] + rng.integers(0, 2**32, 20).tolist()
    for seed in seeds:
        for n in list(range(0, 41)) + [63, 64, 65, 1000]:
            data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            assert murmur3(data, seed) == sk_murmur(data, seed=int(seed), positive=True), (data, seed)
    for text in ["", "a", "é", "日本語のテキスト", "68fd1e64", "C26"]:  # str hashes as UTF-8, as in sklearn
        assert murmur3(text, 42) == sk_murmur(text, seed=42, positive=True)


@pytest.mark.parametrize("bits", [1, 5, 16, 20, 31, 32])
def test_hash_ids_equals_per_element_reference(bits):
    rng = np.random.default_rng(bits)
    ids = np.concatenate([np.array([0, 1, 2**31 - 1, 2**31, 2**32 - 1], np.uint32),
                          rng.integers(0, 2**32, 3000, dtype=np.uint64).astype(np.uint32)])
    ids.flags.writeable = False  # dataset buffers arrive read-only
    mask = (1 << bits) - 1
    for seed in (0, 99, 2**32 - 1):
        out = np.empty_like(ids)
        K.hash_ids(ids, bits, np.uint32(seed), out)
        # sklearn hashes an int32 key as its 4 bytes: the same bytes as uint32 little-endian
        ref = sk_murmur(ids.view(np.int32), seed=seed, positive=True).astype(np.uint64) & mask
        np.testing.assert_array_equal(out, ref.astype(np.uint32))
        some = ids[:: 300]
        assert [int(x) for x in out[:: 300]] == [murmur3(int(i).to_bytes(4, "little"), seed) & mask for i in some]


def _occupancy_bounds(n: int, m: int, z: float = 5.0):
    """Expected number of occupied slots of n balls thrown into m bins, +- z standard deviations."""
    q = 1.0 - 1.0 / m
    mean = m * (1.0 - q**n)
    var = m * (m - 1) * (1.0 - 2.0 / m) ** n + m * q**n - m * m * q ** (2 * n)
    sd = math.sqrt(var)
    return mean - z * sd, mean + z * sd


@pytest.mark.parametrize("bits", [16, 20])
@pytest.mark.parametrize("kind", ["sequential", "random", "strided"])
def test_collision_rate_matches_a_random_function(bits, kind):
    n = 100_000
    rng = np.random.default_rng(bits)
    ids = {"sequential": np.arange(n, dtype=np.uint32),
           "random": rng.choice(2**32, n, replace=False).astype(np.uint32),
           "strided": (np.arange(n, dtype=np.uint64) * 4096).astype(np.uint32)}[kind]
    out = np.empty_like(ids)
    K.hash_ids(ids, bits, np.uint32(0), out)
    occupied = len(np.unique(out))
    lo, hi = _occupancy_bounds(n, 1 << bits)
    assert lo <= occupied <= hi, (occupied, lo, hi)


def _merge_reference(batch: SparseBatch, bits: int | None):
    """Rows as sorted lists of (id, float32 sum), summed with a dict in input order."""
    rows = []
    vals = batch.values_or_ones()
    mask = (1 << bits) - 1 if bits is not None else None
    for r in range(batch.n_rows):
        acc: dict[int, float] = {}
        for k in range(int(batch.indptr[r]), int(batch.indptr[r + 1])):
            i = int(batch.indices[k])
            if mask is not None:
                i = sk_murmur(i.to_bytes(4, "little"), seed=0, positive=True) & mask
            acc[i] = acc.get(i, 0.0) + float(vals[k])
        rows.append(sorted((i, np.float32(v)) for i, v in acc.items()))
    return rows


def _rows(batch: SparseBatch):
    vals = batch.values_or_ones()
    return [list(zip(batch.indices[batch.indptr[r]:batch.indptr[r + 1]].tolist(),
                     vals[batch.indptr[r]:batch.indptr[r + 1]].tolist())) for r in range(batch.n_rows)]


@pytest.mark.parametrize("bits", [1, 3, 8, 32])
@pytest.mark.parametrize("binary", [True, False])
def test_hash_batch_merges_collisions_like_a_dict(rng, bits, binary):
    b = random_batch(rng, 400, 5000, binary=binary, max_nnz=60, weights=True)
    out = hash_batch(b, bits)
    assert _rows(out) == [[(i, float(v)) for i, v in row] for row in _merge_reference(b, bits)]
    for r in range(out.n_rows):  # the format's invariant: strictly ascending ids per row
        assert np.all(np.diff(out.indices[out.indptr[r]:out.indptr[r + 1]].astype(np.int64)) > 0)
    assert out.indices.dtype == np.uint32 and out.indptr.dtype == np.int64
    assert out.weights is b.weights and out.labels is b.labels
    if binary and bits == 32:
        assert out.values is None or bool(np.all(out.values == 1))
    if binary and bits == 1:
        assert out.values is not None and out.values.max() > 1  # counts


def test_hash_batch_without_merge_keeps_order_and_duplicates():
    b = SparseBatch(np.array([0, 3]), np.array([7, 1, 9], np.uint32), None, np.ones(1, np.float32))
    out = hash_batch(b, 1, merge=False)
    assert out.nnz == 3 and list(out.indices) == [sk_murmur(i, seed=0, positive=True) & 1 for i in (7, 1, 9)]


def test_merge_duplicates_values_and_binary_rows():
    b = SparseBatch(np.array([0, 4, 4, 6]), np.array([5, 2, 5, 2, 9, 9], np.uint32),
                    np.array([1, 2, 3, -2, 0.5, 0.5], np.float32), np.zeros(3, np.float32))
    out = merge_duplicates(b)
    assert _rows(out) == [[(2, 0.0), (5, 4.0)], [], [(9, 1.0)]]
    ones = merge_duplicates(SparseBatch(np.array([0, 2]), np.array([3, 1], np.uint32), None, np.zeros(1, np.float32)))
    assert ones.values is None and list(ones.indices) == [1, 3]
    long_row = np.random.default_rng(0).integers(0, 50, 500).astype(np.uint32)  # past the insertion sort
    out = merge_duplicates(SparseBatch(np.array([0, 500]), long_row, None, np.zeros(1, np.float32)))
    ids, counts = np.unique(long_row, return_counts=True)
    np.testing.assert_array_equal(out.indices, ids)
    np.testing.assert_array_equal(out.values, counts.astype(np.float32))


def test_categorical_feature_id_is_vw_namespace_seeding():
    for field, value, bits in [("C1", "68fd1e64", 20), ("site_id", "1fbe01fe", 24), ("é", "日本", 32), ("I3", "SP0", 1)]:
        seed = sk_murmur(field, seed=0, positive=True)
        assert field_seed(field) == seed
        assert categorical_feature_id(field, value, bits) == sk_murmur(value, seed=seed, positive=True) & ((1 << bits) - 1)
    assert categorical_feature_id("C1", "68fd1e64", 20) == 5292  # fixed: the ids of saved models depend on it
    assert categorical_feature_id("C1", "x", 20) != categorical_feature_id("C2", "x", 20)


def test_numeric_token_is_the_criteo_winners_binning():
    cases = {-5: "SP-5", -1: "SP-1", -0.5: "SP0", 0: "SP0", 1: "SP1", 1.99: "SP1", 2: "SP2", 2.5: "0", 3: "1",
             4: "1", 5: "2", 100: "21", 1382: "52", 1e6: "190", 1e300: "477170"}
    for v, token in cases.items():
        assert numeric_token(v) == token == (("SP" + str(int(v))) if v <= 2 else str(int(math.log(v) ** 2)))
    with pytest.raises(ValueError, match="finite"):
        numeric_token(float("nan"))


def test_check_bits():
    assert check_bits(1) == 1 and check_bits(32) == 32
    for bad in (0, 33, -1, 2.5, True):
        with pytest.raises(ValueError, match="1 to 32"):
            check_bits(bad)


def test_fixed_ids_do_not_change():
    """Models trained on hashed ids depend on these: changing the hash breaks them."""
    out = np.empty(4, np.uint32)
    K.hash_ids(np.array([0, 1, 122, 2**32 - 1], np.uint32), 20, np.uint32(0), out)
    assert out.tolist() == [195038, 81962, 971969, 605008]


def test_docstring_examples():
    result = doctest.testmod(hashing_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------------------------
# convert --hash-bits


def sklearn_hashed(svm_path, bits, n_features=None):
    """An independent reference: scikit-learn's parser, its murmurhash3_32 and numpy."""
    X, y = load_svmlight_file(str(svm_path), dtype=np.float64, n_features=n_features)
    h = sk_murmur(X.indices.astype(np.int32), seed=0, positive=True).astype(np.int64) & ((1 << bits) - 1)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    order = np.lexsort((h, rows))  # by row, then id
    key_rows, key_ids = rows[order], h[order]
    vals = X.data.astype(np.float32).astype(np.float64)[order]
    new = np.ones(len(order), bool)
    new[1:] = (key_rows[1:] != key_rows[:-1]) | (key_ids[1:] != key_ids[:-1])
    starts = np.flatnonzero(new)
    sums = np.add.reduceat(vals, starts) if len(starts) else vals
    counts = np.bincount(key_rows[starts], minlength=X.shape[0])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return indptr, key_ids[starts], sums.astype(np.float32), y.astype(np.float32)


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
@pytest.mark.parametrize("bits", [4, 20])
def test_convert_libsvm_with_hash_bits_equals_sklearn_reference(tmp_path, fmt, bits):
    rng = np.random.default_rng(bits)
    lines = []
    for _ in range(2000):
        ids = np.sort(rng.choice(10**6, rng.integers(0, 30), replace=False)) + 1
        lines.append(f"{rng.integers(0, 2)} " + " ".join(f"{i}:{rng.choice([1, 2, 0.5, -1.25])}" for i in ids))
    src = tmp_path / "r.svm"
    src.write_text("\n".join(lines) + "\n")
    report = convert(src, tmp_path / f"r.{fmt}", hash_bits=bits, rows_per_group=300)
    assert report.n_features == 2**bits and report.hash_bits == bits
    indptr, indices, values, labels, _, nf = read_raw(fmt, tmp_path / f"r.{fmt}")
    r_indptr, r_ids, r_vals, r_labels = sklearn_hashed(src, bits)
    assert nf == 2**bits
    np.testing.assert_array_equal(indptr, r_indptr)
    np.testing.assert_array_equal(indices, r_ids)
    np.testing.assert_array_equal(values, r_vals)
    np.testing.assert_array_equal(labels, r_labels)
    ds = open_dataset(tmp_path / f"r.{fmt}")
    assert ds.hash_bits == bits and ds.info()["hash_bits"] == bits


def test_a9a_hashed_metadata_survives_reconversion(tmp_path):
    convert(a9a("train"), tmp_path / "a.parquet", hash_bits=6)  # 123 ids into 64 slots: counts appear
    ref = sklearn_hashed(a9a("train"), 6)
    got = read_all(open_dataset(tmp_path / "a.parquet"))
    np.testing.assert_array_equal(got.indices, ref[1])
    np.testing.assert_array_equal(got.values, ref[2])
    assert got.values.max() > 1
    convert(tmp_path / "a.parquet", tmp_path / "a.zarr")
    assert open_dataset(tmp_path / "a.zarr").hash_bits == 6
    convert(tmp_path / "a.zarr", tmp_path / "b.parquet", rows_per_group=5000)
    assert open_dataset(tmp_path / "b.parquet").hash_bits == 6
    # unhashed data say None, and hashing a Parquet dataset equals hashing the LIBSVM text
    convert(a9a("train"), tmp_path / "plain.zarr")
    assert open_dataset(tmp_path / "plain.zarr").hash_bits is None
    assert "hash_bits" not in open_dataset(tmp_path / "plain.zarr").info()
    convert(tmp_path / "plain.zarr", tmp_path / "h.parquet", hash_bits=6)
    again = read_all(open_dataset(tmp_path / "h.parquet"))
    np.testing.assert_array_equal(again.indices, got.indices)
    np.testing.assert_array_equal(again.values, got.values)


def test_cli_hash_bits_and_its_refusals(tmp_path, capsys):
    src = tmp_path / "a.svm"
    src.write_text("1 1:1 4000000000:1\n0 7:2\n")
    assert main(["convert", str(src), str(tmp_path / "a.parquet"), "--hash-bits", "10", "--quiet"]) == 0
    ds = open_dataset(tmp_path / "a.parquet")
    assert ds.n_features == 1024 and ds.hash_bits == 10
    assert main(["convert", str(src), str(tmp_path / "b.parquet"), "--hash-bits", "10", "--n-features", "5"]) == 1
    assert "contradicts --hash-bits 10" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", str(src), str(tmp_path / "c.parquet"), "--hash-bits", "33"])
    assert "must be from 1 to 32" in capsys.readouterr().err
    assert not (tmp_path / "b.parquet").exists() and not (tmp_path / "c.parquet").exists()


def test_bad_hash_bits_metadata_is_refused(tmp_path):
    import zarr

    convert(a9a("test"), tmp_path / "t.zarr", n_features=123)
    zarr.open_group(str(tmp_path / "t.zarr"), mode="r+").attrs["hash_bits"] = 40
    with pytest.raises(DataFormatError, match="'hash_bits' must be an integer from 1 to 32"):
        open_dataset(tmp_path / "t.zarr")
