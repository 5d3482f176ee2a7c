#!/usr/bin/env python3
"""The factorization schedules side by side: Hogwild! (threads take whole blocks, shared
rows) against strata (threads train each block together on cells that share no user and
no item; streamhog/factorization/strata.py), 1 and 2 threads, kernel alone and end to end.

Every run is a ``benchmarks/mf_workers.py`` process (``kernel``: the blocks in memory;
``streamhog``: the whole train_mf call, --fixed: every row every epoch); runs are
interleaved, repeated, and medians reported, with the process's CPU time per rating
(the kernel: its threads') and the test RMSE (end to end). The data are
benchmarks/factorization.py's (run it first, or ``--data``).

    nice flock /work/bench.lock python benchmarks/mf_schedule.py --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common.metering import last_json  # noqa: E402
from common.paths import OUTPUT, PY  # noqa: E402

WORKERS = str(HERE / "mf_workers.py")
RUNS = (("1 thread", 1, "hogwild"), ("2 threads, hogwild", 2, "hogwild"), ("2 threads, strata", 2, "strata"))


def configs(data: Path, sets: list[str], optimizers=("adagrad", "sgd")) -> list[dict]:
    spec = {"synthetic": (data / "synthetic-1000000", 32, 3, 5), "movielens": (data / "movielens", 100, 20, 20)}
    out = []
    for name in sets:
        d, rank, kernel_epochs, epochs = spec[name]
        for opt in optimizers:
            for label, t, sched in RUNS:
                common = ["--rank", str(rank), "--threads", str(t), "--schedule", sched, "--optimizer", opt]
                out.append({"set": name, "what": "kernel", "opt": opt, "run": label,
                            "argv": [PY, WORKERS, "kernel", str(d / "train.parquet"), "--epochs", str(kernel_epochs)]
                            + common})
                out.append({"set": name, "what": "end to end", "opt": opt, "run": label,
                            "argv": [PY, WORKERS, "streamhog", str(d / "train.parquet"), str(d / "test.parquet"),
                                     "--epochs", str(epochs), "--fixed"] + common})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--data", type=Path, default=OUTPUT / "mf-bench")
    p.add_argument("--sets", nargs="+", default=["synthetic", "movielens"])
    p.add_argument("--optimizers", nargs="+", default=["adagrad", "rowwise-adagrad", "sgd"])
    p.add_argument("--out", type=Path, default=OUTPUT / "mf-schedule.json")
    a = p.parse_args(argv)
    cfgs = configs(a.data, a.sets, a.optimizers)
    loads = [os.getloadavg()[0]]
    env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for rep in range(a.repeats):
        for c in cfgs:  # interleaved: every configuration once per repeat
            proc = subprocess.run(c["argv"], capture_output=True, text=True, env=env, check=False)
            if proc.returncode:
                raise SystemExit(f"{' '.join(c['argv'])}: {proc.stderr.strip().splitlines()[-1:]}")
            c.setdefault("results", []).append(last_json(proc.stdout))
            loads.append(os.getloadavg()[0])
    rows = []
    for c in cfgs:
        res = c["results"]
        rate = statistics.median(r["ratings"] / r["seconds"] for r in res)
        cpu = statistics.median(r["ratings"] / r["cpu_seconds"] for r in res)
        rmse = [r["test_rmse"] for r in res if "test_rmse" in r]
        rows.append({k: c[k] for k in ("set", "what", "opt", "run", "argv")}
                    | {"rate": rate, "rate_min": min(r["ratings"] / r["seconds"] for r in res),
                       "rate_max": max(r["ratings"] / r["seconds"] for r in res), "per_cpu_s": cpu,
                       "test_rmse": statistics.median(rmse) if rmse else None, "seconds": [r["seconds"] for r in res]})
    base = {(r["set"], r["what"], r["opt"]): r["rate"] for r in rows if r["run"] == "1 thread"}
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {a.repeats} interleaved repeats, load average "
          f"{min(loads):.2f}-{max(loads):.2f} (1 min, between runs)")
    print("| set | timed | optimizer | run | M ratings/s median (min-max) | per CPU-s | vs 1 thread | test RMSE |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        speed = r["rate"] / base[(r["set"], r["what"], r["opt"])]
        rmse = f"{r['test_rmse']:.4f}" if r["test_rmse"] is not None else ""
        print(f"| {r['set']} | {r['what']} | {r['opt']} | {r['run']} | {r['rate'] / 1e6:.2f} "
              f"({r['rate_min'] / 1e6:.2f}-{r['rate_max'] / 1e6:.2f}) | {r['per_cpu_s'] / 1e6:.2f} | {speed:.2f} | {rmse} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"loads": loads, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
