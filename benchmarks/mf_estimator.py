#!/usr/bin/env python3
"""MovieLens against scikit-surprise's SVD through the Python API (issue 19's 5x target).

Surprise's ``SVD().fit`` trains on ratings in process memory and writes nothing.
streamhog's ``HogwildRecommender().fit`` (streamhog.sklearn) is its counterpart: ratings in
arrays, a temporary model that lives in memory when it fits there (streamhog/_sklearn/
home.py), no fsync. ``train_mf`` (what ``streamhog train --loss mf`` runs), whose model is
durable on disk when it returns, is the context: benchmarks/factorization.md has its rows.

Every run is its own process (``mf_workers.py estimator|surprise|streamhog``), interleaved
and repeated as benchmarks/factorization.py does (its run_all and summarize): the timed
section is the fit (Surprise's Trainset, streamhog's arrays, built before it), after a
1,000-rating fit loaded numba's cached kernels. Same split, rank 100, 20 epochs, every row
every epoch, 2 threads.

    python benchmarks/mf_estimator.py [--repeats 5] [--publish]

Writes benchmarks/output/mf-estimator.{json,md}; --publish copies the Markdown to
benchmarks/mf_estimator.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common.metering import machine_info  # noqa: E402
from common.paths import OUTPUT, PY  # noqa: E402
from factorization import WORKERS, movielens, run_all, summarize  # noqa: E402

FIXED = ["--rank", 100, "--epochs", 20, "--threads", 2, "--fixed"]


def configs(data: Path) -> list[dict]:
    train, test = movielens(data)
    out = []

    def add(name, kind, *args):
        out.append({"section": "movielens", "name": name, "argv": [PY, WORKERS, kind, str(train), str(test)]
                    + [str(a) for a in args] + ["--workdir", str(data)]})

    for seed in (0, 1):
        add(f"Surprise SVD fit, rank 100, 20 epochs, seed {seed}", "surprise", "--rank", 100, "--epochs", 20,
            "--seed", seed)
    add("HogwildRecommender.fit, the default optimizer", "estimator", *FIXED)
    add("HogwildRecommender.fit, optimizer='sgd'", "estimator", *FIXED, "--optimizer", "sgd")
    add("HogwildRecommender.fit, optimizer='sgd', schedule='strata'", "estimator", *FIXED, "--optimizer", "sgd",
        "--schedule", "strata")
    add("train_mf (durable model on disk), optimizer sgd, schedule strata", "streamhog", *FIXED, "--optimizer", "sgd",
        "--schedule", "strata")
    return out


def markdown(result) -> str:
    m, rows = result["machine"], result["rows"]
    sur = [r for r in rows if r["name"].startswith("Surprise")]
    rate, best = statistics.median(r["rate"] for r in sur), min(r["test_rmse"] for r in sur)
    lines = ["# MovieLens through the Python API: HogwildRecommender against Surprise's SVD", "",
             f"`python benchmarks/mf_estimator.py --repeats {result['repeats']}` at streamhog {m['git']['commit']}"
             f"{' (uncommitted engine changes)' if m['git']['uncommitted_engine_changes'] else ''}, {m['date']}, "
             f"{m['nproc']} cores ({m['cpu']}), load average {m['load_avg_start'][0]:.1f} at the start; medians of "
             f"{result['repeats']} interleaved repeats, each run its own process (the module docstring says what is "
             "timed). MovieLens latest-small, the issue's split: 80,669 train / 20,167 test ratings; rank 100, "
             "20 epochs, every row every epoch, 2 threads.", "",
             "| run | timed s | M ratings/s (min-max) | / Surprise | test RMSE | model in memory |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        mem = {True: "yes", False: "no"}.get(r.get("in_memory"), "")
        lines.append(f"| {r['name']} | {r['seconds']:.3f} | {r['rate'] / 1e6:.2f} ({r['rate_min'] / 1e6:.2f}-"
                     f"{r['rate_max'] / 1e6:.2f}) | {r['rate'] / rate:.2f} | {r['test_rmse']:.4f} | {mem} |")
    lines += ["", f"Target (issue 19): >= 5x Surprise's ratings per second on 2 threads at a test RMSE <= {best:.4f} "
                  "(Surprise's best of two seeds)."]
    for r in rows:
        if r["name"].startswith("HogwildRecommender"):
            ok = r["rate"] / rate >= 5 and r["test_rmse"] <= best
            lines.append(f"- {r['name']}: {r['rate'] / rate:.2f}x at {r['test_rmse']:.4f}: "
                         f"{'met' if ok else '**missed**'}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--publish", action="store_true")
    args = p.parse_args(argv)
    data = OUTPUT / "mf-bench"
    data.mkdir(parents=True, exist_ok=True)
    machine, start = machine_info(), time.time()
    cfgs = configs(data)
    runs = run_all(cfgs, args.repeats)
    rows = summarize(cfgs, runs)
    for r in rows:
        r["in_memory"] = runs[r["name"]][-1].get("in_memory")
    result = {"machine": machine, "repeats": args.repeats, "rows": rows, "configs": cfgs, "runs": runs,
              "seconds": time.time() - start}
    text = markdown(result)
    (OUTPUT / "mf-estimator.json").write_text(json.dumps(result, indent=1, default=str))
    (OUTPUT / "mf-estimator.md").write_text(text)
    if args.publish:
        shutil.copy(OUTPUT / "mf-estimator.md", HERE / "mf_estimator.md")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
