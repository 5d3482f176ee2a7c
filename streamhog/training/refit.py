"""Retraining on every row for the epochs the holdout chose (issue 15, item 5).

Early stopping needs rows the model never trains on: by default 10% of them
(early_stopping.py). On large data that costs nothing worth having back; on small data it
costs accuracy (digits: -0.004; tf-idf text of 1,000 rows: test logloss 0.279 -> 0.269;
benchmarks/quality.md). So when the training data has at most ``REFIT_MAX_ROWS`` rows, a run
whose epochs were chosen by its holdout is followed by a second phase, as scikit-learn's
``refit``: the model is reset to its starting point and trained on every row (holdout 0, no
early stopping) for the number of epochs the first phase kept, with the same seed and
hyper-parameters. It costs at most the epochs again: seconds at that size. ``refit=False``
(``--no-refit``) keeps the first phase's model, ``refit=True`` asks for the second phase
whatever the size. Never with ``--valid`` (every row trains already), ``--warm-start`` (the
starting point is another model) or on a cluster (its data is large by nature).

Crash safety: the second phase begins with a checkpoint whose config is the second phase's,
whose state is a fresh run's and which says ``refit_zero_pending``; only then are the model
files zeroed (sparse-aware: data extents only) and the flag cleared at the next checkpoint,
which records the zeroed files' sizes and CRCs (training/safety.py) like any other. A run
killed at any point resumes exactly: before that checkpoint it is a finished first phase
whose refit is still to come (``pending``), after it a second phase that zeroes the files
again if the flag is still set. model.json keeps the first phase's history under ``refit``.
"""
from __future__ import annotations

from dataclasses import replace

from .early_stopping import EarlyStopping

REFIT_MAX_ROWS = 100_000


def resolve(cfg, n_rows: int, valid, warm_start, cluster: bool = False) -> None:
    """Decide ``cfg.refit`` (None: automatic) for a new run (``cluster``: trained by
    streamhog.cluster, never refitted)."""
    if (valid is not None or warm_start is not None or cluster or not cfg.holdout or not cfg.early_stopping
            or cfg.epochs < 2):
        cfg.refit = False
    elif cfg.refit is None:
        cfg.refit = n_rows <= REFIT_MAX_ROWS


def pending(cfg, state) -> bool:
    """A finished first phase whose retraining on every row has not begun."""
    finished = state.stopped_early or state.epoch >= cfg.epochs
    return bool(cfg.refit) and finished and not state.restoring and not state.refit_of


def begin(run, fresh) -> int:
    """Turn ``run`` (a TrainingRun whose first phase is complete) into the second phase;
    returns its epochs. ``fresh`` is a new run's RunState (the starting intercepts included)."""
    st, cfg = run.state, run.cfg
    epochs = st.best_epoch or st.epoch
    info = {"best_epoch": epochs, "holdout": cfg.holdout, "epochs": cfg.epochs, "history": st.history}
    run.cfg = run.engine.cfg = replace(cfg, epochs=epochs, holdout=0.0, early_stopping=0, refit=False)
    run.early = EarlyStopping(cfg.loss, 0, 0.0, False)
    fresh.refit_of, fresh.refit_zero_pending = info, True
    run.state = fresh
    run.bstate[:] = fresh.bstate
    run.model.meta["refit"] = {k: v for k, v in info.items() if k != "history"} | {"first_phase": st.history}
    run.checkpoint("running")  # from here a resume continues the second phase
    finish_zeroing(run)
    run.say(f"retraining on every row for {epochs} epoch(s), the number the holdout chose")
    return epochs


def finish_zeroing(run) -> None:
    """Zero the model files and the intercepts' state if the second phase has not done it yet."""
    from .._fs import sparse_files

    if not run.state.refit_zero_pending:
        return
    run.model.flush()
    for f, arr in run.model.file_maps():
        sparse_files.zero_data(f, arr.offset)  # the .npy header stays; the maps read zeros afterwards
    run.bstate[:] = run.state.bstate
    run.engine.load_hot()  # the hot coordinates' copies: zeros too (a checkpoint stores them)
    run.state.refit_zero_pending = False
    run.checkpoint("running")
