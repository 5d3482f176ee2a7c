"""The parts of cluster training that need no cluster: the worker's dataset view, the
full-batch objective kernel, how sparse changes combine, the options, and the command line
without Dask (tests/test_cluster.py runs them on a LocalCluster)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from streamhog.cluster import changes as ch
from streamhog.cluster.options import ClusterOptions, parse_sync_every
from streamhog.cluster.view import BlockSubset
from streamhog.errors import ConfigError
from streamhog.io.batch import concat_batches
from streamhog.io.formats import create_writer, open_dataset

from conftest import random_batch
from dataset_contract import DatasetContract


class TestBlockSubset(DatasetContract):
    """A worker's share of a dataset is a dataset (tests/dataset_contract.py)."""

    def make(self, tmp_path, batches, n_features):
        # The base holds the given rows in its odd blocks and other rows in its even ones.
        rng = np.random.default_rng(7)
        mixed = []
        for b in batches:
            mixed += [random_batch(rng, 9, n_features, weights=True, max_nnz=12), b]
        base = _one_group_per_batch(tmp_path, mixed, n_features)
        return BlockSubset(base, list(range(1, base.n_blocks, 2)))


def _one_group_per_batch(tmp_path, batches, n_features):
    d = tmp_path / "parts"
    d.mkdir()
    for i, b in enumerate(batches):
        w = create_writer("parquet", d / f"part-{i:03d}.parquet", has_weights=True)
        w.write(b)
        w.close(n_features)
    return open_dataset(d)


def test_a_subset_keeps_each_blocks_place_in_the_whole(tmp_path, rng):
    batches = [random_batch(rng, n, 50) for n in (5, 7, 3, 6)]
    base = _one_group_per_batch(tmp_path, batches, 50)
    view = BlockSubset(base, [2, 0])
    assert view.n_rows == 3 + 5 and list(view.block_rows) == [3, 5]
    assert [view.base_block(k) for k in range(2)] == [2, 0]
    assert [view.base_row_start(k) for k in range(2)] == [12, 0]
    with pytest.raises(ConfigError):
        BlockSubset(base, [4])


def test_the_objective_kernel_is_numpys_loss_and_gradient(rng):
    from streamhog.kernels.losses import LOSS_IDS
    from streamhog.kernels.objective import block_loss_grad

    n = 40
    b = concat_batches([random_batch(rng, 300, n, weights=True, max_nnz=10)])
    X = b.to_scipy(n).toarray()
    y = np.asarray(b.labels, np.float64)
    s = np.asarray(b.weights, np.float64)
    w, c = rng.normal(size=n), 0.3
    rows = np.sort(rng.choice(b.n_rows, 200, replace=False)).astype(np.int64)
    for loss in ("logistic", "squared", "huber"):
        grad = np.zeros(n + 1)
        got_loss, got_weight, flags = block_loss_grad(b.indptr, b.indices, b.values, True, b.labels, b.weights,
                                                      True, rows, w, c, LOSS_IDS[loss], grad)
        z = X[rows] @ w + c
        t = y[rows]
        if loss == "logistic":
            ell, d = np.logaddexp(0, -t * z), -t / (1 + np.exp(t * z))
        elif loss == "squared":
            ell, d = 0.5 * (z - t) ** 2, z - t
        else:
            r = z - t
            ell = np.where(np.abs(r) <= 1, 0.5 * r * r, np.abs(r) - 0.5)
            d = np.clip(r, -1, 1)
        assert flags == 0
        assert got_loss == pytest.approx(float(s[rows] @ ell), rel=1e-12)
        assert got_weight == pytest.approx(float(s[rows].sum()), rel=1e-12)
        np.testing.assert_allclose(grad[:n], X[rows].T @ (s[rows] * d), rtol=1e-10, atol=1e-12)
        assert grad[n] == pytest.approx(float(s[rows] @ d), rel=1e-10)


def _leaf(idx, w, acc, bstate, trained=True):
    return ch.Change("values", np.asarray(idx, np.uint32), [np.asarray(w, np.float32), np.asarray(acc, np.float32)],
                     np.asarray(bstate, np.float64), trained=int(trained))


