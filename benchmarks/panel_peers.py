"""The references of the quality panel, scored as `streamhog evaluate` scores streamhog
(streamhog.metrics): Vowpal Wabbit with its defaults, an exact solver (scikit-learn) with its
regularization picked by the best *test* score (a bound, not a fair competitor), and the
constant predictor (the training base rate, or the mean target).

The score each target compares is the loss's own: logloss (logistic, softmax) or rmse
(squared); lower is better.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from panel_data import load_xy

PY = sys.executable
VW_BITS = 24
SCORE = {"logistic": "logloss", "softmax": "logloss", "squared": "rmse"}


def metrics(loss: str, labels: np.ndarray, pred: np.ndarray) -> dict:
    """Scores of raw margins (logistic), predictions (squared) or class probabilities (softmax)."""
    from streamhog.model.metrics import MetricAccumulator

    if loss == "softmax":
        p = np.clip(pred / pred.sum(axis=1, keepdims=True), 1e-15, 1.0)
        y = labels.astype(np.int64)
        return {"logloss": float(-np.mean(np.log(p[np.arange(len(y)), y]))),
                "accuracy": float(np.mean(p.argmax(axis=1) == y)), "n_examples": len(y)}
    acc = MetricAccumulator(loss)
    acc.update(np.asarray(pred, np.float64), labels.astype(np.float32))
    return acc.result()


# -- Vowpal Wabbit ------------------------------------------------------------------------------------

def vw_run(train_vw: Path, test_vw: Path, test_labels: np.ndarray, loss: str, work: Path, passes: int = 1,
           n_classes: int | None = None, extra=()) -> dict:
    """`vw -d TRAIN` with its defaults (adaptive, normalized, invariant updates, lr 0.5) and
    `--loss_function`, `-b 24`; more than one pass from a fresh cache with `--holdout_off`
    (every row trains, as the issue's VW columns). Then `-t` on TEST: raw margins (-r) for
    logistic, predictions (-p, VW's own clipping) for squared; for --oaa (trained with
    `--probabilities`) each class's sigmoid of its raw margin, normalized (as VW's
    --probabilities)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    opts = ["--loss_function", "logistic" if loss != "squared" else "squared", "-b", VW_BITS, *extra]
    if loss == "softmax":
        opts += ["--oaa", n_classes, "--probabilities"]
    if passes > 1:
        opts += ["--passes", passes, "--cache_file", work / "cache", "-k", "--holdout_off"]
    t = time.perf_counter()
    _vw("-d", train_vw, "-f", work / "model.vw", "--quiet", *opts)
    train_s = time.perf_counter() - t
    out = work / "pred.txt"
    flag = "-p" if loss == "squared" else "-r"
    _vw("-d", test_vw, "-t", "-i", work / "model.vw", flag, out, "--quiet")
    if loss == "softmax":
        # Raw one-against-all margins, each class's sigmoid normalized to sum 1 (what
        # --probabilities prints, at full precision).
        raw = np.array([[float(tok.split(":")[1]) for tok in line.split()] for line in out.read_text().splitlines()])
        pred = 1.0 / (1.0 + np.exp(-raw))
    else:
        pred = np.loadtxt(out, usecols=0, ndmin=1)
    shutil.rmtree(work)
    return {**metrics(loss, test_labels, pred), "train_s": train_s}


def _vw(*args) -> None:
    p = subprocess.run([PY, "-m", "vowpalwabbit", *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"vw {' '.join(map(str, args))} failed:\n{p.stderr[-2000:]}")


# -- exact solvers and the constant -------------------------------------------------------------------

C_GRID = tuple(10.0 ** np.arange(-2, 5.01, 1.0))


def exact(loss: str, train: Path, test: Path, grid=C_GRID) -> dict:
    """scikit-learn's L2-regularized solver (LogisticRegression lbfgs, multinomial for
    softmax; Ridge for squared) over ``grid`` (C, or alpha = 1/C), on the raw features and on
    features scaled by their max |x| (MaxAbsScaler); the best test score of all (a reference
    bound: the regularization is chosen on the test split)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import MaxAbsScaler

    X, y = load_xy(train)
    Xt, yt = load_xy(test, X.shape[1])
    best = None
    colmax = abs(X).max(axis=0).toarray().ravel()
    colmax = colmax[colmax > 0]
    # Columns whose scales differ by more than 100x (counts, mixed scales) make the raw
    # problem too ill-conditioned for lbfgs to converge: there, the scaled one only.
    preps = ("raw", "maxabs") if colmax.max() <= 100 * colmax.min() else ("maxabs",)
    for prep in preps:
        if prep == "maxabs":
            sc = MaxAbsScaler().fit(X)
            Xa, Xb = sc.transform(X), sc.transform(Xt)
        else:
            Xa, Xb = X, Xt
        for c in grid:
            if loss == "squared":
                m = Ridge(alpha=1.0 / c).fit(Xa, y)
                pred = m.predict(Xb)
            else:
                m = LogisticRegression(C=c, max_iter=2000, tol=1e-6).fit(Xa, y if loss == "softmax" else y > 0)
                pred = m.predict_proba(Xb) if loss == "softmax" else m.decision_function(Xb)
            r = metrics(loss, yt, pred)
            if best is None or r[SCORE[loss]] < best[SCORE[loss]]:
                best = {**r, "C": float(c), "features": prep}
    return best


def references(p, work: Path, passes=(1, 3, 5), with_exact: bool = True) -> dict:
    """VW (1/3/5 passes), the exact solver and the constant of one panel dataset, cached in
    its directory (they do not depend on streamhog)."""
    import json

    cache = p.dir / "references.json"
    have = json.loads(cache.read_text()) if cache.exists() else {}
    key = f"vw {_vw_version()}, sklearn {_sklearn_version()}"
    if have.get("key") != key:
        have = {"key": key}
    d = p.dir
    _, yt = load_xy(d / "test.parquet")
    k = int(yt.max()) + 1 if p.loss == "softmax" else None
    for n in passes:
        if f"vw {n}" not in have:
            have[f"vw {n}"] = vw_run(d / "train.vw", d / "test.vw", yt, p.loss, work / "vw", n, k)
            cache.write_text(json.dumps(have, indent=1))
    if "constant" not in have:
        have["constant"] = constant(p.loss, d / "train.parquet", d / "test.parquet")
    if with_exact and "exact" not in have:
        t = time.perf_counter()
        have["exact"] = {**exact(p.loss, d / "train.parquet", d / "test.parquet"), "seconds": time.perf_counter() - t}
    cache.write_text(json.dumps(have, indent=1))
    return have


def _vw_version() -> str:
    p = subprocess.run([PY, "-m", "vowpalwabbit", "--version"], capture_output=True, text=True)
    return p.stdout.split()[0] if p.stdout else "?"


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def constant(loss: str, train: Path, test: Path) -> dict:
    """The best constant of the training split: base rate (logit), mean target, class shares."""
    _, y = load_xy(train)
    _, yt = load_xy(test)
    if loss == "softmax":
        k = int(max(y.max(), yt.max())) + 1
        share = (np.bincount(y.astype(np.int64), minlength=k) + 1e-9) / len(y)
        return metrics(loss, yt, np.tile(share, (len(yt), 1)))
    if loss == "squared":
        return metrics(loss, yt, np.full(len(yt), y.mean()))
    p = np.mean(y > 0)
    return metrics(loss, yt, np.full(len(yt), np.log(p / (1 - p))))
