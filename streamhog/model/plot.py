"""``streamhog plot MODEL --out curves.png``: a model's training history as a picture.

Two panels over the epochs of ``model.json``'s history: the training loss (progressive:
each example's loss before its update, the figure ``train`` prints per epoch) and the
figure early stopping watches (streamhog/losses.py: logloss, error rate, rmse or mae; a
factorization's rmse, or logloss under implicit feedback) on the holdout rows and on the
``--valid`` data, whichever the run scored. The epoch whose model
was kept (``training.best_epoch``) is marked on both. A model retrained on every row after
early stopping (training/refit.py: ``refit`` in model.json) is drawn from its first phase,
the one whose holdout chose the epochs, with the chosen epoch marked. matplotlib is the optional ``plot``
extra (``pip install 'streamhog[plot]'``); a clear error says so when it is missing. The
figure is drawn on a bare ``matplotlib.figure.Figure``: no pyplot state, no display needed.
"""
from __future__ import annotations

from pathlib import Path

from .._fs.atomic import atomic_output
from ..errors import MissingDependencyError, ModelError
from ..losses import get_loss, watched_score
from .directory import Model

#: Output formats matplotlib writes, by suffix.
FORMATS = ("png", "svg", "pdf", "jpg", "jpeg")


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("plotting needs matplotlib, which is not installed: "
                                     "pip install 'streamhog[plot]' (or pip install matplotlib)") from None
    return Figure


def history_curves(model) -> dict:
    """The numbers the plot draws: ``epochs``, ``train_loss``, ``holdout``/``valid`` (the
    watched figure per epoch, or absent), ``watched`` (its name) and ``best_epoch``."""
    if not isinstance(model, Model) and (mf := _factorization_curves(Path(model))) is not None:
        return mf
    m = model if isinstance(model, Model) else Model.open(model)
    refit = m.meta.get("refit") or {}
    history = refit.get("first_phase") or m.meta.get("history") or []
    if not history:
        raise ModelError(f"{m.path}: no epoch in the model's history yet: nothing to plot")
    best = refit.get("best_epoch") if refit else (m.meta.get("training") or {}).get("best_epoch")
    curves = {"epochs": [r["epoch"] for r in history], "train_loss": [r.get("train_loss") for r in history],
              "watched": get_loss(m.loss).watched, "best_epoch": best, "refit": bool(refit),
              "loss": m.loss, "path": str(m.path)}
    for key in ("holdout", "valid"):
        if any(key in r for r in history):
            curves[key] = [watched_score(m.loss, r.get(key)) for r in history]
    return curves


def _factorization_curves(path: Path) -> dict | None:
    """history_curves of a factorization model (streamhog/factorization: ``kind`` "mf" in its
    model.json, read here as JSON: this layer does not import that one); None for others.
    Its epochs record ``train_rmse`` and the holdout's ``rmse`` (implicit feedback:
    ``train_logloss``, ``logloss``)."""
    import json

    try:
        meta = json.loads((path / "model.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("kind") != "mf":
        return None
    history = meta.get("history") or []
    if not history:
        raise ModelError(f"{path}: no epoch in the model's history yet: nothing to plot")
    watched = "logloss" if meta.get("feedback") == "implicit" else "rmse"
    curves = {"epochs": [r["epoch"] for r in history], "train_loss": [r.get(f"train_{watched}") for r in history],
              "watched": watched, "best_epoch": (meta.get("training") or {}).get("best_epoch"), "refit": False,
              "loss": f"mf, {meta.get('feedback', 'explicit')} feedback", "path": str(path)}
    for key in ("holdout", "valid"):
        if any(key in r for r in history):
            curves[key] = [(r.get(key) or {}).get(watched) for r in history]
    return curves


def plot_history(model, out=None, *, overwrite: bool = False):
    """Draw ``model``'s training history (a model directory or a :class:`Model`); returns
    the matplotlib Figure, also written to ``out`` (png, svg, pdf, jpg by its suffix) when
    given; an existing ``out`` is replaced only with ``overwrite``."""
    figure_class = _figure_class()
    c = history_curves(model)
    fig = figure_class(figsize=(10, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    epochs = c["epochs"]
    left.plot(epochs, c["train_loss"], marker="o", color="tab:blue", label="train loss (progressive)")
    left.set_title(f"training loss ({c['loss']})")
    scored = [k for k in ("holdout", "valid") if k in c]
    colors = {"holdout": "tab:orange", "valid": "tab:green"}
    for key in scored:
        right.plot(epochs, c[key], marker="o", color=colors[key], label=f"{key} {c['watched']}")
    right.set_title(f"{c['watched']} per epoch" if scored else "no holdout or validation data was scored")
    best = c["best_epoch"]
    for ax in (left, right):
        if best is not None:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best} (kept)")
        ax.set_xlabel("epoch")
        ax.set_xticks(epochs if len(epochs) <= 20 else ax.get_xticks())
        ax.grid(alpha=0.3)
    if best is not None and scored:
        key = scored[0]
        right.plot([best], [c[key][epochs.index(best)]], marker="*", markersize=14, color="black", linestyle="none",
                   label=f"best {key} {c['watched']}")
    left.legend()
    if scored or best is not None:
        right.legend()
    fig.suptitle(Path(c["path"]).name + (f": the holdout's phase, then retrained on every row for {best} epoch(s)"
                                         if c["refit"] else ""))
    if out is not None:
        fmt = Path(str(out)).suffix.lower().lstrip(".") or "png"
        if fmt not in FORMATS:
            from ..errors import ConfigError

            raise ConfigError(f"{out}: the picture's format comes from its suffix: one of {', '.join(FORMATS)}")
        with atomic_output(out, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120)
    return fig
