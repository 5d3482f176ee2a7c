"""Issue 15's property: the default learner's predictions do not depend on how each feature is
scaled. Multiplying column j by any c_j > 0 in [1e-3, 1e3] (training and test data alike)
leaves the test predictions unchanged up to rounding: for the default optimizer and every
one that claims it (optimizers.SCALE_INVARIANT), every loss, with importance weights and L2;
with the squared loss the predictions also follow an affine map of the target. AdaGrad,
which does not claim it, is shown to fail the same check (the test can tell)."""
from __future__ import annotations

import numpy as np
import pytest

import streamhog
from streamhog.io.batch import SparseBatch
from streamhog.io.formats import create_writer
from streamhog.kernels.block import ModelArrays, UpdateRule, train_block
from streamhog.kernels.linear import CONSTANT
from streamhog.kernels.losses import LOSS_IDS
from streamhog.kernels.optimizers import OPTIMIZER_IDS, SCALE_INVARIANT
from streamhog.kernels.predict import OK
from streamhog.kernels.softmax import softmax_margins
from streamhog.training.config import TrainConfig

N_FEATURES = 40
CLAIMS = [name for name, i in OPTIMIZER_IDS.items() if i in SCALE_INVARIANT]


def test_the_default_optimizer_claims_scale_invariance():
    assert TrainConfig().optimizer in CLAIMS


def column_scales(rng, n):
    """Log-uniform in [1e-3, 1e3], the two ends included."""
    c = 10.0 ** rng.uniform(-3, 3, n)
    c[0], c[1] = 1e-3, 1e3
    return c


def make_rows(rng, n_rows, *, loss="logistic", n_classes=3):
    """Sparse rows with Zipf-ish ids (rare features included), values of mixed sign, labels
    from a linear model."""
    counts = rng.integers(1, 9, n_rows)
    ids = [np.unique(np.minimum(rng.zipf(1.3, c) - 1, N_FEATURES - 1)) for c in counts]
    indptr = np.concatenate([[0], np.cumsum([len(i) for i in ids])]).astype(np.int64)
    indices = np.concatenate(ids).astype(np.uint32)
    values = rng.normal(1.0, 1.0, len(indices)).astype(np.float32)
    true = rng.normal(size=(N_FEATURES, n_classes))
    margin = np.zeros((n_rows, n_classes))
    for r in range(n_rows):
        lo, hi = indptr[r], indptr[r + 1]
        margin[r] = values[lo:hi] @ true[indices[lo:hi]]
    if loss == "softmax":
        labels = margin.argmax(axis=1).astype(np.float32)
    elif loss == "squared":
        labels = (3.0 * margin[:, 0] + rng.normal(size=n_rows)).astype(np.float32)
    else:
        labels = np.where(rng.random(n_rows) < 1 / (1 + np.exp(-margin[:, 0])), 1.0, -1.0).astype(np.float32)
    weights = rng.uniform(0.2, 3.0, n_rows).astype(np.float32)
    return indptr, indices, values, labels, weights


def scaled(values, indices, c):
    return (values.astype(np.float64) * c[indices]).astype(np.float32)


def train_binary(opt, loss, indptr, indices, values, labels, weights, rows, beta=1.0, l2=0.01):
    arrays = ModelArrays.zeros(N_FEATURES, 2)
    rule = UpdateRule(OPTIMIZER_IDS[opt], LOSS_IDS[loss], CONSTANT, l2=l2, beta=beta)
    batch = SparseBatch(indptr, indices, values, labels, weights)
    for epoch_rows in rows:  # three epochs, each its own order
        out = train_block(batch, epoch_rows, arrays, rule, lr=0.5, t0=0)
        assert out.n_nonfinite == 0 and out.flags == 0
    return arrays.w, arrays.bstate[0]


def margins(w, b, indptr, indices, values):
    return np.array([b + float(values[lo:hi].astype(np.float64) @ w[indices[lo:hi]])
                     for lo, hi in zip(indptr[:-1], indptr[1:])])


