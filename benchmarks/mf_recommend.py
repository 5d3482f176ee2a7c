#!/usr/bin/env python3
"""Top-N recommendation from a factorization model: how good, how fast.

Quality, on benchmarks/factorization.py's MovieLens split (80/20, numpy.random.default_rng(0)):
train streamhog with its defaults (and, for context, at scikit-surprise's settings: rank 100,
20 epochs; and with implicit feedback, every training rating an interaction) on the training
four-fifths, then ``ranking_metrics`` (what ``streamhog evaluate
--top K --exclude train.parquet --relevant R`` prints): each test user's ``--top`` items with
the training pairs excluded, against its test pairs rated >= ``--relevant`` (precision,
recall, the share of users with at least one hit, ndcg, map; the script counts the same
figures itself from ``recommend``'s table and checks they agree). Beside it, two baselines that need no
model: the most rated items (popularity, the usual hard-to-beat one for top-N on MovieLens)
and items at random among the training items, each with the same exclusions.

Speed: ``recommend`` for every user of a synthetic model (``--users`` x ``--items``, rank
``--rank``, every row started) with 1 and 2 threads: scores per second (users x candidates /
time), medians of ``--repeats``.

    python benchmarks/mf_recommend.py [--top 10] [--repeats 3]

Prints a Markdown report; ``--publish`` writes it to benchmarks/mf_recommend.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common.metering import machine_info  # noqa: E402
from common.paths import OUTPUT  # noqa: E402


def movielens_split() -> tuple[Path, Path]:
    """factorization.py's split, made as it makes it when missing."""
    from factorization import movielens

    return movielens(OUTPUT / "mf-bench")


