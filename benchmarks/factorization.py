#!/usr/bin/env python3
"""Matrix factorization: streamhog against scikit-surprise's SVD (and libmf when it installs),
on MovieLens latest-small and on a synthetic low-rank matrix, plus a factor model larger than
RAM (issue 19's speed and quality targets).

    python benchmarks/factorization.py --quick               # small sizes: validates the script
    python benchmarks/factorization.py --full --publish      # 50M synthetic ratings

Every run is its own process (benchmarks/mf_workers.py); its wall time and peak anonymous RSS
(RssAnon: not the memory-mapped factors nor the page cache) are measured from outside, its
timed section (Surprise's and libmf's fit; streamhog's whole train_mf call: opening the data,
the mean pass, creating the factor files, every epoch, the checkpoints and their fsyncs, after
a first run on 1,000 ratings has loaded numba's cached kernels: start-up excluded, as
benchmarks/run.py does) from inside. Ratings per second = ratings trained
(rows x epochs) / timed seconds. Runs are interleaved and repeated; medians are reported.

MovieLens: the issue's split (numpy.random.default_rng(0).permutation, first fifth test),
Surprise's defaults (rank 100, 20 epochs, two seeds); streamhog at the same rank and epochs
with every row trained every epoch (--fixed: no holdout, no early stopping), 1 and 2
threads, and with its own defaults (holdout, early stopping). Synthetic: a low-rank truth
(streamhog.factorization.synthetic) written in bounded memory; Surprise keeps every rating in
Python objects, so it runs on the first SURPRISE_ROWS rows and streamhog runs on those too
(the same-data comparison) and on the whole set. The kernel alone (blocks in memory) at 1 and
2 threads gives the scaling. Every run uses its optimizer's default schedule (rowwise-adagrad,
the default optimizer, and sgd: Hogwild!; adagrad: strata; streamhog/factorization/config.py)
unless its name says --schedule: the other schedule's rows are context. The big model: 2^31
users x rank 16 (a 128 GiB sparse factor file, its per-row state and the biases: 152 GiB)
trained on streams that touch about a million users, at two stream lengths: peak RssAnon
must stay flat.

Writes benchmarks/output/factorization-<mode>.{json,md}; --publish copies the Markdown to
benchmarks/factorization.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common.metering import check, last_json, machine_info, measure  # noqa: E402
from common.paths import OUTPUT, PY  # noqa: E402

WORKERS = str(HERE / "mf_workers.py")
MODES = {
    "quick": dict(repeats=1, synth=dict(n_users=50_000, n_items=5_000, n_obs=1_000_000, test=100_000),
                  surprise_rows=300_000, big=(200_000, 800_000), synth_rank=32, synth_epochs=5),
    "full": dict(repeats=3, synth=dict(n_users=1_000_000, n_items=100_000, n_obs=50_000_000, test=1_000_000),
                 surprise_rows=5_000_000, big=(5_000_000, 20_000_000), synth_rank=32, synth_epochs=5),
}
BIG_USERS = 2**31
BIG_RANK = 16


def movielens(data: Path) -> tuple[Path, Path]:
    from mf_sweep import movielens_split
    from streamhog.factorization import write_interactions

    d = data / "movielens"
    if not (d / "test.parquet").exists():
        d.mkdir(parents=True, exist_ok=True)
        tr, te = movielens_split()
        write_interactions(d / "train.parquet", *tr)
        write_interactions(d / "test.parquet", *te)
    return d / "train.parquet", d / "test.parquet"


def synthetic(data: Path, spec: dict) -> tuple[Path, Path]:
    """A stars5 low-rank truth (rank 10), written chunk by chunk: memory is the truth's
    factors and one chunk, whatever n_obs."""
    from streamhog.factorization.synthetic import make_truth, write_low_rank

    d = data / f"synthetic-{spec['n_obs']}"
    train, test = d / "train.parquet", d / "test.parquet"
    if not test.exists():
        d.mkdir(parents=True, exist_ok=True)
        truth = make_truth(spec["n_users"], spec["n_items"], 10, seed=3)
        common = dict(truth=truth, seed=3, rank=10, scale="stars5", noise=0.5)
        write_low_rank(train, spec["n_users"], spec["n_items"], spec["n_obs"], stream=0, rows_per_group=65_536, **common)
        write_low_rank(test, spec["n_users"], spec["n_items"], spec["test"], stream=1, **common)
    return train, test


def bigmodel_data(data: Path, n_obs: int) -> Path:
    """Ratings of about a million users in 8 windows of 2^17 consecutive ids spread over
    [0, 2^31) (ids come in runs, as sequentially assigned ids do), 10,000 items."""
    from streamhog.factorization import InteractionWriter

    path = data / f"bigmodel-{n_obs}.parquet"
    if path.exists():
        return path
    rng = np.random.default_rng(5)
    starts = np.sort(rng.choice(BIG_USERS // 2**17, 8, replace=False)) * 2**17
    writer = InteractionWriter(path, rows_per_group=65_536)
    for lo in range(0, n_obs, 1 << 20):
        n = min(1 << 20, n_obs - lo)
        users = starts[rng.integers(0, 8, n)] + rng.integers(0, 2**17, n)
        writer.write(users, rng.integers(0, 10_000, n), rng.integers(1, 6, n).astype(np.float32))
    writer.close()
    return path


def libmf_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("libmf") is not None


def configs(mode: dict, data: Path) -> list[dict]:
    ml_train, ml_test = movielens(data)
    sy_train, sy_test = synthetic(data, mode["synth"])
    limit, rk, ep = mode["surprise_rows"], mode["synth_rank"], mode["synth_epochs"]
    sub = data / f"synthetic-{mode['synth']['n_obs']}" / f"first-{limit}.parquet"
    if not sub.exists():
        import pyarrow.parquet as pq

        from streamhog.factorization import write_interactions
        t = pq.read_table(sy_train).slice(0, limit)
        write_interactions(sub, *(t.column(c).to_numpy() for c in ("user", "item", "rating")))
    out = []

    def add(section, name, kind, train, test, *args):
        out.append({"section": section, "name": name, "argv": [PY, WORKERS, kind, str(train)]
                    + ([str(test)] if test else []) + [str(a) for a in args] + ["--workdir", str(data)]})

    for seed in (0, 1):
        add("movielens", f"Surprise SVD, rank 100, 20 epochs, seed {seed}", "surprise", ml_train, ml_test,
            "--rank", 100, "--epochs", 20, "--seed", seed)
    for t in (1, 2):
        add("movielens", f"streamhog, rank 100, 20 epochs, {t} thread{'s' * (t > 1)}", "streamhog", ml_train, ml_test,
            "--rank", 100, "--epochs", 20, "--threads", t, "--fixed")
    add("movielens", "streamhog, rank 100, 20 epochs, 2 threads, --optimizer sgd", "streamhog", ml_train, ml_test,
        "--rank", 100, "--epochs", 20, "--threads", 2, "--fixed", "--optimizer", "sgd")
    add("movielens", "streamhog, defaults (holdout, early stopping), 2 threads", "streamhog", ml_train, ml_test,
        "--threads", 2)
    # The other schedule of each optimizer (after the default rows: targets() finds those by prefix).
    add("movielens", "streamhog, rank 100, 20 epochs, 2 threads, --schedule strata", "streamhog", ml_train, ml_test,
        "--rank", 100, "--epochs", 20, "--threads", 2, "--fixed", "--schedule", "strata")
    add("movielens", "streamhog, rank 100, 20 epochs, 2 threads, --optimizer sgd, --schedule strata", "streamhog",
        ml_train, ml_test, "--rank", 100, "--epochs", 20, "--threads", 2, "--fixed", "--optimizer", "sgd",
        "--schedule", "strata")
    # The optimizer the default was before rowwise-adagrad (per-coordinate sums), for comparison.
    add("movielens", "streamhog, rank 100, 20 epochs, 2 threads, --optimizer adagrad", "streamhog", ml_train, ml_test,
        "--rank", 100, "--epochs", 20, "--threads", 2, "--fixed", "--optimizer", "adagrad")
    if libmf_available():
        for t in (1, 2):
            add("movielens", f"libmf, rank 100, 20 epochs, {t} thread{'s' * (t > 1)}", "libmf", ml_train, ml_test,
                "--rank", 100, "--epochs", 20, "--threads", t)
    add("synthetic", f"Surprise SVD, rank {rk}, {ep} epochs, first {limit:,} rows", "surprise", sub, sy_test,
        "--rank", rk, "--epochs", ep)
    add("synthetic", f"streamhog, rank {rk}, {ep} epochs, 2 threads, first {limit:,} rows", "streamhog", sub, sy_test,
        "--rank", rk, "--epochs", ep, "--threads", 2, "--fixed")
    for t in (1, 2):
        add("synthetic", f"streamhog, rank {rk}, {ep} epochs, {t} thread{'s' * (t > 1)}, all rows", "streamhog",
            sy_train, sy_test, "--rank", rk, "--epochs", ep, "--threads", t, "--fixed")
        add("synthetic", f"kernel alone (in memory), rank {rk}, 1 epoch, {t} thread{'s' * (t > 1)}", "kernel",
            sy_train, None, "--rank", rk, "--epochs", 1, "--threads", t, "--schedule", "hogwild")  # the default optimizer's
    add("synthetic", "streamhog, defaults (holdout, early stopping), 2 threads, all rows", "streamhog", sy_train,
        sy_test, "--threads", 2)
    add("synthetic", f"streamhog, rank {rk}, {ep} epochs, 2 threads, all rows, --schedule strata", "streamhog",
        sy_train, sy_test, "--rank", rk, "--epochs", ep, "--threads", 2, "--fixed", "--schedule", "strata")
    add("synthetic", f"kernel alone (in memory), rank {rk}, 1 epoch, 2 threads, --schedule strata", "kernel",
        sy_train, None, "--rank", rk, "--epochs", 1, "--threads", 2, "--schedule", "strata")
    add("synthetic", f"streamhog, rank {rk}, {ep} epochs, 2 threads, all rows, --optimizer adagrad", "streamhog",
        sy_train, sy_test, "--rank", rk, "--epochs", ep, "--threads", 2, "--fixed", "--optimizer", "adagrad")
    add("synthetic", f"kernel alone (in memory), rank {rk}, 1 epoch, 2 threads, --optimizer adagrad", "kernel",
        sy_train, None, "--rank", rk, "--epochs", 1, "--threads", 2, "--schedule", "strata", "--optimizer", "adagrad")
    if libmf_available():
        add("synthetic", f"libmf, rank {rk}, {ep} epochs, 2 threads, all rows", "libmf", sy_train, sy_test,
            "--rank", rk, "--epochs", ep, "--threads", 2)
    for n in mode["big"]:
        add("bigmodel", f"2^31 users x rank {BIG_RANK}, {n:,} ratings, 1 epoch, 2 threads", "bigmodel",
            bigmodel_data(data, n), None, "--n-users", BIG_USERS, "--rank", BIG_RANK, "--threads", 2)
    return out


def warm_kernel_cache() -> None:
    """Compile numba's kernels into its cache in a process of their own: a run whose process
    compiles them (the first after a source change) holds LLVM's memory too, and its peak
    RssAnon (reported as the largest over the repeats) would be up to 200 MB higher."""
    subprocess.run([sys.executable, "-c", "import streamhog.factorization.trainer, streamhog.factorization.score, "
                    "streamhog.factorization.topk"], check=True)


def run_all(cfgs: list[dict], repeats: int) -> dict:
    warm_kernel_cache()
    runs = {c["name"]: [] for c in cfgs}
    for rep in range(repeats):
        order = list(cfgs)
        random.Random(rep).shuffle(order)  # interleaved: drifts of a shared machine hit every system
        for c in order:
            p = check(measure(c["argv"], timeout=7200), c["name"])
            r = last_json(p.stdout)
            r.update(wall_s=p.wall_s, peak_anon=p.peak_anon, load=os.getloadavg()[0])
            runs[c["name"]].append(r)
            rate = r["ratings"] / r["seconds"] / 1e6
            print(f"[{rep + 1}/{repeats}] {c['name']}: {r['seconds']:.2f} s, {rate:.2f}M ratings/s"
                  + (f", test rmse {r['test_rmse']:.4f}" if "test_rmse" in r else "")
                  + f", peak RssAnon {p.peak_anon / 2**20:.0f} MB", flush=True)
    return runs


def summarize(cfgs, runs) -> list[dict]:
    rows = []
    for c in cfgs:
        rs = runs[c["name"]]
        med = lambda k: statistics.median(r[k] for r in rs) if k in rs[0] else None  # noqa: E731
        rates = [r["ratings"] / r["seconds"] for r in rs]
        rows.append({"section": c["section"], "name": c["name"], "seconds": med("seconds"),
                     "rate": statistics.median(rates), "rate_min": min(rates), "rate_max": max(rates),
                     "test_rmse": med("test_rmse"), "epochs": med("epochs"), "wall_s": med("wall_s"),
                     "peak_anon": max(r["peak_anon"] for r in rs), "extra": rs[-1].get("files"),
                     "cpu_rate": statistics.median(r["ratings"] / r["cpu_seconds"] for r in rs)
                     if "cpu_seconds" in rs[0] else None})
    return rows


def _find(rows, section, prefix):
    return next((r for r in rows if r["section"] == section and r["name"].startswith(prefix)), None)


def targets(rows, mode) -> list[tuple]:
    out = []
    sur = [r for r in rows if r["section"] == "movielens" and r["name"].startswith("Surprise")]
    sur_rate = statistics.median(r["rate"] for r in sur)
    sur_rmse = min(r["test_rmse"] for r in sur)
    sh2 = _find(rows, "movielens", "streamhog, rank 100, 20 epochs, 2 threads")
    out.append(("MovieLens: streamhog 2 threads / Surprise ratings per second, rank 100, 20 epochs, >= 5",
                sh2["rate"] / sur_rate, sh2["rate"] / sur_rate >= 5))
    out.append(("MovieLens: its test RMSE <= Surprise's (best of two seeds)", f"{sh2['test_rmse']:.4f} vs {sur_rmse:.4f}",
                sh2["test_rmse"] <= sur_rmse))
    sg = _find(rows, "movielens", "streamhog, rank 100, 20 epochs, 2 threads, --optimizer sgd")
    out.append(("MovieLens, --optimizer sgd: 2 threads / Surprise ratings per second (test RMSE "
                f"{sg['test_rmse']:.4f}), >= 5", sg["rate"] / sur_rate, sg["rate"] / sur_rate >= 5))
    sh1 = _find(rows, "movielens", "streamhog, rank 100, 20 epochs, 1 thread")
    sur_cpu = statistics.median(r["cpu_rate"] for r in sur)
    out.append(("MovieLens: ratings per CPU-second, streamhog (1 thread) / Surprise (context: the load inflates both "
                "less)", sh1["cpu_rate"] / sur_cpu, None))
    d = _find(rows, "movielens", "streamhog, defaults")
    out.append(("MovieLens: streamhog's defaults test RMSE <= Surprise's", f"{d['test_rmse']:.4f} vs {sur_rmse:.4f}",
                d["test_rmse"] <= sur_rmse))
    ss = _find(rows, "synthetic", "Surprise")
    sf = _find(rows, "synthetic", f"streamhog, rank {mode['synth_rank']}, {mode['synth_epochs']} epochs, 2 threads, first")
    out.append(("synthetic, same rows: streamhog 2 threads / Surprise ratings per second, >= 5", sf["rate"] / ss["rate"],
                sf["rate"] / ss["rate"] >= 5))
    out.append(("synthetic, same rows: test RMSE <= Surprise's", f"{sf['test_rmse']:.4f} vs {ss['test_rmse']:.4f}",
                sf["test_rmse"] <= ss["test_rmse"]))
    k1, k2 = _find(rows, "synthetic", "kernel alone (in memory), rank 32, 1 epoch, 1 "), \
        _find(rows, "synthetic", "kernel alone (in memory), rank 32, 1 epoch, 2 ")
    out.append(("synthetic: kernel 2 threads / 1 thread, >= 1.5", k2["rate"] / k1["rate"], k2["rate"] / k1["rate"] >= 1.5))
    out.append(("synthetic: kernel ratings per CPU-second, 2 threads / 1 (1.0: no contention; context)",
                k2["cpu_rate"] / k1["cpu_rate"], None))
    e1, e2 = (_find(rows, "synthetic", f"streamhog, rank {mode['synth_rank']}, {mode['synth_epochs']} epochs, {t} "
                                       f"thread{'s' * (t > 1)}, all rows") for t in (1, 2))
    out.append(("synthetic: end to end 2 threads / 1 thread (context)", e2["rate"] / e1["rate"], None))
    mh = _find(rows, "movielens", "streamhog, rank 100, 20 epochs, 2 threads, --schedule strata")
    mg = _find(rows, "movielens", "streamhog, rank 100, 20 epochs, 2 threads, --optimizer sgd, --schedule strata")
    kh = _find(rows, "synthetic", "kernel alone (in memory), rank 32, 1 epoch, 2 threads, --schedule strata")
    eh = _find(rows, "synthetic", f"streamhog, rank {mode['synth_rank']}, {mode['synth_epochs']} epochs, 2 threads, "
                                  "all rows, --schedule strata")
    if mh and mg and kh and eh:  # the schedule that is not the optimizer's default (context)
        out.append(("--schedule strata (the default optimizer), MovieLens: 2 threads / Surprise ratings per second (test RMSE "
                    f"{mh['test_rmse']:.4f})", mh["rate"] / sur_rate, None))
        out.append((f"--schedule strata, MovieLens, --optimizer sgd: 2 threads / Surprise (test RMSE "
                    f"{mg['test_rmse']:.4f})", mg["rate"] / sur_rate, None))
        out.append(("--schedule strata, synthetic: kernel 2 threads / 1 thread", kh["rate"] / k1["rate"], None))
        out.append(("--schedule strata, synthetic: kernel ratings per CPU-second, 2 threads / 1",
                    kh["cpu_rate"] / k1["cpu_rate"], None))
        out.append(("--schedule strata, synthetic: end to end 2 threads / 1 thread", eh["rate"] / e1["rate"], None))
    ma = _find(rows, "movielens", "streamhog, rank 100, 20 epochs, 2 threads, --optimizer adagrad")
    ea = _find(rows, "synthetic", f"streamhog, rank {mode['synth_rank']}, {mode['synth_epochs']} epochs, 2 threads, "
                                  "all rows, --optimizer adagrad")
    ka = _find(rows, "synthetic", "kernel alone (in memory), rank 32, 1 epoch, 2 threads, --optimizer adagrad")
    if ma and ea and ka:  # the default (rowwise-adagrad) against per-coordinate AdaGrad, the default before it
        out.append(("MovieLens, --optimizer adagrad: 2 threads / Surprise ratings per second (test RMSE "
                    f"{ma['test_rmse']:.4f})", ma["rate"] / sur_rate, None))
        out.append(("MovieLens: the default's ratings per second / adagrad's, 2 threads", sh2["rate"] / ma["rate"], None))
        out.append((f"synthetic: the default's end-to-end ratings per second / adagrad's, 2 threads (test RMSE "
                    f"{e2['test_rmse']:.4f} vs {ea['test_rmse']:.4f})", e2["rate"] / ea["rate"], None))
        out.append(("synthetic: the default's kernel ratings per second / adagrad's, 2 threads", k2["rate"] / ka["rate"],
                    None))
    big = [r for r in rows if r["section"] == "bigmodel"]
    ratio = big[1]["peak_anon"] / big[0]["peak_anon"]
    out.append((f"big model: peak RssAnon, {mode['big'][1]:,} / {mode['big'][0]:,} ratings, <= 1.2", ratio, ratio <= 1.2))
    return out


def markdown(result) -> str:
    m, rows = result["machine"], result["rows"]
    lines = ["# Matrix factorization: streamhog, scikit-surprise, libmf", "",
             f"`python benchmarks/factorization.py --{result['mode']}` at streamhog {m['git']['commit']}"
             f"{' (uncommitted engine changes)' if m['git']['uncommitted_engine_changes'] else ''}, "
             f"{m['date']}, {m['nproc']} cores ({m['cpu']}), {m['ram_bytes'] / 2**30:.1f} GiB, load average "
             f"{m['load_avg_start'][0]:.1f} at the start ({result['load_max']:.1f} at most between runs, the runs' own "
             "threads counted in it: up to 2); medians of "
             f"{result['repeats']} interleaved repeats. Timed: Surprise's and libmf's fit, streamhog's whole "
             "`train_mf` call (the data opened, the mean pass, the sparse factor files created, every epoch, "
             "the checkpoints flushed to disk), after a 1,000-rating run loaded numba's cached kernels. Per "
             "CPU-second: the same ratings over the process's CPU time (the kernel alone: its threads'), a figure "
             "the machine's load inflates less. Peak RssAnon: the whole process.", ""]
    lines += ["Reproduce: `pip install -e '.[bench,bench-mf]'` (scikit-surprise; libmf's binding, `pip install "
              "libmf`, is optional), then the command above; `--repeats N` for more repeats, `--publish` to write "
              "this file. Every run is a `python benchmarks/mf_workers.py KIND ...` process; the JSON beside the "
              "raw Markdown (`benchmarks/output/factorization-<mode>.json`) lists their command lines.", ""]
    if result["mode"] == "quick":
        lines += [f"`--quick` is the small scale: a {result['synth']['n_obs']:,}-rating synthetic set, not the "
                  "issue's 50M (`--full`, which needs a quiet machine and about an hour), and a big model trained "
                  "on streams of 200,000 and 800,000 ratings.", ""]
    # The load taken right after a run counts that run's own threads (2 at most): only more
    # than that, or a busy machine before the first run, says that something else ran.
    if m["load_avg_start"][0] > 1.5 or result["load_max"] > m["nproc"] + 0.5:
        lines += ["**Provisional timings: the machine was shared** (its load average above, on 2 cores). The "
                  "RMSE figures do not depend on it.", ""]
    for section, title in (("movielens", "MovieLens latest-small (80,669 train / 20,167 test ratings)"),
                           ("synthetic", f"Synthetic low rank, {result['synth']['n_obs']:,} train / "
                                         f"{result['synth']['test']:,} test ratings, {result['synth']['n_users']:,} "
                                         f"users x {result['synth']['n_items']:,} items"),
                           ("bigmodel", "A factor model larger than RAM")):
        lines += [f"## {title}", "", "| run | timed s | M ratings/s (min-max); per CPU-second | test RMSE | epochs | process s | "
                                     "peak RssAnon MB |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            if r["section"] != section:
                continue
            rmse = f"{r['test_rmse']:.4f}" if r["test_rmse"] is not None else ""
            ep = f"{r['epochs']:g}" if r["epochs"] is not None else ""
            cpu = f"; {r['cpu_rate'] / 1e6:.2f} per CPU-s" if r["cpu_rate"] else ""
            lines.append(f"| {r['name']} | {r['seconds']:.2f} | {r['rate'] / 1e6:.2f} ({r['rate_min'] / 1e6:.2f}-"
                         f"{r['rate_max'] / 1e6:.2f}){cpu} | {rmse} | {ep} | {r['wall_s']:.1f} | "
                         f"{r['peak_anon'] / 2**20:.0f} |")
            if r["extra"]:
                alloc = sum(f["allocated"] for f in r["extra"].values())
                size = sum(f["apparent"] for f in r["extra"].values())
                lines.append(f"| &nbsp;&nbsp;model files | {size / 2**30:,.0f} GiB apparent, {alloc / 2**20:,.0f} MiB "
                             "allocated | | | | | |")
        lines.append("")
    lines += ["## Targets", "", "| target | measured | |", "|---|---:|---|"]
    for name, value, ok in result["targets"]:
        v = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"| {name} | {v} | {'' if ok is None else ('met' if ok else '**missed**')} |")
    lines += ["", "Commands: `python benchmarks/mf_workers.py KIND ...` as listed in the JSON beside this file "
                  "(`benchmarks/output/factorization-<mode>.json`)."]
    return "\n".join(lines) + "\n"


def report(mode_name: str, mode: dict, publish: bool) -> int:
    """The Markdown of a finished run, its targets computed again (a fix to the report, not
    to the measurements: the runs and their figures are the JSON's)."""
    result = json.loads((OUTPUT / f"factorization-{mode_name}.json").read_text())
    result["targets"] = targets(result["rows"], mode)
    text = markdown(result)
    (OUTPUT / f"factorization-{mode_name}.md").write_text(text)
    if publish:
        shutil.copy(OUTPUT / f"factorization-{mode_name}.md", HERE / "factorization.md")
    print(text)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", dest="mode", const="quick")
    g.add_argument("--full", action="store_const", dest="mode", const="full")
    p.add_argument("--repeats", type=int)
    p.add_argument("--publish", action="store_true")
    p.add_argument("--report", action="store_true",
                   help="no runs: the report again from benchmarks/output/factorization-<mode>.json")
    args = p.parse_args(argv)
    mode_name = args.mode or "quick"
    mode = MODES[mode_name]
    if args.report:
        return report(mode_name, mode, args.publish)
    data = OUTPUT / "mf-bench"
    data.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    start = time.time()
    cfgs = configs(mode, data)
    repeats = args.repeats or mode["repeats"]
    runs = run_all(cfgs, repeats)
    rows = summarize(cfgs, runs)
    result = {"mode": mode_name, "machine": machine, "repeats": repeats, "synth": mode["synth"], "rows": rows,
              "configs": cfgs, "runs": runs, "seconds": time.time() - start,
              "load_max": max(r["load"] for rs in runs.values() for r in rs)}
    result["targets"] = targets(rows, mode)
    text = markdown(result)
    (OUTPUT / f"factorization-{mode_name}.json").write_text(json.dumps(result, indent=1, default=str))
    (OUTPUT / f"factorization-{mode_name}.md").write_text(text)
    if args.publish:
        shutil.copy(OUTPUT / f"factorization-{mode_name}.md", HERE / "factorization.md")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
