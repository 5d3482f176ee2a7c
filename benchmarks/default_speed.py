#!/usr/bin/env python3
"""The default rule's speed against the AdaGrad default it replaced (issue 15, item 2: at least
0.8x end to end on the benchmark set).

    python benchmarks/default_speed.py [--rows 200000] [--repeats 5] [--threads 2]

On benchmarks/run.py's synthetic data (benchmarks/output/data-<rows>, reused or generated),
runs side by side, interleaved (the order alternates each repeat), for each optimizer:

* end to end: `streamhog train DATA --epochs E --optimizer X` (E = 1; and 5 with --holdout 0
  --early-stopping 0, the same work for both), and the defaults run (every option at its
  default but the optimizer: 5 epochs at most, a 10% holdout scored after each, early
  stopping; the two may stop after different epochs, so that case is compared per epoch
  trained: each clock divided by the run's epochs), timed as benchmarks/run.py times it (the
  process's wall time minus that of the same command on a 1,000-row twin: start-up), by the
  process's CPU time minus the twin's (less sensitive to other load on a shared machine), and
  by the trainer's own epoch clock (model.json history: read, decode, train);
* the kernel alone: benchmarks/workers.py's in-memory epoch (no I/O), wall and CPU time.

``--baseline-tree DIR`` adds a third side, "adagrad@base": AdaGrad end to end as the
streamhog checked out in DIR runs it (``git worktree add --detach DIR bd7261a``: the AdaGrad
of the day issue 15 set its target against), interleaved with the other two; the kernel
alone is not measured for it (its kernels' Python API differs). ``--previous-tree DIR`` adds
"normalized@previous" likewise: the normalized rule of another checkout (a change's parent),
end to end, so that a change of the rule is measured before and after in one run.

Medians and speed ratios (adagrad's time / normalized's) go to
benchmarks/output/default_speed.json and stdout.
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
from common.data import Data, prepare, streamhog_cmd  # noqa: E402
from common.metering import check, git_state, last_json, machine_info, measure  # noqa: E402
from common.paths import OUTPUT, PY  # noqa: E402

WORKERS = str(HERE / "workers.py")

OPTIMIZERS = ("adagrad", "normalized")


BASE = "adagrad@base"
PREVIOUS = "normalized@previous"
DEFAULTS = "defaults, per epoch"


def e2e(data: Data, work: Path, opt: str, epochs: int | None, threads: int, trees: dict) -> dict:
    """One ``streamhog train`` run; ``epochs`` None: the defaults (no --epochs, holdout or
    early-stopping option)."""
    shutil.rmtree(work, ignore_errors=True)
    extra = ("--holdout", 0, "--early-stopping", 0) if epochs is not None and epochs > 1 else ()
    extra += ("--epochs", epochs) if epochs is not None else ()
    cmd = streamhog_cmd("train", data.train_parquet, "--model", work, "--quiet",
                        "--optimizer", opt.split("@")[0], "--threads", threads, *extra)
    if opt in trees:  # the same command run by the streamhog checked out there
        cmd = ["env", f"PYTHONPATH={trees[opt]}", *cmd]
    p = check(measure(cmd), f"train {opt}")
    meta = json.loads((work / "model.json").read_text())
    shutil.rmtree(work)
    # A refit (small data: training/refit.py) keeps its first phase's epochs under "refit".
    history = meta.get("refit", {}).get("first_phase", []) + meta["history"]
    return {"wall_s": p.wall_s, "cpu_s": p.cpu_s, "engine_s": sum(h["seconds"] for h in history),
            "train_loss": meta["history"][-1]["train_loss"], "epochs": len(history)}


def kernel(data: Data, opt: str, threads: int) -> dict:
    p = check(measure([PY, WORKERS, "kernel", data.train_parquet, "--threads", threads, "--optimizer", opt]),
              f"kernel {opt}")
    return {"wall_s": p.wall_s, "cpu_s": p.cpu_s, "engine_s": last_json(p.stdout)["seconds"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline-tree", type=Path, help="a streamhog checkout whose AdaGrad is also timed")
    ap.add_argument("--previous-tree", type=Path, help="a streamhog checkout whose normalized rule is also timed")
    args = ap.parse_args(argv)
    machine = machine_info()  # before the runs: its load average is the one they started under
    trees = {side: tree for side, tree in ((BASE, args.baseline_tree), (PREVIOUS, args.previous_tree)) if tree}
    sides = OPTIMIZERS + tuple(trees)
    data = Data(OUTPUT / f"data-{args.rows}", args.rows, max(args.rows // 9, 50_000))
    prepare(data)
    tiny = Data(OUTPUT / "data-1000", 1_000, 1_000)  # the start-up twin (benchmarks/run.py's)
    prepare(tiny, test_rows_exact=False)
    work = OUTPUT / "speed-work"
    base = args.baseline_tree
    cases = {"1 epoch": lambda o: e2e(data, work, o, 1, args.threads, trees),
             "5 epochs, --holdout 0": lambda o: e2e(data, work, o, 5, args.threads, trees),
             DEFAULTS: lambda o: e2e(data, work, o, None, args.threads, trees),
             "start-up twin: 1 epoch, 1,000 rows": lambda o: e2e(tiny, work, o, 1, args.threads, trees),
             "kernel alone, 1 epoch": lambda o: kernel(data, o, args.threads)}
    for o in sides:  # warm-up (numba's cache), not recorded
        cases["1 epoch"](o)
    runs = {c: {o: [] for o in (OPTIMIZERS if c == "kernel alone, 1 epoch" else sides)} for c in cases}
    for r in range(args.repeats):
        for case, fn in cases.items():
            order = list(runs[case])
            for o in (order if r % 2 == 0 else order[::-1]):
                runs[case][o].append(fn(o))
                print(f"  {case:22} {o:10} {runs[case][o][-1]['engine_s']:.3f} s", file=sys.stderr, flush=True)
    twin = "start-up twin: 1 epoch, 1,000 rows"
    start = {o: {k: statistics.median(x[k] for x in runs[twin][o]) for k in ("wall_s", "cpu_s")} for o in sides}
    summary = {}
    for case, by in runs.items():
        if case == twin:
            continue
        row = {}
        # The kernel worker's wall and CPU time include loading the data: only its own clock counts.
        for clock in (("engine_s",) if case == "kernel alone, 1 epoch" else ("engine_s", "wall_s", "cpu_s")):
            adjust = case != "kernel alone, 1 epoch" and clock != "engine_s"
            # The defaults case: each run's time (less the start-up) per epoch it trained.
            per = (lambda x: x.get("epochs", 1)) if case == DEFAULTS else (lambda x: 1)
            med = {o: statistics.median((x[clock] - (start[o][clock] if adjust else 0.0)) / per(x) for x in by[o])
                   for o in by}
            row[clock] = {"median_s": med, "speed_vs_adagrad": med["adagrad"] / med["normalized"]}
            if BASE in med:
                row[clock]["speed_vs_base"] = med[BASE] / med["normalized"]
            if PREVIOUS in med:  # > 1: the normalized rule is faster than the previous tree's
                row[clock]["speed_vs_previous"] = med[PREVIOUS] / med["normalized"]
        if case == DEFAULTS:
            row["epochs"] = {o: [x["epochs"] for x in by[o]] for o in by}
        summary[case] = row
    out = {"machine": machine, "rows": args.rows, "repeats": args.repeats, "threads": args.threads,
           "baseline_tree": str(base) if base else None,
           "baseline_git": git_state(base) if base else None,  # recorded now: the checkout may go
           "previous_tree": str(args.previous_tree) if args.previous_tree else None,
           "previous_git": git_state(args.previous_tree) if args.previous_tree else None,
           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "start_up": start, "summary": summary, "runs": runs}
    (OUTPUT / "default_speed.json").write_text(json.dumps(out, indent=1) + "\n")
    prev = args.previous_tree
    print("| case | clock | adagrad s | normalized s | normalized speed / adagrad's |"
          + (" adagrad@base s | normalized speed / adagrad@base's |" if base else "")
          + (" normalized@previous s | normalized speed / its previous |" if prev else "")
          + "\n|---|---|---:|---:|---:|" + ("---:|---:|" if base else "") + ("---:|---:|" if prev else ""))
    for case, row in summary.items():
        for clock, r in row.items():
            if clock == "epochs":
                continue
            extra = (f" {r['median_s'][BASE]:.3f} | {r['speed_vs_base']:.2f} |" if "speed_vs_base" in r
                     else (" | |" if base else ""))
            extra += (f" {r['median_s'][PREVIOUS]:.3f} | {r['speed_vs_previous']:.2f} |" if "speed_vs_previous" in r
                      else (" | |" if prev else ""))
            print(f"| {case} | {clock} | {r['median_s']['adagrad']:.3f} | {r['median_s']['normalized']:.3f} | "
                  f"{r['speed_vs_adagrad']:.2f} |{extra}")
    if DEFAULTS in summary:
        print("defaults: epochs trained per run: " + "; ".join(
            f"{o} {', '.join(map(str, e))}" for o, e in summary[DEFAULTS]["epochs"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