@pytest.mark.parametrize("combine", ["average", "sum"])
def test_changes_combine_as_numpy_says(combine, rng):
    n = 12
    base_w, base_acc = rng.normal(size=n).astype(np.float32), rng.uniform(0, 2, n).astype(np.float32)
    base_b = np.array([0.5, 1.0, 0.0, 0.0, 0.0])
    rules = ch.ARRAY_RULES["adagrad"]
    leaves, dense = [], []
    for k in range(3):
        idx = np.sort(rng.choice(n, 5, replace=False))
        w, acc = base_w.copy(), base_acc.copy()
        w[idx] += rng.normal(size=5).astype(np.float32)
        acc[idx] += rng.uniform(0, 1, 5).astype(np.float32)
        b = base_b + [rng.normal(), rng.uniform(), 0, 0, 0]
        leaves.append(_leaf(idx, w[idx], acc[idx], b))
        dense.append((idx, w, acc, b))
    parts = [ch.to_delta(leaf, [base_w, base_acc], base_b, rules) for leaf in leaves]
    total = ch.merge(ch.merge(parts[0], parts[1], rules), parts[2], rules)
    out = ch.finalize(total, [base_w, base_acc], base_b, rules, combine)
    touched = np.zeros(n)
    dw, dacc = np.zeros(n), np.zeros(n)
    for idx, w, acc, _ in dense:
        touched[idx] += 1
        dw[idx] += w[idx].astype(np.float64) - base_w[idx]
        dacc[idx] += acc[idx].astype(np.float64) - base_acc[idx]
    db = sum(b - base_b for *_, b in dense)
    div = np.maximum(touched, 1) if combine == "average" else 1.0
    want_w, want_acc = base_w + dw / div, base_acc + dacc / div
    np.testing.assert_array_equal(out.index, np.flatnonzero(touched))
    np.testing.assert_allclose(out.arrays[0], want_w[out.index], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.arrays[1], want_acc[out.index], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.bstate, base_b + db / (3 if combine == "average" else 1), rtol=1e-12)
    assert total.count.max() <= 3 and total.leaves == 3


def test_one_workers_values_arrive_bit_for_bit(rng):
    """A leaf is applied by assignment: one worker's model reaches the client exactly."""
    w = np.zeros(20, np.float32)
    acc = np.zeros(20, np.float32)
    b = np.zeros(5)
    leaf = _leaf([1, 7], [0.1234567, -3e-9], [2.5, 1e-30], [0.3, 0.1, 0, 0, 0])
    ch.assign(leaf, [w, acc], b)
    assert w[1] == np.float32(0.1234567) and w[7] == np.float32(-3e-9) and b[0] == 0.3


def test_ftrl_weights_follow_z_and_n():
    z, n = np.array([-3.0, 0.5, 2.0]), np.array([4.0, 1.0, 9.0])
    np.testing.assert_allclose(ch.ftrl_weights(z, n, 0.1, 1.0, 0.5, 1.0),
                               [-(-3 + 1) / ((1 + 2) / 0.1 + 0.5), 0.0, -(2 - 1) / ((1 + 3) / 0.1 + 0.5)])


@pytest.mark.parametrize("combine", ["average", "sum"])
def test_normalized_replicas_merge_at_the_largest_scale(combine, rng):
    """The normalized rule: each replica's w is in units of its own scale s (a running max of
    |x|), its acc in units of s^2. The combined scale is the max; the combined w and acc are
    those of every replica first brought to that scale (w s / s_max, acc (s / s_max)^2,
    which keeps v = w s and the raw squared-gradient sums), then combined as usual."""
    n = 10
    base = [rng.normal(size=n).astype(np.float32), rng.uniform(0, 2, n).astype(np.float32),
            rng.uniform(0.5, 2, n).astype(np.float32)]
    base_b = np.array([0.1, 2.0, 0.0, 30.0, 20.0])
    rules = ch.ARRAY_RULES["normalized"]
    replicas = []
    for k in range(3):
        idx = np.sort(rng.choice(n, 6, replace=False))
        s = np.maximum(base[2][idx], base[2][idx] * rng.choice([1.0, 3.0, 50.0], 6)).astype(np.float32)
        w = (base[0][idx] * base[2][idx] / s + rng.normal(size=6)).astype(np.float32)
        acc = (base[1][idx] * (base[2][idx] / s) ** 2 + rng.uniform(0, 1, 6)).astype(np.float32)
        replicas.append((idx, w, acc, s))
    leaves = [ch.Change("values", idx.astype(np.uint32), [w, acc, s], base_b + 1.0, trained=1)
              for idx, w, acc, s in replicas]
    parts = [ch.to_delta(leaf, base, base_b, rules) for leaf in leaves]
    out = ch.finalize(ch.merge(ch.merge(parts[0], parts[1], rules), parts[2], rules), base, base_b, rules, combine)
    # NumPy: the largest scale, every replica (and the base) at it, then the usual combination.
    top = base[2].astype(np.float64).copy()
    for idx, _, _, s in replicas:
        top[idx] = np.maximum(top[idx], s)
    at_top = lambda w, acc, s, idx: (w * (s / top[idx]), acc * (s / top[idx]) ** 2)  # noqa: E731
    bw, bacc = at_top(base[0].astype(np.float64), base[1].astype(np.float64), base[2].astype(np.float64), slice(None))
    dw, dacc, touched = np.zeros(n), np.zeros(n), np.zeros(n)
    for idx, w, acc, s in replicas:
        ww, aa = at_top(w.astype(np.float64), acc.astype(np.float64), s.astype(np.float64), idx)
        dw[idx] += ww - bw[idx]
        dacc[idx] += aa - bacc[idx]
        touched[idx] += 1
    div = np.maximum(touched, 1) if combine == "average" else 1.0
    hit = out.index.astype(np.int64)
    np.testing.assert_array_equal(hit, np.flatnonzero(touched))
    np.testing.assert_array_equal(out.arrays[2], top[hit].astype(np.float32))
    np.testing.assert_allclose(out.arrays[0], (bw + dw / div)[hit], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.arrays[1], (bacc + dacc / div)[hit], rtol=1e-5, atol=1e-6)


