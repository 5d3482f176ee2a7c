"""One more pass of a run over new data: what scikit-learn's ``partial_fit`` does.

A job (job.py) trains epochs over one dataset. :func:`train_pass` trains one pass over
whatever data it is given and continues the model in place: the weights, the optimizer's
per-coordinate state (AdaGrad's accumulators, FTRL's n and z), the intercept's state and the
step counter (the learning-rate schedule's t) carry over from the previous pass through the
checkpoint record, so a stream of batches trains as one run would. The pass count plays the
epoch's part: it seeds each pass's row order and the ``decay`` schedule.

A pass holds nothing out and never stops early (there is no earlier pass over the same rows
to compare with). The first pass creates the model; ``n_classes`` fixes K of a softmax model
then, since the first batch need not hold every class. A model trained by ``train`` (a
``fit``) continues the same way. The loss, optimizer and hashing cannot change between
passes (the state files belong to them); the step size and penalties may.
"""
from __future__ import annotations

import sys
from dataclasses import asdict

from ..errors import ConfigError, TrainingError
from ..io.formats import open_dataset
from ..io.formats.storage import local_model_dir
from ..io.summary import label_counts
from ..losses import CLASS_LABELS, get_loss
from ..model.directory import MAX_FEATURES, META, Model
from .checkpoint import has_checkpoint, read_checkpoint
from .config import TrainConfig
from .copies import ModelCopies
from .job import dataset_schema, starting_state
from .run import TrainingRun

#: What a pass may not change in a run (its state files and feature ids depend on them).
_FIXED = ("loss", "optimizer", "hash_bits")


def train_pass(data, model_dir, *, n_features: int | None = None, n_classes: int | None = None,
               quiet: bool = True, log=None, **hyper) -> Model:
    """Train one pass over ``data`` into ``model_dir``, continuing the run there (or starting
    one when ``model_dir`` holds no model); returns the model.

    ``hyper`` are :class:`TrainConfig` fields, as for ``train`` (``epochs``, ``holdout`` and
    ``early_stopping`` do not apply: a pass is one epoch over all its rows). ``n_features``
    and ``n_classes`` size a new model (default: the data's; K from the labels).
    """
    say = (lambda msg: None) if quiet else (log or (lambda msg: print(msg, file=sys.stderr)))
    model_dir = local_model_dir(model_dir)
    hyper = {k: v for k, v in hyper.items() if k not in ("epochs", "holdout", "early_stopping")}
    ds = open_dataset(data, require_labels=True)
    for note in getattr(ds, "notes", ()):
        say(note)
    if has_checkpoint(model_dir):
        model, state, saved = _continued(model_dir, ds, hyper, n_classes)
        hyper = {**saved, **hyper}
    else:
        model, state = _created(model_dir, ds, hyper, n_features, n_classes)
    cfg = TrainConfig(**{**hyper, "epochs": state.epoch + 1, "holdout": 0.0, "early_stopping": 0}).resolved()
    _check_labels(ds, cfg.loss, model.n_classes)
    run = TrainingRun(model, ds, cfg, state, data_schema=dataset_schema(ds), say=say)
    run.run(cfg.epochs)
    return Model.open(model_dir)


def _created(model_dir, ds, hyper: dict, n_features: int | None, n_classes: int | None):
    from .state import RunState

    cfg = TrainConfig(**hyper).resolved()
    if cfg.hash_bits is not None:
        n_features = 2 ** cfg.hash_bits
    n_features = max(ds.n_features, 1) if n_features is None else n_features
    if n_features < ds.n_features and cfg.hash_bits is None:
        raise TrainingError(f"{ds.path}: the data has {ds.n_features:,} features but n_features is {n_features:,}")
    if n_features > MAX_FEATURES:
        raise TrainingError(f"n_features {n_features:,} is above the maximum, 2^34")
    loss = get_loss(cfg.loss)
    counts = label_counts(ds, loss.distinct_labels_to_check) if loss.distinct_labels_to_check else {}
    if loss.head == "softmax" and n_classes is None:
        n_classes = get_loss(cfg.loss).n_classes(counts)
    if model_dir.exists() and any(model_dir.iterdir()):
        raise TrainingError(f"{model_dir}: exists and holds no streamhog run to continue")
    # normalized: the intercept at the first pass's constant predictor, the target's scale
    # from its labels (targets.py); kept in the run's config for the passes that follow.
    state = starting_state(cfg, counts, ds, n_classes if loss.head == "softmax" else None)
    hyper.update(target_scale=cfg.target_scale)
    model = Model.create(model_dir, n_features=n_features, loss=cfg.loss, optimizer=cfg.optimizer,
                         hash_bits=cfg.hash_bits, n_classes=n_classes if loss.head == "softmax" else None,
                         hyper_parameters=asdict(cfg), data=dataset_schema(ds))
    return model, state


def _continued(model_dir, ds, hyper: dict, n_classes: int | None):
    from .state import RunState

    if not (model_dir / META).is_file():
        raise TrainingError(f"{model_dir}: not a streamhog model")
    ModelCopies(model_dir).finish_interrupted()
    record, _ = read_checkpoint(model_dir)
    if record.get("status") in ("diverged", "restoring-best"):
        raise TrainingError(f"{model_dir}: the run's last status is {record['status']}: it cannot take another "
                            "pass (fit again, or resume it with streamhog train --resume)")
    saved = record["config"]
    for key in _FIXED:
        if key in hyper and hyper[key] != saved.get(key):
            raise ConfigError(f"{model_dir}: the run trains with {key} {saved.get(key)!r}; another pass cannot "
                              f"change it to {hyper[key]!r} (fit again to start a new run)")
    model = Model.open(model_dir, mode="r+")
    if n_classes is not None and model.n_classes is not None and n_classes != model.n_classes:
        raise ConfigError(f"{model_dir}: the model has {model.n_classes} classes, not {n_classes}")
    if ds.n_features > model.n_features and model.hash_bits is None:
        raise TrainingError(f"{ds.path}: the data has {ds.n_features:,} features, more than the model's "
                            f"{model.n_features:,}")
    state = RunState.from_record(record)
    # A pass starts clean: no blocks of another dataset half done, no early stopping to obey.
    state.done_blocks, state.stopped_early, state.best_epoch, state.best_score = [], False, None, None
    state.epoch_loss = state.epoch_weight = state.epoch_seconds = 0.0
    state.epoch_rows = state.epoch_nnz = 0
    return model, state, {k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__}


def _check_labels(ds, loss: str, n_classes: int | None) -> None:
    """Refuse labels the loss cannot take; unlike a whole run, a pass may see one class only."""
    spec = get_loss(loss)
    if not spec.distinct_labels_to_check:
        return
    counts = label_counts(ds, max_distinct=spec.distinct_labels_to_check)
    if spec.labels == CLASS_LABELS:
        bad = [v for v in counts if v != int(v) or not 0 <= v < n_classes]
        if bad:
            raise TrainingError(f"{ds.path}: label {bad[0]:g} is not a class id of this model (0..{n_classes - 1})")
        return
    problem = spec.label_problem(counts)
    if problem:
        raise TrainingError(f"{ds.path}: {problem}")