@pytest.mark.parametrize("loss", ["logistic", "hinge", "squared"])
@pytest.mark.parametrize("opt", CLAIMS)
def test_kernel_predictions_do_not_depend_on_feature_scales(rng, opt, loss):
    indptr, indices, values, labels, weights = make_rows(rng, 600, loss=loss)
    test = make_rows(rng, 300, loss=loss)
    rows = [rng.permutation(600).astype(np.int64) for _ in range(3)]
    w, b = train_binary(opt, loss, indptr, indices, values, labels, weights, rows)
    z = margins(w, b, *test[:3])
    assert np.std(z) > 0.1  # a model that learned something
    for trial in range(3):
        c = column_scales(rng, N_FEATURES)
        ws, bs = train_binary(opt, loss, indptr, indices, scaled(values, indices, c), labels, weights, rows)
        zs = margins(ws, bs, test[0], test[1], scaled(test[2], test[1], c))
        np.testing.assert_allclose(zs, z, rtol=1e-4, atol=1e-4 * np.abs(z).max())


def test_adagrad_does_not_claim_it_and_fails_the_check(rng):
    assert OPTIMIZER_IDS["adagrad"] not in SCALE_INVARIANT
    indptr, indices, values, labels, weights = make_rows(rng, 600)
    test = make_rows(rng, 300)
    rows = [rng.permutation(600).astype(np.int64)]
    w, b = train_binary("adagrad", "logistic", indptr, indices, values, labels, weights, rows)
    c = column_scales(rng, N_FEATURES)
    ws, bs = train_binary("adagrad", "logistic", indptr, indices, scaled(values, indices, c), labels, weights, rows)
    z, zs = margins(w, b, *test[:3]), margins(ws, bs, test[0], test[1], scaled(test[2], test[1], c))
    assert np.abs(zs - z).max() > 0.1


@pytest.mark.parametrize("opt", CLAIMS)
def test_softmax_kernel_predictions_do_not_depend_on_feature_scales(rng, opt):
    K = 4
    indptr, indices, values, labels, weights = make_rows(rng, 600, loss="softmax", n_classes=K)
    test = make_rows(rng, 300, loss="softmax", n_classes=K)
    rows = [rng.permutation(600).astype(np.int64) for _ in range(2)]

    def fit(vals, test_vals):
        arrays = ModelArrays.zeros(N_FEATURES, 2, K)
        rule = UpdateRule(OPTIMIZER_IDS[opt], -1, CONSTANT, l2=0.01, beta=1.0)
        batch = SparseBatch(indptr, indices, vals, labels, weights)
        for r in rows:
            out = train_block(batch, r, arrays, rule, lr=0.5, t0=0)
            assert out.n_nonfinite == 0 and out.flags == 0
        z = np.zeros((300, K))
        assert softmax_margins(test[0], test[1], test_vals, True, arrays.w, K, arrays.bstate, z)[0] == OK
        return z

    z = fit(values, test[2])
    for _ in range(2):
        c = column_scales(rng, N_FEATURES)
        zs = fit(scaled(values, indices, c), scaled(test[2], test[1], c))
        np.testing.assert_allclose(zs - zs.mean(axis=1, keepdims=True), z - z.mean(axis=1, keepdims=True),
                                   rtol=1e-4, atol=1e-4 * np.abs(z).max())


# -- end to end: the defaults, from Parquet files ----------------------------------------------------

def write(path, indptr, indices, values, labels, weights=None):
    w = create_writer("parquet", path, has_weights=weights is not None)
    w.write(SparseBatch(indptr, indices, values, labels, weights))
    w.close(N_FEATURES)
    return path