def test_sparse_export_holds_every_non_zero():
    w = np.zeros(100, np.float32)
    acc = np.zeros(100, np.float32)
    w[[3, 50]] = [1, -2]
    acc[[50, 99]] = [4, 5]
    e = ch.nonzero_export([w, acc], np.array([0.5, 0, 0, 0, 0]))
    np.testing.assert_array_equal(e.index, [3, 50, 99])
    np.testing.assert_array_equal(e.arrays[1], [0, 4, 5])


def test_options_are_checked():
    assert parse_sync_every("50000") == (50000, None) and parse_sync_every("2.5s") == (None, 2.5)
    assert parse_sync_every(None)[0] > 0
    for bad in ("0", "-3", "x", "0s"):
        with pytest.raises(ConfigError, match="--sync-every"):
            parse_sync_every(bad)
    with pytest.raises(ConfigError, match="--sync-mode"):
        ClusterOptions(sync_mode="allreduce").check()
    with pytest.raises(ConfigError, match="--polish"):
        ClusterOptions(sync_mode="lbfgs", polish="lbfgs").check()
    assert ClusterOptions().worker_lr_factor(4) == 2.0
    assert ClusterOptions(combine="sum").worker_lr_factor(4) == 1.0


def test_cluster_spec_and_data_are_checked(tmp_path):
    from streamhog.cluster import train_on_cluster
    from streamhog.cluster.connect import parse_cluster

    assert parse_cluster("local:3") == ("local", 3)
    assert parse_cluster("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    for bad in ("local:0", "local:x", "cluster", 3):
        with pytest.raises(ConfigError):
            parse_cluster(bad)
    X = np.eye(3)
    with pytest.raises(ConfigError, match="path on a shared file system"):
        train_on_cluster(X, tmp_path / "m", cluster="local:1")


def _cli(*args, block_dask=False):
    code = ("import sys\n" + ("sys.modules['distributed'] = None\n" if block_dask else "")
            + "from streamhog.cli import main\ntry:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            + "print('LOADED', sorted(m for m in ('dask', 'distributed') if sys.modules.get(m)))\nsys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_without_dask_cluster_says_how_to_install_it(tmp_path):
    from streamhog.datasets import a9a
    from streamhog.io.conversion import convert

    convert(a9a("test"), tmp_path / "t.parquet", progress=False)
    p = _cli("train", tmp_path / "t.parquet", "--model", tmp_path / "m", "--cluster", "local:1", block_dask=True)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1].endswith("pip install 'streamhog[dask]'"), p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "m").exists()


def test_help_imports_no_dask():
    p = _cli("train", "--help")
    assert p.returncode == 0 and "--sync-mode" in p.stdout and "LOADED []" in p.stdout


def test_training_without_cluster_imports_no_dask(tmp_path):
    from streamhog.datasets import a9a
    from streamhog.io.conversion import convert

    convert(a9a("test"), tmp_path / "t.parquet", progress=False)
    p = _cli("train", tmp_path / "t.parquet", "--model", tmp_path / "m", "--epochs", "1", "--quiet")
    assert p.returncode == 0, p.stderr
    assert "LOADED []" in p.stdout


def test_coordinate_sets_match_numpy(rng):
    from streamhog.kernels.sparse_sets import mark, union_positions

    for na, nb in ((0, 0), (0, 5), (7, 0), (300, 450)):
        a = np.sort(rng.choice(1000, na, replace=False)).astype(np.int64)
        b = np.sort(rng.choice(1000, nb, replace=False)).astype(np.int64)
        union, pa, pb = union_positions(a, b)
        np.testing.assert_array_equal(union, np.union1d(a, b))
        np.testing.assert_array_equal(union[pa], a)
        np.testing.assert_array_equal(union[pb], b)
    mask = np.zeros(3 * 50, np.uint8)
    ids = np.array([2, 7, 49], np.uint32)
    mark(ids, 3, mask)
    np.testing.assert_array_equal(np.flatnonzero(mask), (ids[:, None] * 3 + np.arange(3)).ravel())
    mark(np.array([60], np.uint32), 3, mask)  # past the mask: skipped, never written
    assert mask.sum() == 9


