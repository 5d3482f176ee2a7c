#!/usr/bin/env python3
"""Implicit feedback (``--feedback implicit``): its defaults chosen on a panel, and its top-N
quality against baselines.

The panel: MovieLens latest-small (benchmarks/factorization.py's 80/20 split; every training
rating an interaction, a test pair relevant when rated >= 4) and three synthetic sets from a
known model, each user picking items with probability proportional to exp(its true
preference) — Gumbel top-k — the first picks for training, the next five held out (all
relevant):

- ``picks``: 5,000 users x 2,000 items, true rank 8, 30 picks each;
- ``long-tail``: 20,000 users x 10,000 items, rank 16, Zipf-like item popularity, 10 picks;
- ``dense``: 1,000 users x 500 items, rank 4, 100 picks.

A run trains on the training picks (defaults otherwise: 10% holdout, early stopping on its
logistic loss) and is scored by ``ranking_metrics`` (top 10, training pairs excluded).

    python benchmarks/mf_implicit.py --sweep      # the grid: worst regret of ndcg@10 over the panel
    python benchmarks/mf_implicit.py              # the defaults against popularity (and `implicit`'s BPR)

``--publish`` appends the report to benchmarks/mf_implicit.md (each section says its command).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common.metering import machine_info  # noqa: E402
from common.paths import OUTPUT  # noqa: E402

DATA = OUTPUT / "mf-implicit"
SETS = {"picks": dict(n_users=5000, n_items=2000, rank=8, picks=30, zipf=0.0, seed=11),
        "long-tail": dict(n_users=20000, n_items=10000, rank=16, picks=10, zipf=1.0, seed=12),
        "dense": dict(n_users=1000, n_items=500, rank=4, picks=100, zipf=0.0, seed=13)}
HELD = 5
GRID = {"negatives": [2, 4, 8], "lr": [0.05, 0.1, 0.2], "l2": [0.005, 0.02, 0.05]}


def synthetic(name: str) -> tuple[Path, Path, None]:
    """A set of SETS, written once (bounded memory: users in chunks of 1,000)."""
    from streamhog.factorization import write_interactions

    d = DATA / name
    if not (d / "test.parquet").exists():
        spec = SETS[name]
        rng = np.random.default_rng(spec["seed"])
        nu, ni, k = spec["n_users"], spec["n_items"], spec["rank"]
        U = rng.normal(0, 1.0, (nu, k)) / np.sqrt(k) * 2.0
        V = rng.normal(0, 1.0, (ni, k))
        pop = -spec["zipf"] * np.log1p(rng.permutation(ni)) if spec["zipf"] else rng.normal(0, 0.5, ni)
        tr, te = [], []
        for lo in range(0, nu, 1000):
            truth = U[lo:lo + 1000] @ V.T + pop
            picks = np.argsort(-(truth + rng.gumbel(size=truth.shape)), axis=1)[:, :spec["picks"] + HELD]
            users = np.arange(lo, lo + len(truth))[:, None]
            tr.append(np.stack(np.broadcast_arrays(users, picks[:, :spec["picks"]]), -1).reshape(-1, 2))
            te.append(np.stack(np.broadcast_arrays(users, picks[:, spec["picks"]:]), -1).reshape(-1, 2))
        d.mkdir(parents=True, exist_ok=True)
        for split, pairs in (("train", np.concatenate(tr)), ("test", np.concatenate(te))):
            order = np.random.default_rng(0).permutation(len(pairs))  # rows in no user order
            write_interactions(d / f"{split}.parquet", pairs[order, 0].astype(np.uint32),
                               pairs[order, 1].astype(np.uint32))
    return d / "train.parquet", d / "test.parquet", None


def panel() -> dict:
    """name -> (train, test, the relevance threshold)."""
    from factorization import movielens

    tr, te = movielens(OUTPUT / "mf-bench")
    return {"movielens": (tr, te, 4.0), **{n: synthetic(n) for n in SETS}}


def run(train, test, relevant, threads: int, **opts) -> dict:
    from streamhog.factorization import train_mf
    from streamhog.factorization.ranking import ranking_metrics

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        m = train_mf(train, Path(tmp) / "m", feedback="implicit", threads=threads, **opts)
        secs = time.perf_counter() - start
        out = ranking_metrics(m, test, top=10, exclude=train, relevant=relevant, threads=threads)
        out.update(seconds=secs, epochs=len(m.history), kept=m.meta["training"]["best_epoch"])
        del m
    return out


def popularity(train, test, relevant) -> dict:
    """The most-interacted items, training pairs excluded, scored as ranking_metrics does (a
    model whose item biases are the log counts and whose factors are zero: same order)."""
    import pyarrow.parquet as pq

    from streamhog.factorization import MFModel
    from streamhog.factorization.ranking import ranking_metrics

    t = pq.read_table(train)
    users, items = t.column("user").to_numpy(), t.column("item").to_numpy()
    counts = np.bincount(items.astype(np.int64))
    with tempfile.TemporaryDirectory() as tmp:
        m = MFModel.create(Path(tmp) / "pop", n_users=int(users.max()) + 1, n_items=len(counts), rank=1,
                           optimizer="sgd")
        seen = counts > 0
        m.arrays["item_factors"][seen, 0] = 1e-30  # started: a candidate (the factor adds nothing)
        m.arrays["item_bias"][:] = np.log1p(counts)
        m.flush()
        out = ranking_metrics(MFModel.open(Path(tmp) / "pop"), test, top=10, exclude=train, relevant=relevant)
        del m
    return out


def bpr(train, test, relevant, threads: int) -> dict | None:
    """The `implicit` package's BPR (its defaults: 100 factors, lr 0.01, reg 0.01, 100
    iterations), when it is installed, scored the same way."""
    try:
        from implicit.bpr import BayesianPersonalizedRanking
    except ImportError:
        return None
    import pyarrow.parquet as pq
    import scipy.sparse as sp

    from streamhog.factorization import MFModel
    from streamhog.factorization.ranking import ranking_metrics

    t = pq.read_table(train)
    users, items = t.column("user").to_numpy().astype(np.int64), t.column("item").to_numpy().astype(np.int64)
    nu, ni = users.max() + 1, items.max() + 1
    X = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(nu, ni))
    X.data[:] = 1.0
    model = BayesianPersonalizedRanking(num_threads=threads, random_state=0)
    start = time.perf_counter()
    model.fit(X, show_progress=False)
    secs = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:  # its factors in a streamhog model: the same ranking code
        f = model.user_factors.shape[1]
        m = MFModel.create(Path(tmp) / "bpr", n_users=nu, n_items=ni, rank=f, optimizer="sgd")
        m.arrays["user_factors"][:] = model.user_factors
        Q = np.asarray(model.item_factors).copy()
        Q[np.bincount(items, minlength=ni) == 0] = 0  # items never seen: not candidates
        m.arrays["item_factors"][:] = Q
        m.flush()
        out = ranking_metrics(MFModel.open(Path(tmp) / "bpr"), test, top=10, exclude=train, relevant=relevant)
        del m
    out["seconds"] = secs
    return out


def sweep(threads: int, grid: dict) -> list[str]:
    sets = panel()
    configs = [dict(zip(grid, v)) for v in itertools.product(*grid.values())]
    table = {}
    for c in configs:
        for name, (tr, te, rel) in sets.items():
            table[(json.dumps(c), name)] = run(tr, te, rel, threads, **c)["ndcg@10"]
            print(c, name, round(table[(json.dumps(c), name)], 4), file=sys.stderr, flush=True)
    best = {n: max(table[(json.dumps(c), n)] for c in configs) for n in sets}
    rows = []
    for c in configs:
        regrets = {n: 1 - table[(json.dumps(c), n)] / best[n] for n in sets}
        rows.append((max(regrets.values()), c, regrets))
    rows.sort(key=lambda r: r[0])
    lines = ["| negatives | lr | l2 | worst regret | " + " | ".join(sets) + " |",
             "|---:|---:|---:|---:|" + "---:|" * len(sets)]
    for worst, c, regrets in rows:
        lines.append(f"| {c['negatives']} | {c['lr']:g} | {c['l2']:g} | {worst:.1%} | "
                     + " | ".join(f"{table[(json.dumps(c), n)]:.4f}" for n in sets) + " |")
    return lines


def compare(threads: int) -> list[str]:
    lines = ["| set | recommender | precision@10 | recall@10 | ndcg@10 | map@10 | hit rate | seconds | epochs (kept) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, (tr, te, rel) in panel().items():
        rows = [("streamhog, --feedback implicit (defaults)", run(tr, te, rel, threads)),
                ("most interacted items", popularity(tr, te, rel))]
        if (b := bpr(tr, te, rel, threads)) is not None:
            rows.append(("implicit's BPR (its defaults)", b))
        for label, m in rows:
            cells = [name, label] + [f"{m[k + '@10']:.4f}" for k in ("precision", "recall", "ndcg", "map")]
            cells += [f"{m['hit_rate@10']:.3f}", f"{m['seconds']:.2f}" if "seconds" in m else "",
                      f"{m['epochs']} ({m['kept']})" if "epochs" in m else ""]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    for k, v in GRID.items():
        ap.add_argument(f"--{k}", default=",".join(map(str, v)), help=f"the sweep's values (default {v})")
    ap.add_argument("--publish", action="store_true")
    a = ap.parse_args(argv)
    info = machine_info()
    git = info["git"]
    grid = {k: [type(v[0])(x) for x in getattr(a, k).split(",")] for k, v in GRID.items()}
    args = " ".join(sys.argv[1:] if argv is None else argv)
    head = (f"`python benchmarks/mf_implicit.py {args}` at streamhog {git['commit']}"
            f"{' (with uncommitted changes)' * bool(git['uncommitted_engine_changes'])}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {info['nproc']} cores ({info['cpu']}), "
            f"{a.threads} threads (Hogwild!: a run is not repeatable to the last digit).")
    if a.sweep:
        body = ["## The sweep: ndcg@10 by set, and each configuration's worst regret (1 - its ndcg / the set's best)",
                "", head, "", *sweep(a.threads, grid)]
    else:
        body = ["## The defaults against baselines (top 10, training pairs excluded)", "", head, "", *compare(a.threads)]
    report = "\n".join(body) + "\n"
    print(report)
    if a.publish:
        path = HERE / "mf_implicit.md"
        old = path.read_text() if path.exists() else "# Implicit feedback (`--feedback implicit`)\n"
        path.write_text(old.rstrip() + "\n\n" + report)  # sections accumulate: each run says its command
    return 0


if __name__ == "__main__":
    sys.exit(main())
