"""The training layer: a training job and its run, from the data to a finished model.

``job.py`` sets a job up — new, resumed or warm-started — and ``train`` is its entry;
``run.py`` runs the epochs (checkpoints, scoring, early stopping, stop and rollback);
``engine.py`` trains one epoch with Hogwild! consumer threads; ``control.py`` is how those
threads pause and stop; ``state.py`` the run's progress; ``checkpoint.py`` its records;
``copies.py`` the crash-safe copies (best epoch, snapshots); ``early_stopping.py`` the
holdout and when to stop; ``config.py`` the hyper-parameters; ``signals.py`` Ctrl-C and
SIGTERM; ``warm_start.py`` a run that starts from another model.
"""
