#!/usr/bin/env python3
"""The factorization defaults on rating sets generated outside the panel (benchmarks/mf_sweep.py
chooses on the panel; these sets are not used to choose, only to check the choice).

    python benchmarks/mf_outside.py

Five sets of other shapes than the panel's, from a truth of seed 7 (the panel's is seed 1):
a real-valued target x100, a rank-40 truth in half stars, skewed popularity (users 1.0,
items 1.3), a 20,000-rating set, and 60,000 items of 1-10 scores. Each is trained with
``streamhog train --loss mf --threads 2`` (every option at its default but the one named)
for: the defaults, per-coordinate AdaGrad with its own defaults (the defaults before
rowwise-adagrad), and rowwise-adagrad at lr 0.07 (the choice on the four-set panel, before
dense40 joined it). Prints each set's test RMSE (epochs) and each run's worst excess over
the best of the three on a set; writes benchmarks/output/mf-outside.json. Data and models
go to benchmarks/output/mf-outside/.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common.paths import OUTPUT, PY  # noqa: E402

OUT = OUTPUT / "mf-outside"
SETS = {
    "real-x100": dict(n_users=20_000, n_items=3_000, n_obs=400_000, rank=6, scale="real", noise=0.5, mult=100.0),
    "rank40-half5": dict(n_users=5_000, n_items=2_000, n_obs=500_000, rank=40, scale="half5", noise=0.3),
    "skewed": dict(n_users=50_000, n_items=20_000, n_obs=500_000, rank=8, scale="stars5", noise=0.5,
                   user_skew=1.0, item_skew=1.3),
    "tiny": dict(n_users=2_000, n_items=500, n_obs=20_000, rank=4, scale="stars5", noise=0.5),
    "wide10": dict(n_users=8_000, n_items=60_000, n_obs=600_000, rank=15, scale="stars10", noise=0.4,
                   item_skew=0.6),
}
RUNS = {"defaults": [], "adagrad (its defaults)": ["--optimizer", "adagrad"], "rowwise-adagrad, lr 0.07": ["--lr", "0.07"]}
SEED = 7


def prepare(name: str, spec: dict) -> Path:
    from streamhog.factorization import write_interactions
    from streamhog.factorization.synthetic import low_rank_ratings, make_truth

    d = OUT / name
    if (d / "test.parquet").exists():
        return d
    spec = dict(spec)
    mult, n = spec.pop("mult", 1.0), spec.pop("n_obs")
    skews = {k: spec.pop(k) for k in ("user_skew", "item_skew") if k in spec}
    d.mkdir(parents=True, exist_ok=True)
    truth = make_truth(spec["n_users"], spec["n_items"], spec["rank"], seed=SEED, **skews)
    for fname, stream, m in (("train", 0, n), ("test", 1, n // 10)):
        parts = low_rank_ratings(spec["n_users"], spec["n_items"], m, rank=spec["rank"], scale=spec["scale"],
                                 noise=spec["noise"], seed=SEED, stream=stream, truth=truth)
        u, i, r = (np.concatenate(x) for x in zip(*parts))
        write_interactions(d / f"{fname}.parquet", u, i, (r * mult).astype(np.float32))
    return d


def main() -> int:
    results = {}
    for name, spec in SETS.items():
        d = prepare(name, spec)
        results[name] = {}
        for label, opts in RUNS.items():
            model = OUT / f"model-{name}"
            subprocess.run([PY, "-m", "streamhog", "train", str(d / "train.parquet"), "--loss", "mf", "--model",
                            str(model), "--overwrite", "--quiet", "--threads", "2", *opts], check=True)
            out = subprocess.run([PY, "-m", "streamhog", "evaluate", "--model", str(model), str(d / "test.parquet"),
                                  "--json"], capture_output=True, text=True, check=True)
            epochs = len(json.loads((model / "model.json").read_text())["history"])
            results[name][label] = {"rmse": json.loads(out.stdout)["rmse"], "epochs": epochs}
        print(name, ", ".join(f"{k} {v['rmse']:.4f} ({v['epochs']})" for k, v in results[name].items()), flush=True)
    for label in RUNS:
        excess = {n: r[label]["rmse"] / min(x["rmse"] for x in r.values()) - 1 for n, r in results.items()}
        worst = max(excess, key=excess.get)
        print(f"{label}: worst excess over the best of the three {100 * excess[worst]:.2f}% ({worst})")
    (OUTPUT / "mf-outside.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
