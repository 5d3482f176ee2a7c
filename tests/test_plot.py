"""``streamhog plot MODEL --out curves.png``: the picture shows model.json's history (train
loss, holdout/valid figure per epoch, the kept epoch marked), and without matplotlib the
command says how to install it."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import streamhog
from streamhog.cli import main
from streamhog.datasets import a9a
from streamhog.losses import watched_score

matplotlib = pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("plot")
    streamhog.convert(a9a("test"), d / "a.parquet")
    # every epoch runs (patience 10), then early stopping puts the best one back
    return streamhog.train(d / "a.parquet", d / "m", epochs=6, lr=1.0, early_stopping=10, threads=1, quiet=True,
                           valid=d / "a.parquet", holdout=0.2)


def test_the_command_draws_a_png(model, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert main(["plot", str(model.path), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["plot", str(model.path), "--out", str(out)]) == 1  # not replaced unless asked
    assert "already exists" in capsys.readouterr().err
    assert main(["plot", str(model.path), "--out", str(out), "--overwrite"]) == 0


def test_the_figure_holds_the_history(model):
    fig = streamhog.plot_history(model)
    train_ax, metric_ax = fig.axes
    history = model.meta["history"]
    epochs = [r["epoch"] for r in history]
    (train_line,) = [ln for ln in train_ax.get_lines() if ln.get_label().startswith("train loss")]
    assert list(train_line.get_xdata()) == epochs
    np.testing.assert_array_equal(train_line.get_ydata(), [r["train_loss"] for r in history])
    for key in ("holdout", "valid"):
        (line,) = [ln for ln in metric_ax.get_lines() if ln.get_label() == f"{key} logloss"]
        np.testing.assert_array_equal(line.get_ydata(), [watched_score("logistic", r[key]) for r in history])
    best = model.meta["training"]["best_epoch"]
    assert best is not None
    for ax in (train_ax, metric_ax):
        (mark,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("best epoch")]
        assert list(mark.get_xdata()) == [best, best]


def test_without_matplotlib_the_command_says_how_to_install_it(model, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["plot", str(model.path), "--out", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("streamhog plot: error: plotting needs matplotlib, which is not installed: "
                   "pip install 'streamhog[plot]' (or pip install matplotlib)")
    assert not (tmp_path / "c.png").exists()


def test_a_model_without_history_or_a_bad_suffix_is_refused(tmp_path, capsys, model):
    streamhog.Model.create(tmp_path / "empty", n_features=3, loss="logistic")
    assert main(["plot", str(tmp_path / "empty"), "--out", str(tmp_path / "c.png")]) == 1
    assert "no epoch in the model's history yet" in capsys.readouterr().err
    assert main(["plot", str(model.path), "--out", str(tmp_path / "c.gif")]) == 1
    assert "one of png, svg, pdf" in capsys.readouterr().err


def test_a_refitted_model_is_drawn_from_the_phase_that_chose_its_epochs(tmp_path):
    """Small data is retrained on every row after early stopping (training/refit.py): the
    picture shows the first phase's holdout curve and marks the epochs it chose."""
    streamhog.convert(a9a("test"), tmp_path / "a.parquet")
    m = streamhog.train(tmp_path / "a.parquet", tmp_path / "m", epochs=4, early_stopping=4, threads=1, quiet=True)
    first = m.meta["refit"]["first_phase"]
    fig = streamhog.plot_history(m)
    metric_ax = fig.axes[1]
    (line,) = [ln for ln in metric_ax.get_lines() if ln.get_label() == "holdout logloss"]
    np.testing.assert_array_equal(line.get_ydata(), [watched_score("logistic", r["holdout"]) for r in first])
    (mark,) = [ln for ln in metric_ax.get_lines() if ln.get_label().startswith("best epoch")]
    assert list(mark.get_xdata()) == [m.meta["refit"]["best_epoch"]] * 2
    assert "retrained on every row" in fig._suptitle.get_text()


@pytest.mark.parametrize("feedback", ["explicit", "implicit"])
def test_a_factorization_model_is_drawn_from_its_history(tmp_path, capsys, feedback):
    from streamhog.factorization import train_mf, write_interactions
    from streamhog.model.plot import history_curves

    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 60, 3000), rng.integers(0, 40, 3000)
    write_interactions(tmp_path / "r.parquet", u, i, (1 + (u * i) % 5).astype(np.float32))
    m = train_mf(tmp_path / "r.parquet", tmp_path / "m", rank=4, epochs=4, early_stopping=10, threads=1,
                 feedback=feedback)
    c = history_curves(tmp_path / "m")
    metric = "logloss" if feedback == "implicit" else "rmse"
    assert c["watched"] == metric and c["epochs"] == [1, 2, 3, 4]
    assert c["train_loss"] == [h[f"train_{metric}"] for h in m.history]
    assert c["holdout"] == [h["holdout"][metric] for h in m.history]
    assert c["best_epoch"] == m.meta["training"]["best_epoch"]
    assert main(["plot", str(tmp_path / "m"), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