def test_downpour_shards_add_normalized_pushes_at_the_largest_scale(rng):
    """Downpour (shards.py): pushes of replicas at different scales add in scale-free units
    and land at the largest scale: two fresh pushes give what summing both replicas' changes,
    each brought to that scale, gives (changes.finalize with ``sum``)."""
    from streamhog.cluster.shards import Shard

    n = 8
    rules = ch.ARRAY_RULES["normalized"]
    base = [rng.normal(size=n).astype(np.float32), rng.uniform(0, 2, n).astype(np.float32),
            rng.uniform(0.5, 2, n).astype(np.float32)]
    shard = Shard(0, n, 3, None, rules, "normalized")
    shard.load(ch.Change("values", np.arange(n, dtype=np.uint32), base, np.zeros(0)))
    deltas = []
    for worker in range(2):
        idx = np.sort(rng.choice(n, 5, replace=False))
        s = (base[2][idx] * rng.choice([1.0, 4.0, 100.0], 5)).astype(np.float32)
        w = (base[0][idx] * base[2][idx] / s + rng.normal(size=5)).astype(np.float32)
        acc = (base[1][idx] * (base[2][idx] / s) ** 2 + rng.uniform(0, 1, 5)).astype(np.float32)
        leaf = ch.Change("values", idx.astype(np.uint32), [w, acc, s], np.zeros(0), trained=0)
        deltas.append(ch.to_delta(leaf, base, np.zeros(0), rules))
    for worker, d in enumerate(deltas):  # each fetches just before its push: both fresh, full steps
        shard.fetch(worker)
        assert shard.push(worker, d, max_staleness=5, policy="scale") == (0, 1.0)
    want = ch.finalize(ch.merge(deltas[0], deltas[1], rules), base, np.zeros(0), rules, "sum")
    hit = want.index.astype(np.int64)
    np.testing.assert_array_equal(shard.arrays[2][hit], want.arrays[2])
    for a in (0, 1):
        np.testing.assert_allclose(shard.arrays[a][hit], want.arrays[a], rtol=1e-5, atol=1e-6)


def test_downpour_scales_every_push_by_its_staleness(rng):
    """Three workers fetch the same model and push in turn: the k-th push is k pushes stale
    and adds 1/(1+k) of its change (weights and intercept; AdaGrad's squared-gradient sums
    whole); beyond the bound ``drop`` ignores it. The old rule (``beyond-bound``) added full
    steps within the bound and 1/staleness beyond."""
    from streamhog.cluster.shards import Shard, stale_factor

    assert [stale_factor(t, 1, "scale") for t in range(4)] == [1.0, 1 / 2, 1 / 3, 1 / 4]
    assert [stale_factor(t, 1, "drop") for t in range(4)] == [1.0, 1 / 2, 0.0, 0.0]
    assert [stale_factor(t, 1, "scale", "beyond-bound") for t in range(4)] == [1.0, 1.0, 1 / 2, 1 / 3]
    n, rules = 6, ch.ARRAY_RULES["adagrad"]
    k = 1  # one intercept: bstate = (w, acc, aux, N, T)
    for policy, bound in (("scale", 5), ("drop", 1)):
        base = [rng.normal(size=n).astype(np.float32), rng.uniform(0, 1, n).astype(np.float32)]
        b0 = rng.normal(size=3 * k + 2)
        shard = Shard(0, n, 2, b0, rules, "adagrad")
        shard.load(ch.Change("values", np.arange(n, dtype=np.uint32), base, b0))
        want_w, want_acc, want_b = base[0].astype(np.float64), base[1].astype(np.float64), b0.copy()
        for worker in range(3):
            shard.fetch(worker)
        for worker in range(3):
            idx = np.sort(rng.choice(n, 4, replace=False)).astype(np.uint32)
            dw, dacc = rng.normal(size=4).astype(np.float32), rng.uniform(0, 1, 4).astype(np.float32)
            db = rng.normal(size=3 * k + 2)
            got = shard.push(worker, ch.Change("delta", idx, [dw, dacc], db, np.ones(4, np.uint16), trained=1),
                             bound, policy)
            f = 0.0 if policy == "drop" and worker > bound else 1 / (1 + worker)
            assert got == (worker, f)
            if f:
                want_w[idx] += f * dw
                want_acc[idx] += dacc
                want_b += np.concatenate([f * db[:k], db[k:]])
        np.testing.assert_allclose(shard.arrays[0], want_w, rtol=1e-6)
        np.testing.assert_allclose(shard.arrays[1], want_acc, rtol=1e-6)
        np.testing.assert_allclose(shard.bstate, want_b, rtol=1e-12)