def _pairs(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    return (t.column("user").to_numpy().astype(np.int64), t.column("item").to_numpy().astype(np.int64),
            t.column("rating").to_numpy())


def hits(recs: dict, test: tuple, relevant: float, top: int) -> dict:
    """precision, recall, hit rate, ndcg and map at ``top`` over the test users with a relevant
    pair, as streamhog.factorization.ranking defines them (computed here for the baselines,
    and for streamhog's own recommendations as a check of ranking_metrics)."""
    tu, ti, tr = test
    rel = {}
    for u, i in zip(tu[tr >= relevant].tolist(), ti[tr >= relevant].tolist()):
        rel.setdefault(u, set()).add(i)
    got = {}
    for u, i in zip(recs["user"].tolist(), recs["item"].tolist()):
        got.setdefault(u, []).append(i)
    sums = dict.fromkeys(("precision", "recall", "hit_rate", "ndcg", "map"), 0.0)
    for u, want in rel.items():
        n, dcg, ap = 0, 0.0, 0.0
        for r, i in enumerate(got.get(u, [])[:top], start=1):
            if i in want:
                n += 1
                dcg += 1 / np.log2(r + 1)
                ap += n / r
        ideal = min(top, len(want))
        sums["precision"] += n / top
        sums["recall"] += n / len(want)
        sums["hit_rate"] += n > 0
        sums["ndcg"] += dcg / sum(1 / np.log2(r + 1) for r in range(1, ideal + 1))
        sums["map"] += ap / ideal
    return {k: v / len(rel) for k, v in sums.items()}


def baseline(kind: str, train: tuple, users: np.ndarray, top: int, seed: int = 0) -> dict:
    """Popularity (most rated in training) or random items, each user's training pairs excluded."""
    tu, ti, _ = train
    items = np.unique(ti)
    counts = np.bincount(ti)
    rng = np.random.default_rng(seed)
    seen = {}
    for u, i in zip(tu.tolist(), ti.tolist()):
        seen.setdefault(u, set()).add(i)
    ranked = items[np.lexsort((items, -counts[items]))]
    out = {"user": [], "item": []}
    for u in users.tolist():
        order = ranked if kind == "popular" else rng.permutation(items)
        picked = [i for i in order[:top + len(seen.get(u, ()))].tolist() if i not in seen.get(u, ())][:top]
        out["user"] += [u] * len(picked)
        out["item"] += picked
    return {k: np.asarray(v) for k, v in out.items()}


def quality(top: int, relevant: float, threads: int) -> list[tuple]:
    from streamhog.factorization import recommend, train_mf
    from streamhog.factorization.ranking import ranking_metrics

    train_path, test_path = movielens_split()
    train, test = _pairs(train_path), _pairs(test_path)
    users = np.unique(test[0][test[2] >= relevant])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, opts in (("streamhog, defaults", {}),
                           ("streamhog, rank 100, 20 epochs (Surprise's settings)",
                            dict(rank=100, epochs=20, holdout=0.0, early_stopping=0)),
                           ("streamhog, --feedback implicit (defaults; every rating an interaction)",
                            dict(feedback="implicit"))):
            model = train_mf(train_path, Path(tmp) / name.replace(" ", "_"), threads=threads, **opts)
            start = time.perf_counter()
            got = ranking_metrics(model, test_path, top=top, exclude=train_path, relevant=relevant, threads=threads)
            secs = time.perf_counter() - start
            check = hits(recommend(model, users, top=top, exclude=train_path, threads=threads), test, relevant, top)
            for k, v in check.items():  # the same figures by this script's own count
                assert abs(got[f"{k}@{top}"] - v) < 1e-9, (k, got, check)
            rows.append((name, check, secs))
    for kind, name in (("popular", "most rated items"), ("random", "random training items")):
        rows.append((name, hits(baseline(kind, train, users, top), test, relevant, top), None))
    return rows


def speed(n_users: int, n_items: int, rank: int, top: int, repeats: int) -> list[tuple]:
    from streamhog.factorization import MFModel, recommend

    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        m = MFModel.create(Path(tmp) / "m", n_users=n_users, n_items=n_items, rank=rank, optimizer="sgd")
        m.arrays["user_factors"][:] = rng.normal(0, 0.3, (n_users, rank)).astype(np.float32)
        m.arrays["item_factors"][:] = rng.normal(0, 0.3, (n_items, rank)).astype(np.float32)
        m.arrays["item_bias"][:] = rng.normal(0, 0.3, n_items).astype(np.float32)
        m.flush()
        m = MFModel.open(Path(tmp) / "m")
        recommend(m, np.arange(100), top=top, threads=1)  # compiled, pages in
        for threads in (1, 2):
            secs = []
            for _ in range(repeats):
                start = time.perf_counter()
                recommend(m, top=top, threads=threads)
                secs.append(time.perf_counter() - start)
            rows.append((threads, statistics.median(secs), min(secs), max(secs)))
        del m
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--relevant", type=float, default=4.0, help="a test rating at least this is a hit")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--publish", action="store_true")
    a = ap.parse_args(argv)
    info = machine_info()
    git = info["git"]
    lines = ["# Top-N recommendation (`streamhog recommend`)", "",
             f"`python benchmarks/mf_recommend.py{' '.join([''] + (argv or sys.argv[1:]))}` at streamhog "
             f"{git['commit']}{' (with uncommitted changes)' * bool(git['uncommitted_engine_changes'])}, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {info['nproc']} cores ({info['cpu']}), "
             "nothing else running. Training with two threads is not deterministic: the quality rows move "
             "in their third digit from run to run.", "",
             f"## Quality: MovieLens latest-small, top {a.top}, training pairs excluded", "",
             f"A hit: a test pair rated >= {a.relevant:g}. Over the test users with one.", "",
             "| recommender | precision | recall | users with a hit | ndcg | map | seconds (evaluate --top) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m, secs in quality(a.top, a.relevant, a.threads):
        lines.append(f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['hit_rate']:.3f} | {m['ndcg']:.4f} | "
                     f"{m['map']:.4f} | {'' if secs is None else f'{secs:.3f}'} |")
    lines += ["", f"## Speed: every user of a synthetic model, {a.users:,} users x {a.items:,} items, rank {a.rank}, "
              f"top {a.top}", "", "| threads | seconds (median; min-max) | M scores/s |", "|---:|---:|---:|"]
    for threads, med, lo, hi in speed(a.users, a.items, a.rank, a.top, a.repeats):
        lines.append(f"| {threads} | {med:.2f} ({lo:.2f}-{hi:.2f}) | {a.users * a.items / med / 1e6:.0f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if a.publish:
        (HERE / "mf_recommend.md").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