@pytest.mark.parametrize("loss", ["logistic", "squared", "softmax"])
def test_default_training_is_scale_free_end_to_end(rng, tmp_path, loss):
    """streamhog.train with every option at its default but one thread (Hogwild! with two
    threads is not reproducible run to run): same test predictions whatever the column
    scales; for the squared loss, labels a y + b give predictions a p + b."""
    indptr, indices, values, labels, weights = make_rows(rng, 3000, loss=loss)
    tr, te = slice(0, 2000), slice(2000, 3000)

    def split(vals, labs):
        lo, mid, hi = indptr[0], indptr[2000], indptr[3000]
        a = write(tmp_path / f"train-{split.n}.parquet", indptr[:2001], indices[lo:mid], vals[lo:mid], labs[tr],
                  weights[tr])
        b = write(tmp_path / f"test-{split.n}.parquet", indptr[2000:] - mid, indices[mid:hi], vals[mid:hi], labs[te])
        split.n += 1
        return a, b
    split.n = 0

    def predictions(vals, labs):
        train, test = split(vals, labs)
        model = streamhog.train(train, tmp_path / f"m{split.n}", loss=loss, threads=1, quiet=True)
        return model.predict(test)

    p = predictions(values, labels)
    c = column_scales(rng, N_FEATURES)
    if loss == "squared":  # the features and the target at once
        ps = predictions(scaled(values, indices, c), (labels.astype(np.float64) * 250.0 - 7000.0).astype(np.float32))
        np.testing.assert_allclose((ps + 7000.0) / 250.0, p, rtol=1e-4, atol=1e-4 * np.abs(p).max())
    else:
        np.testing.assert_allclose(predictions(scaled(values, indices, c), labels), p, rtol=1e-4, atol=1e-6)


def test_the_target_pass_matches_numpy_and_starts_at_the_constant(rng, tmp_path):
    """targets.py: the labels' mean and standard deviation over several row groups (merged
    block by block) as NumPy gives them; a new run's intercept starts at the constant
    predictor's: the mean (squared), the log-odds of the positive rate (logistic)."""
    from streamhog import open_dataset
    from streamhog.training.targets import initial_state, label_moments

    n = 2500
    y = (rng.normal(size=n) * 300 + 4000).astype(np.float32)
    w = create_writer("parquet", tmp_path / "r.parquet", rows_per_group=300)
    w.write(SparseBatch(np.arange(n + 1, dtype=np.int64), np.zeros(n, np.uint32), np.ones(n, np.float32), y))
    w.close(1)
    ds = open_dataset(tmp_path / "r.parquet")
    count, mean, std = label_moments(ds)
    assert count == n and mean == pytest.approx(y.astype(np.float64).mean(), rel=1e-12)
    assert std == pytest.approx(y.astype(np.float64).std(), rel=1e-10)
    assert initial_state("squared", {}, ds) == (pytest.approx(mean), pytest.approx(std))
    b0, sigma = initial_state("logistic", {-1.0: 300, 1.0: 100}, ds)
    assert b0 == pytest.approx(np.log(100 / 300)) and sigma == 1.0
    shares, _ = initial_state("softmax", {0.0: 10, 1.0: 30, 2.0: 60}, ds)
    p = np.exp(shares) / np.exp(shares).sum()
    np.testing.assert_allclose(p, [0.1, 0.3, 0.6], rtol=1e-12)


def test_a_warm_start_keeps_the_source_target_scale(rng, tmp_path):
    """The accumulators a warm start carries over are in the source's target units: the new
    run keeps its target scale whatever its own labels' spread."""
    indptr, indices, values, labels, _ = make_rows(rng, 1000, loss="squared")
    src = write(tmp_path / "a.parquet", indptr, indices, values, labels)
    wide = write(tmp_path / "b.parquet", indptr, indices, values, (labels * 1000.0).astype(np.float32))
    a = streamhog.train(src, tmp_path / "ma", loss="squared", epochs=1, threads=1, quiet=True)
    sigma = a.meta["hyper_parameters"]["target_scale"]
    assert sigma == pytest.approx(np.std(labels.astype(np.float64)), rel=1e-5)
    b = streamhog.train(wide, tmp_path / "mb", loss="squared", epochs=1, threads=1, quiet=True, warm_start=a.path)
    assert b.meta["hyper_parameters"]["target_scale"] == sigma
    fresh = streamhog.train(wide, tmp_path / "mc", loss="squared", epochs=1, threads=1, quiet=True)
    assert fresh.meta["hyper_parameters"]["target_scale"] == pytest.approx(1000.0 * sigma, rel=1e-5)
