#!/usr/bin/env python3
"""Test RMSE on MovieLens over several seeds: streamhog against Surprise's SVD (issue 19, item 3).

    python benchmarks/mf_seeds.py [--seeds 5] [--publish]

benchmarks/factorization.py compares one run of streamhog (seed 0) with Surprise's seeds 0
and 1; the two systems' seed-to-seed spread (about 0.002 RMSE for Surprise) is as large as
the gap between them. This runs the same configuration, rank 100, 20 epochs, every row every
epoch (Surprise SVD's defaults; streamhog `--fixed`), for seeds 0..N-1 of each (streamhog
with 1 and 2 threads; the seed sets the factors' start and the rows' order, as Surprise's
sets its start and shuffles), on the issue's split (numpy.random.default_rng(0).permutation,
first fifth test), and reports each seed's test RMSE and their mean, min and max. RMSE only:
no timing, so the machine's load does not matter. Every run is a
``python benchmarks/mf_workers.py KIND ...`` process; ``--publish`` writes
benchmarks/mf_seeds.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common.metering import check, last_json, machine_info, measure  # noqa: E402
from common.paths import OUTPUT, PY  # noqa: E402
from factorization import movielens  # noqa: E402

WORKERS = str(HERE / "mf_workers.py")
SIDES = {
    "Surprise SVD, rank 100, 20 epochs": ["surprise", "--rank", "100", "--epochs", "20"],
    "streamhog, rank 100, 20 epochs, 1 thread": ["streamhog", "--rank", "100", "--epochs", "20", "--threads", "1",
                                                  "--fixed"],
    "streamhog, rank 100, 20 epochs, 2 threads": ["streamhog", "--rank", "100", "--epochs", "20", "--threads", "2",
                                                   "--fixed"],
    # per-coordinate AdaGrad, the default optimizer until rowwise-adagrad (strata: deterministic per seed)
    "streamhog, rank 100, 20 epochs, 2 threads, --optimizer adagrad": [
        "streamhog", "--rank", "100", "--epochs", "20", "--threads", "2", "--fixed", "--optimizer", "adagrad"],
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--publish", action="store_true", help="write benchmarks/mf_seeds.md")
    args = ap.parse_args(argv)
    data = OUTPUT / "mf-bench"
    train, test = movielens(data)
    machine = machine_info()
    rmse: dict[str, list[float]] = {name: [] for name in SIDES}
    commands = []
    for seed in range(args.seeds):
        for name, (kind, *opts) in SIDES.items():
            cmd = [PY, WORKERS, kind, str(train), str(test), *opts, "--seed", str(seed), "--workdir", str(data)]
            commands.append(cmd[1:])
            r = last_json(check(measure(cmd), name).stdout)
            rmse[name].append(r["test_rmse"])
            print(f"seed {seed}: {name}: {r['test_rmse']:.4f}", file=sys.stderr, flush=True)
    lines = ["| run | " + " | ".join(f"seed {s}" for s in range(args.seeds)) + " | mean | min | max |",
             "|---|" + "---:|" * (args.seeds + 3)]
    for name, v in rmse.items():
        lines.append(f"| {name} | " + " | ".join(f"{x:.4f}" for x in v)
                     + f" | **{statistics.mean(v):.4f}** | {min(v):.4f} | {max(v):.4f} |")
    ref = statistics.mean(rmse["Surprise SVD, rank 100, 20 epochs"])
    verdicts = [f"- {name}: mean {statistics.mean(v):.4f} against Surprise's {ref:.4f}: "
                + ("**not worse**" if statistics.mean(v) <= ref else "**worse**")
                for name, v in rmse.items() if name.startswith("streamhog")]
    table = "\n".join(lines)
    print(table)
    print("\n".join(verdicts))
    out = {"machine": machine, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seeds": args.seeds, "rmse": rmse,
           "commands": commands}
    (OUTPUT / "mf_seeds.json").write_text(json.dumps(out, indent=1) + "\n")
    if args.publish:
        (HERE / "mf_seeds.md").write_text(
            "# MovieLens test RMSE over seeds: streamhog and Surprise's SVD\n\n"
            f"`python benchmarks/mf_seeds.py --seeds {args.seeds} --publish` at streamhog {machine['git']['commit']}, "
            f"{out['date']}. ml-latest-small, the issue's split (80,669 train / 20,167 test ratings); rank 100, 20 "
            "epochs, every row every epoch (Surprise SVD's defaults; streamhog `--fixed`: no holdout, no early "
            "stopping, its other hyper-parameters at their defaults); seed s for each run (streamhog: the factors' "
            "start and the rows' order). Test RMSE:\n\n" + table + "\n\n" + "\n".join(verdicts) + "\n\n"
            "streamhog's defaults run (holdout, early stopping, rank 64) on this split is in "
            "benchmarks/factorization.md.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
