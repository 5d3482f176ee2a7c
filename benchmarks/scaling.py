#!/usr/bin/env python3
"""Hogwild! thread scaling (issue 14): speed against threads, on uniform and skewed features.

    python benchmarks/scaling.py                      # this machine's cores (+16, oversubscribed, below 16 cores)
    python benchmarks/scaling.py --rows 2000000 --publish    # the published sweep (16 cores: under 8 minutes)

For each Zipf exponent of the feature ids (0: uniform; 0.8; 1.1: the benchmark data's, the
256 most frequent ids hold about half the non-zeros) a synthetic dataset (1M features, ~39
non-zeros a row, unit-norm rows, a known logistic model) is generated in parallel — one
Parquet file per process, by disjoint row ranges aligned to the generator's blocks, so the
data is the same whatever the process count — then, for the default optimizer and sgd:

* the in-memory kernel: one epoch over the decoded blocks with T threads (common/kernel.py),
* end to end: ``streamhog train --epochs 1 --holdout 0 --threads T`` (the engine's epoch
  seconds, from model.json: no start-up), then ``streamhog evaluate``,

each with the test logloss of the model it trained (more threads must not give a worse
model). Repeats are interleaved and summarized by the median. Writes
benchmarks/output/scaling.json and .md, and with --publish benchmarks/scaling.md and
scaling.png (speed-up against threads, with the ideal line).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common.data import streamhog_cmd  # noqa: E402
from common.kernel import kernel_epoch, load_blocks, test_logloss  # noqa: E402
from common.metering import check, engine_hash, last_json, machine_info, measure  # noqa: E402
from common.paths import OUTPUT  # noqa: E402

GENERATOR_BLOCK = 65_536  # synthetic_batches' block: row ranges aligned to it are exact


def _write_part(args) -> str:
    spec_kw, start, stop, path = args
    from streamhog.datasets.synthetic import SyntheticSpec, synthetic_batches
    from streamhog.io.formats import create_writer

    spec = SyntheticSpec(**spec_kw)
    w = create_writer("parquet", path)
    for b in synthetic_batches(spec, rows_per_block=GENERATOR_BLOCK, start_row=start, stop_row=stop):
        w.write(b)
    w.close(spec.n_features)
    return path


def generate(out: Path, zipf: float, rows: int, test_rows: int, processes: int) -> Path:
    """train/ and test/ Parquet directories of one dataset, written by ``processes`` processes."""
    d = out / f"zipf-{zipf:g}-rows-{rows}"
    if (d / "done").exists():
        return d
    shutil.rmtree(d, ignore_errors=True)
    spec = dict(n_rows=rows + test_rows, n_features=1_000_000, nnz_per_row=39, zipf_exponent=zipf, seed=11)
    jobs = []
    for split, (a, b) in {"train": (0, rows), "test": (rows, rows + test_rows)}.items():
        (d / split).mkdir(parents=True)
        step = max(GENERATOR_BLOCK, -(-(b - a) // processes // GENERATOR_BLOCK) * GENERATOR_BLOCK)
        for i, lo in enumerate(range(a, b, step)):
            jobs.append((spec, lo, min(lo + step, b), str(d / split / f"part-{i:03d}.parquet")))
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_write_part, jobs)
    (d / "done").write_text(json.dumps(spec) + "\n")
    return d


def end_to_end(data: Path, threads: int, optimizer: str | None, work: Path, hot: str) -> dict:
    model = work / f"m-{threads}-{optimizer}"
    opt = (["--optimizer", optimizer] if optimizer else []) + ["--hot-features", hot]
    p = check(measure(streamhog_cmd("train", data / "train", "--model", model, "--epochs", 1, "--holdout", 0,
                                    "--threads", threads, "--quiet", "--overwrite", *opt)), "streamhog train")
    history = json.loads((model / "model.json").read_text())["history"][-1]
    ev = last_json(check(measure(streamhog_cmd("evaluate", data / "test", "--model", model, "--json")),
                         "streamhog evaluate").stdout)
    shutil.rmtree(model)
    return {"seconds": history["seconds"], "nnz": history["nnz"], "train_loss": history["train_loss"],
            "test_logloss": ev["logloss"], "wall_s": p.wall_s}


def sweep(args) -> dict:
    cores = os.cpu_count() or 1
    threads = sorted({1, *[2 ** k for k in range(1, 7) if 2 ** k <= cores], cores, *args.extra_threads})
    optimizers = [None, "sgd"]
    results = []
    work = Path(tempfile.mkdtemp(prefix="scaling-", dir=OUTPUT))
    for zipf in args.zipf:
        t0 = time.perf_counter()
        data = generate(OUTPUT / "scaling", zipf, args.rows, args.test_rows, min(cores, 16))
        print(f"zipf {zipf}: data in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        ds, blocks = load_blocks(data / "train")
        _, test_blocks = load_blocks(data / "test")
        # Hot features (training/hot.py) switch on from 4 threads: there, both are measured.
        cells = [(mode, opt, t, hot) for mode in ("kernel", "end-to-end") for opt in optimizers for t in threads
                 for hot in (("auto", "0") if t >= 4 and args.hot_compare else ("auto",))]
        for rep in range(args.repeats):
            random.Random(rep).shuffle(cells)  # interleaved: drift in the machine spreads over every cell
            for mode, opt, t, hot in cells:
                if mode == "kernel":
                    r = kernel_epoch(blocks, ds.n_features, t, opt, hot_features="auto" if hot == "auto" else 0)
                    r["test_logloss"] = test_logloss(r.pop("arrays"), test_blocks)
                else:
                    r = end_to_end(data, t, opt, work, hot)
                label = mode if hot == "auto" else f"{mode}, no hot features"
                r.update(zipf=zipf, mode=label, optimizer=opt or "default", threads=t, repeat=rep)
                results.append(r)
                print(f"  {mode:<10} {opt or 'default':<8} {t:>3} threads: {r['nnz'] / r['seconds'] / 1e6:7.1f} M nnz/s, "
                      f"test logloss {r['test_logloss']:.5f}", file=sys.stderr, flush=True)
        del blocks, test_blocks
    shutil.rmtree(work, ignore_errors=True)
    return {"machine": machine_info(), "engine": engine_hash(), "rows": args.rows, "test_rows": args.test_rows,
            "threads": threads, "repeats": args.repeats, "results": results}


def summarize(res: dict) -> list[dict]:
    """Medians per cell; speed-up and loss against the mode's one-thread cell (hot features
    are off at one thread, so 'no hot features' rows compare with the same baseline)."""
    def cell(zipf, mode, opt, t):
        runs = [r for r in res["results"] if (r["zipf"], r["mode"], r["optimizer"], r["threads"]) == (zipf, mode, opt, t)]
        if not runs:
            return None
        return (statistics.median(r["nnz"] / r["seconds"] for r in runs) / 1e6,
                statistics.median(r["test_logloss"] for r in runs))

    rows = []
    keys = sorted({(r["zipf"], r["mode"], r["optimizer"]) for r in res["results"]})
    for zipf, mode, opt in keys:
        one = cell(zipf, mode.split(",")[0], opt, 1)
        for t in res["threads"]:
            here = cell(zipf, mode, opt, t)
            if here is None or one is None:
                continue
            rows.append({"zipf": zipf, "mode": mode, "optimizer": opt, "threads": t, "m_nnz_s": here[0],
                         "speedup": here[0] / one[0], "test_logloss": here[1], "loss_vs_1": here[1] / one[1] - 1})
    return rows


def markdown(res: dict, rows: list[dict]) -> str:
    m = res["machine"]
    cores = m["nproc"]
    out = [f"# Hogwild! thread scaling ({time.strftime('%Y-%m-%d')})", "",
           f"Machine: {cores} cores ({m['cpu']}), {m['ram_bytes'] / 2**30:.0f} GiB; streamhog at {m['git']['commit']}"
           f"{' (uncommitted changes)' if m['git']['uncommitted_engine_changes'] else ''}, engine {res['engine']}.",
           f"Data: {res['rows']:,} train / {res['test_rows']:,} test rows, 1M features, ~39 nnz a row; one epoch; "
           f"medians of {res['repeats']} interleaved repeats. Command: `python benchmarks/scaling.py --rows {res['rows']}`.",
           "", "Threads above the core count are oversubscribed: they check correctness (the blocks still overlap), "
           "not speed.", ""]
    for zipf in sorted({r["zipf"] for r in rows}):
        out += [f"## Zipf exponent {zipf:g}", "", "| mode | optimizer | threads | M nnz/s | speed-up | test logloss | vs 1 thread |",
                "|---|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            if r["zipf"] == zipf:
                over = " (oversubscribed)" if r["threads"] > cores else ""
                out.append(f"| {r['mode']} | {r['optimizer']} | {r['threads']}{over} | {r['m_nnz_s']:.1f} | "
                           f"{r['speedup']:.2f}× | {r['test_logloss']:.5f} | {100 * r['loss_vs_1']:+.2f}% |")
        out.append("")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], cores: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zipfs = sorted({r["zipf"] for r in rows})
    fig, axes = plt.subplots(1, len(zipfs), figsize=(5 * len(zipfs), 4), sharey=True, squeeze=False)
    for ax, zipf in zip(axes[0], zipfs):
        for mode, opt in sorted({(r["mode"], r["optimizer"]) for r in rows if r["zipf"] == zipf}):
            pts = [(r["threads"], r["speedup"]) for r in rows if (r["zipf"], r["mode"], r["optimizer"]) == (zipf, mode, opt)
                   and r["threads"] <= cores]
            ax.plot(*zip(*pts), marker="o", label=f"{mode}, {opt}")
        ax.plot([1, cores], [1, cores], "k--", lw=1, label="ideal")
        ax.set(title=f"Zipf {zipf:g}", xlabel="threads", xscale="log", yscale="log")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("speed-up over 1 thread")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=500_000, help="train rows (default 500K; 2M for the published sweep)")
    ap.add_argument("--test-rows", type=int, default=100_000)
    ap.add_argument("--zipf", type=float, nargs="+", default=[0.0, 0.8, 1.1])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--extra-threads", type=int, nargs="*", default=None,
                    help="more thread counts (default: 16 when the machine has fewer cores: oversubscribed)")
    ap.add_argument("--no-hot-compare", dest="hot_compare", action="store_false",
                    help="do not also measure 4+ threads with hot features off")
    ap.add_argument("--publish", action="store_true", help="also write benchmarks/scaling.md and scaling.png")
    args = ap.parse_args(argv)
    if args.extra_threads is None:
        args.extra_threads = [16] if (os.cpu_count() or 1) < 16 else []
    OUTPUT.mkdir(exist_ok=True)
    res = sweep(args)
    rows = summarize(res)
    (OUTPUT / "scaling.json").write_text(json.dumps({**res, "summary": rows}, indent=1) + "\n")
    text = markdown(res, rows)
    (OUTPUT / "scaling.md").write_text(text)
    print(text)
    if args.publish:
        (HERE / "scaling.md").write_text(text)
        try:
            plot(rows, res["machine"]["nproc"], HERE / "scaling.png")
        except ImportError:
            print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
