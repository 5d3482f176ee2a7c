"""One epoch of the training kernel over blocks already in memory: the ceiling that
streaming feeds (no decoding, no I/O), with the trainer's block and row orders, step
counter and per-thread claims."""
from __future__ import annotations

import threading
import time

import numpy as np


def load_blocks(path):
    """Every block of a dataset, in memory, as streamhog's readers decode them."""
    from streamhog import open_dataset

    ds = open_dataset(path)
    reader = ds.open_reader()
    blocks = [reader.read(k) for k in range(ds.n_blocks)]
    reader.close()
    return ds, blocks


def kernel_epoch(blocks: list, n_features: int, threads: int, optimizer: str | None = None, seed: int = 0,
                 hot_features: int | str = "auto") -> dict:
    """Train one epoch of ``blocks`` with ``threads`` Hogwild! threads and the default
    hyper-parameters of ``optimizer`` (None: the default optimizer); returns the seconds (the
    threads' work only: compiling and the row permutations come before the clock), rows, nnz,
    the progressive train loss and the trained arrays (hot coordinates stored back in them).
    ``hot_features`` as the trainer takes it (training/hot.py): rows are rearranged per
    block by the consumer threads, inside the clock, as the trainer does."""
    from streamhog.io.stream import block_order
    from streamhog.kernels.block import ModelArrays, UpdateRule, train_block
    from streamhog.kernels.linear import CONSTANT, INVSCALING
    from streamhog.kernels.losses import LOSS_IDS
    from streamhog.kernels.optimizers import OPTIMIZER_IDS
    from streamhog.model.directory import OPTIMIZER_STATE, RECORD_DTYPE, uses_records
    from streamhog.training.config import TrainConfig

    from streamhog.kernels.hot import HotSet
    from streamhog.training.hot import hot_limit

    cfg = TrainConfig(seed=seed, threads=threads, hot_features=hot_features,
                      **({"optimizer": optimizer} if optimizer else {})).resolved()
    hot = None
    limit, share = hot_limit(cfg)
    if limit:
        rows, sample = 0, []
        for b in blocks:  # the trainer's sample: the first blocks' ids
            sample.append(b.indices)
            rows += b.n_rows
            if rows >= 200_000:
                break
        ids, counts = np.unique(np.concatenate(sample), return_counts=True)
        hot = HotSet.from_counts(ids.astype(np.int64), counts, rows, limit, share, n_features)
    schedule = INVSCALING if cfg.lr_schedule == "invscaling" else CONSTANT
    order = block_order(len(blocks), epoch=0, seed=cfg.seed).tolist()
    perms = {k: np.random.default_rng([cfg.seed, 0, k]).permutation(blocks[k].n_rows) for k in order}
    arrays = ModelArrays.zeros(n_features, len(OPTIMIZER_STATE[cfg.optimizer]))
    if uses_records(cfg.optimizer, cfg.loss, "float32"):  # the layout a new model file has (format 2)
        rec = np.zeros(n_features, RECORD_DTYPE)
        arrays = ModelArrays(rec["w"], rec["acc"], rec["scale"], arrays.bstate)
    stored = None
    if hot is not None:
        from streamhog.training.hot import HotCoordinates

        stored = HotCoordinates(hot, cfg.optimizer)  # the shared values in the units the kernel expects
        arrays = ModelArrays(arrays.w, arrays.acc, arrays.aux, arrays.bstate, hot=stored.values)
    rule = UpdateRule.for_threads(threads, OPTIMIZER_IDS[cfg.optimizer], LOSS_IDS[cfg.loss], schedule,
                                  power_t=cfg.power_t, l1=cfg.l1, l2=cfg.l2, beta=cfg.smoothing)

    per_thread: dict = {}

    def buffers(ident):  # each consumer thread reuses its own split buffers, as the trainer's
        return per_thread.setdefault(ident, {})

    def train(k: int, t0: int):
        b = blocks[k]
        if hot is None:
            return train_block(b, perms[k], arrays, rule, lr=cfg.lr, t0=t0)
        indices, values, hot_count = hot.split(b.indptr, b.indices, b.values, buffers(threading.get_ident()))
        return train_block(b, perms[k], arrays, rule, lr=cfg.lr, t0=t0, indices=indices, values=values,
                           hot_count=hot_count)

    train(order[0], 0)  # warm-up: loads the numba cache (or compiles) before timing
    for arr in (arrays.w, arrays.acc, arrays.aux, arrays.bstate, arrays.hot):
        arr[:] = 0.0
    claim = threading.Lock()
    state = {"next": 0, "step": 0, "loss": 0.0, "weight": 0.0}

    def consumer():
        while True:
            with claim:  # one claim per block, like the trainer's step counter
                if state["next"] >= len(order):
                    return
                k = order[state["next"]]
                state["next"] += 1
                t0 = state["step"]
                state["step"] += blocks[k].n_rows
            result = train(k, t0)
            with claim:
                state["loss"] += result.loss_sum
                state["weight"] += result.weight_sum

    workers = [threading.Thread(target=consumer) for _ in range(threads)]
    start = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    seconds = time.perf_counter() - start
    if stored is not None:
        stored.store(arrays.w, arrays.acc, arrays.aux)
    return {"seconds": seconds, "hot_features": 0 if hot is None else len(hot), "rows": sum(b.n_rows for b in blocks), "nnz": sum(b.nnz for b in blocks),
            "train_loss": state["loss"] / max(state["weight"], 1e-300), "arrays": arrays}


def test_logloss(arrays, test_blocks: list) -> float:
    """The logloss of a vector model's in-memory arrays on test blocks."""
    from streamhog.kernels.predict import batch_margins
    from streamhog.model.metrics import MetricAccumulator

    acc = MetricAccumulator("logistic")
    for b in test_blocks:
        acc.update(batch_margins(b, arrays.w, float(arrays.bstate[0])), b.labels, b.weights)
    return acc.result()["logloss"]
