#!/usr/bin/env python3
"""streamhog against its peers and its own ceiling, on synthetic data with a known Bayes loss.

    python benchmarks/run.py --quick            # 200K/50K rows, a few minutes (make bench)
    python benchmarks/run.py --full --publish   # 1.8M/200K rows, 1M features, ~39 nnz/row (issue 5)

Every system runs as a subprocess, so time and memory are whole-process: peak RSS and peak
anonymous RSS (RssAnon, the memory that is not file pages such as the memory-mapped
weights or the page cache of the data) are sampled from /proc every ~20 ms. Runs are
interleaved (every configuration once per repeat, in a shuffled order) and summarized by
the median and min-max. streamhog and Vowpal Wabbit are timed as whole-process wall time
minus their start-up, the same command's wall time on a 1,000-row dataset; both raw and
adjusted times are reported. scikit-learn and the in-memory kernel time themselves
(benchmarks/workers.py): the fit or the epoch only.

Data (tools/make_synthetic.py) is generated once into benchmarks/output/data-<rows> and
reused. Writes benchmarks/output/results-<mode>.{json,md} and loss_vs_time-<mode>.png;
--publish also copies the Markdown and the plot to benchmarks/results.md and
benchmarks/loss_vs_time.png.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from common.data import Data, prepare, streamhog_cmd, warm_page_cache
from common.metering import Proc, check, engine_hash, finite, last_json, machine_info, measure
from common.paths import HERE, OUTPUT, PY
from common.peers import parse_vw, vw_cmd, vw_train_args
from common.speed_report import BIG_N_FEATURES, markdown, plot, ratios, summarize  # 8,589,934,592 float32 weights

WORKERS = str(HERE / "workers.py")

MODES = {  # train rows, test rows
    "quick": {"rows": 200_000, "test_rows": 50_000},
    "full": {"rows": 1_800_000, "test_rows": 200_000},
}
TINY_ROWS = 1_000          # the start-up dataset: same features and options, negligible work


# -- measuring one process ----------------------------------------------------------------------









# -- data -----------------------------------------------------------------------------------------





















# -- configurations: one per system and variant -----------------------------------------------

@dataclass
class Config:
    key: str
    system: str       # streamhog | vw | sklearn | kernel | convert | memory | bigmodel
    label: str
    argv: Callable[[Data, Path], list]   # (dataset, work dir) -> command
    passes: int = 1
    timing: str = "adjusted"             # adjusted: wall - start-up of the tiny twin; internal: the worker's clock
    evaluate: Callable[[Data, Path], tuple[dict, Proc]] | None = None
    inspect: Callable[[Path], dict] | None = None    # what the run left behind (sizes, history)
    parse: Callable[[Proc], dict] | None = None      # what the run printed (VW: passes used)
    data: str = "main"                   # main | big5x
    repeats: int | None = None           # None: --repeats


def evaluate_streamhog(data: Data, work: Path) -> tuple[dict, Proc]:
    p = check(measure(streamhog_cmd("evaluate", "--model", work / "model", data.test_parquet, "--json")),
              "streamhog evaluate")
    return last_json(p.stdout), p


def evaluate_vw(data: Data, work: Path) -> tuple[dict, Proc]:
    """`vw -t -i model -r raw` on the test split: exact raw margins (not `-p --link logistic`'s
    6 printed digits), scored as `streamhog evaluate` scores streamhog (streamhog.model.metrics)."""
    import pyarrow.parquet as pq

    from streamhog.model.metrics import MetricAccumulator

    raw = work / "raw.txt"
    p = check(measure(vw_cmd("-d", data.test_vw, "-t", "-i", work / "model.vw", "-r", raw, "--quiet"), cwd=work),
              "vw -t")
    margin = np.loadtxt(raw, usecols=0, ndmin=1)
    labels = pq.read_table(data.test_parquet, columns=["label"]).column("label").to_numpy() > 0
    acc = MetricAccumulator("logistic")
    acc.update(margin, np.where(labels, 1.0, -1.0).astype(np.float32))
    return acc.result(), p


def inspect_streamhog(work: Path) -> dict:
    meta = json.loads((work / "model" / "model.json").read_text())
    hist = meta.get("history", [])
    return {"engine_seconds": sum(h["seconds"] for h in hist),
            "train_loss": [h.get("train_loss") for h in hist]}


def inspect_bigmodel(work: Path) -> dict:
    from streamhog._fs.sparse_files import allocated_bytes, apparent_size

    weights = work / "model" / "weights.npy"
    return {**inspect_streamhog(work), "weights_apparent_bytes": apparent_size(weights),
            "weights_allocated_bytes": allocated_bytes(weights)}


def streamhog_configs() -> list[Config]:
    out = []
    for fmt, path in (("parquet", "train_parquet"), ("zarr", "train_zarr")):
        for epochs in (1, 5):
            for threads in (1, 2):
                # Several epochs: --holdout 0 trains on every example, as VW's --holdout_off run does.
                out.append(Config(
                    key=f"streamhog-{fmt}-e{epochs}-t{threads}", system="streamhog",
                    label=f"streamhog {fmt.capitalize()}, {epochs} epoch{'s' * (epochs > 1)}, {threads} thread{'s' * (threads > 1)}"
                          + (", --holdout 0" if epochs > 1 else ""),
                    argv=lambda d, w, path=path, e=epochs, t=threads: streamhog_cmd(
                        "train", getattr(d, path), "--model", w / "model", "--epochs", e, "--threads", t, "--quiet",
                        *(["--holdout", 0] if e > 1 else [])),
                    passes=epochs, evaluate=evaluate_streamhog, inspect=inspect_streamhog))
    # Context: plain SGD, the fastest rule (one array per coordinate), the default before AdaGrad.
    for epochs in (1, 5):
        out.append(Config(
            key=f"streamhog-parquet-e{epochs}-t2-sgd", system="streamhog",
            label=f"streamhog Parquet, {epochs} epoch{'s' * (epochs > 1)}, 2 threads, --optimizer sgd"
                  + (", --holdout 0" if epochs > 1 else ""), passes=epochs,
            argv=lambda d, w, e=epochs: streamhog_cmd("train", d.train_parquet, "--model", w / "model", "--epochs", e,
                                                      "--threads", 2, "--optimizer", "sgd", "--quiet",
                                                      *(["--holdout", 0] if e > 1 else [])),
            evaluate=evaluate_streamhog, inspect=inspect_streamhog))
    # Context, as VW's default-holdout run: the defaults with 5 epochs (10% holdout, early stopping).
    out.append(Config(
        key="streamhog-parquet-e5-t2-holdout", system="streamhog",
        label="streamhog Parquet, 5 epochs, 2 threads, default holdout (early stop)", passes=5,
        argv=lambda d, w: streamhog_cmd("train", d.train_parquet, "--model", w / "model", "--epochs", 5, "--threads", 2,
                                        "--quiet"),
        evaluate=evaluate_streamhog, inspect=inspect_streamhog))
    out.append(Config(
        key="streamhog-parquet-e1-t2-lock", system="streamhog", label="streamhog Parquet, 1 epoch, 2 threads, --sync lock",
        argv=lambda d, w: streamhog_cmd("train", d.train_parquet, "--model", w / "model", "--epochs", 1, "--threads", 2,
                                        "--sync", "lock", "--quiet"),
        evaluate=evaluate_streamhog, inspect=inspect_streamhog))
    return out


def vw_configs() -> list[Config]:
    return [
        Config(key="vw-text-p1", system="vw", label="VW, 1 pass from text",
               argv=lambda d, w: vw_cmd(*vw_train_args(d, w / "model.vw")), evaluate=evaluate_vw, parse=parse_vw),
        Config(key="vw-cache-p1", system="vw", label="VW, 1 pass from cache",
               argv=lambda d, w: vw_cmd(*vw_train_args(d, w / "model.vw", "--cache_file", d.vw_cache)),
               evaluate=evaluate_vw, parse=parse_vw),
        # Several passes need a cache; --holdout_off: train on every example, as the others do.
        Config(key="vw-cache-p5", system="vw", label="VW, 5 passes from cache", passes=5,
               argv=lambda d, w: vw_cmd(*vw_train_args(d, w / "model.vw", "--cache_file", d.vw_cache,
                                                         "--passes", 5, "--holdout_off")),
               evaluate=evaluate_vw, parse=parse_vw),
        # Context: VW's own guard for several passes (holdout every 10th example, stop when it
        # stops improving), which --holdout_off above turns off.
        Config(key="vw-cache-p5-holdout", system="vw", label="VW, 5 passes from cache, default holdout (early stop)",
               passes=5, argv=lambda d, w: vw_cmd(*vw_train_args(d, w / "model.vw", "--cache_file", d.vw_cache,
                                                                   "--passes", 5)),
               evaluate=evaluate_vw, parse=parse_vw),
    ]


def sklearn_configs() -> list[Config]:
    return [
        Config(key="sklearn-fit-e1", system="sklearn", label="scikit-learn SGDClassifier.fit, 1 epoch (in memory)",
               argv=lambda d, w: [PY, WORKERS, "sklearn-fit", d.dir, "--epochs", 1], timing="internal"),
        Config(key="sklearn-fit-e5", system="sklearn", label="scikit-learn SGDClassifier.fit, 5 epochs (in memory)",
               argv=lambda d, w: [PY, WORKERS, "sklearn-fit", d.dir, "--epochs", 5], passes=5, timing="internal"),
        Config(key="sklearn-partial-e1", system="sklearn",
               label="scikit-learn partial_fit, streamed Parquet row groups, 1 epoch",
               argv=lambda d, w: [PY, WORKERS, "sklearn-partial", d.dir], timing="internal"),
    ]


def kernel_configs() -> list[Config]:
    return [Config(key=f"kernel-t{t}", system="kernel", label=f"kernel alone, in memory, {t} thread{'s' * (t > 1)}",
                   argv=lambda d, w, t=t: [PY, WORKERS, "kernel", d.train_parquet, "--threads", t], timing="internal")
            for t in (1, 2)] + [
        Config(key="kernel-t2-sgd", system="kernel", label="kernel alone, in memory, 2 threads, --optimizer sgd",
               argv=lambda d, w: [PY, WORKERS, "kernel", d.train_parquet, "--threads", 2, "--optimizer", "sgd"],
               timing="internal")]


def section_configs(quick: bool) -> list[Config]:
    once = 1 if quick else None  # --quick: the memory and big-model sections run once
    return [
        Config(key="convert-libsvm-parquet", system="convert", label="streamhog convert LIBSVM text → Parquet",
               argv=lambda d, w: streamhog_cmd("convert", d.train_svm, w / "out.parquet", "--quiet"), passes=1),
        Config(key="memory-1x", system="memory", label="streamhog train --epochs 1 (defaults), N rows",
               argv=lambda d, w: streamhog_cmd("train", d.train_parquet, "--model", w / "model", "--epochs", 1, "--quiet"),
               timing="raw", repeats=once),
        Config(key="memory-5x", system="memory", label="streamhog train --epochs 1 (defaults), 5N rows",
               argv=lambda d, w: streamhog_cmd("train", d.train_parquet, "--model", w / "model", "--epochs", 1, "--quiet"),
               timing="raw", data="big5x", repeats=once),
        Config(key="bigmodel", system="bigmodel", label=f"streamhog train --n-features {BIG_N_FEATURES}",
               argv=lambda d, w: streamhog_cmd("train", d.train_parquet, "--model", w / "model", "--n-features",
                                               BIG_N_FEATURES, "--epochs", 1, "--checkpoint-every", 5, "--quiet"),
               evaluate=evaluate_streamhog, inspect=inspect_bigmodel, repeats=once),
    ]


def all_configs(quick: bool) -> list[Config]:
    return streamhog_configs() + vw_configs() + sklearn_configs() + kernel_configs() + section_configs(quick)


# -- running ---------------------------------------------------------------------------------------

@dataclass
class Run:
    """One measured process (and, for models, its untimed evaluation)."""

    key: str
    system: str
    repeat: int
    tiny: bool                 # the start-up twin on the 1,000-row dataset
    argv: list[str]
    rows: int                  # examples processed (rows x passes)
    nnz: int
    wall_s: float
    cpu_s: float
    peak_rss: int
    peak_anon: int
    internal: dict = field(default_factory=dict)   # the worker's own JSON / the engine's history
    metrics: dict = field(default_factory=dict)    # test logloss, auc, ...
    eval_proc: dict = field(default_factory=dict)  # wall and memory of the evaluation
    error: str | None = None                       # a failed run: recorded, left out of the summaries
    load1: float | None = None                     # 1-minute load average as it started: others' work shows


def run_one(cfg: Config, data: Data, work: Path, repeat: int, tiny: bool, evaluate: bool) -> Run:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    argv = [str(a) for a in cfg.argv(data, work)]
    load1 = os.getloadavg()[0]
    p = check(measure(argv, cwd=work), cfg.key)
    internal = last_json(p.stdout) if cfg.timing == "internal" else {}
    if cfg.inspect and not tiny:
        internal.update(cfg.inspect(work))
    if cfg.parse:
        internal.update(cfg.parse(p))
    passes = internal.get("passes_used", cfg.passes)
    run = Run(key=cfg.key, system=cfg.system, repeat=repeat, tiny=tiny, argv=argv,
              rows=internal.get("rows", data.rows * passes),
              nnz=internal.get("nnz", data.nnz * passes),
              wall_s=p.wall_s, cpu_s=p.cpu_s, peak_rss=p.peak_rss, peak_anon=p.peak_anon, internal=internal,
              load1=load1)
    if "logloss" in internal:
        run.metrics = {k: internal[k] for k in ("logloss", "auc", "n_examples")}
    elif cfg.evaluate and evaluate and not tiny:
        run.metrics, ep = cfg.evaluate(data, work)
        run.eval_proc = {"wall_s": ep.wall_s, "peak_rss": ep.peak_rss, "peak_anon": ep.peak_anon}
    shutil.rmtree(work, ignore_errors=True)  # models and caches: disk, not results
    return run


def run_all(configs: list[Config], datasets: dict[str, Data], tiny: Data, work_root: Path, repeats: int,
            eval_repeats: int, checkpoint: Callable[[list[Run]], None] | None = None) -> list[Run]:
    runs: list[Run] = []
    # Warm-up, not recorded: the numba caches (rebuilt after an engine edit), imports, the
    # VW library, on the tiny data. One command per code path is enough.
    warm_keys = ("streamhog-parquet-e1-t2", "streamhog-zarr-e1-t2", "vw-cache-p1", "convert-libsvm-parquet")
    for cfg in [c for c in configs if c.key in warm_keys]:
        try:
            run_one(cfg, tiny, work_root / "warmup", 0, tiny=True, evaluate=False)
        except Exception as exc:  # noqa: BLE001 - the measured runs will fail and say so
            print(f"  warm-up of {cfg.key} failed: {str(exc)[-300:]}", file=sys.stderr)
    total = sum(min(repeats, c.repeats or repeats) * (2 if c.timing == "adjusted" else 1) for c in configs)
    done = 0
    start = time.perf_counter()
    for rep in range(repeats):
        order = configs[:]
        random.Random(rep).shuffle(order)  # interleaved, in a different order each round
        for cfg in order:
            if rep >= (cfg.repeats or repeats):
                continue
            data = datasets[cfg.data]
            pairs = [(tiny, True)] if cfg.timing == "adjusted" else []
            for d, is_tiny in pairs + [(data, False)]:
                done += 1
                try:
                    run = run_one(cfg, d, work_root / cfg.key, rep, tiny=is_tiny, evaluate=rep < eval_repeats)
                except Exception as exc:  # noqa: BLE001 - one failure (others edit the engine) must not lose the rest
                    runs.append(Run(key=cfg.key, system=cfg.system, repeat=rep, tiny=is_tiny, argv=[], rows=0, nnz=0,
                                    wall_s=float("nan"), cpu_s=float("nan"), peak_rss=0, peak_anon=0,
                                    error=str(exc)[-2000:]))
                    print(f"  FAILED {cfg.key} (repeat {rep + 1}{', start-up twin' if is_tiny else ''}): "
                          f"{str(exc)[-500:]}", file=sys.stderr)
                    done += int(is_tiny)  # its real run is skipped too: no start-up to subtract
                    break
                runs.append(run)
            else:
                print(f"  [{done}/{total} {time.perf_counter() - start:6.0f} s] repeat {rep + 1}: {cfg.key:32} "
                      f"{run.wall_s:7.2f} s  peak anon {run.peak_anon / 2**20:6.0f} MB"
                      + (f"  logloss {run.metrics['logloss']:.4f}" if run.metrics else ""), file=sys.stderr)
        if checkpoint is not None:
            checkpoint(runs)  # the raw runs so far, in case a long session is cut short
    return runs


# -- summarizing -------------------------------------------------------------------------------











# -- reporting -------------------------------------------------------------------------------------























# -- main ------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick", help="200K/50K rows (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="1.8M/200K rows (issue 5)")
    ap.add_argument("--rows", type=int, help="train rows (default: 200,000 quick, 1,800,000 full); test rows: rows/9, "
                                             "at least 50,000 (or the mode's)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of every configuration (default 3)")
    ap.add_argument("--data-root", type=Path, default=OUTPUT, help="where the data-<rows> caches live")
    ap.add_argument("--only", default=None,
                    help="comma-separated prefixes of configuration keys to run (for development)")
    ap.add_argument("--prepare-only", action="store_true", help="generate the data caches and stop")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the Markdown and the plot from the saved results-<mode>.json, running nothing")
    ap.add_argument("--publish", action="store_true",
                    help="also copy the Markdown and the plot to benchmarks/results.md and benchmarks/loss_vs_time.png")
    args = ap.parse_args(argv)
    args.mode = args.mode or "quick"
    args.data_root = args.data_root.resolve()  # runs start in their own work directories
    if args.report_only:
        print(write_report(json.loads((OUTPUT / f"results-{args.mode}.json").read_text()), args.publish))
        return 0
    sizes = dict(MODES[args.mode])
    if args.rows:
        sizes = {"rows": args.rows, "test_rows": max(args.rows // 9, 50_000)}
    OUTPUT.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    info = machine_info()
    engine_before = engine_hash()

    print(f"preparing data ({args.mode}: {sizes['rows']:,} train rows) ...", file=sys.stderr)
    main_data = Data(args.data_root / f"data-{sizes['rows']}", sizes["rows"], sizes["test_rows"])
    big = Data(args.data_root / f"data-{5 * sizes['rows']}", 5 * sizes["rows"], 1_000)
    tiny = Data(args.data_root / f"data-{TINY_ROWS}", TINY_ROWS, TINY_ROWS)
    prep = {}
    for d, kw in ((tiny, dict(libsvm=True, zarr=True, vw=True)), (main_data, dict(libsvm=True, zarr=True, vw=True)),
                  (big, dict(test_rows_exact=False))):
        prep.update({f"{d.dir.name}: {k}": v for k, v in prepare(d, **kw).items()})
    if args.prepare_only:
        print(json.dumps(prep, indent=1))
        return 0
    warm_page_cache([main_data.train_parquet, main_data.test_parquet, main_data.train_zarr, main_data.train_vw,
                     main_data.test_vw, main_data.vw_cache, main_data.train_svm, big.train_parquet])
    nnz = {"main": main_data.nnz, "big5x": big.nnz}

    configs = all_configs(args.mode == "quick")
    if args.only:
        prefixes = tuple(args.only.split(","))
        configs = [c for c in configs if c.key.startswith(prefixes)]
    # --quick evaluates the models of the first repeat only (a few seconds each); --full all.
    eval_repeats = 1 if args.mode == "quick" else args.repeats
    print(f"running {len(configs)} configurations x {args.repeats} repeats ...", file=sys.stderr)
    work_root = OUTPUT / f"work-{args.mode}"
    partial = OUTPUT / f"runs-{args.mode}.partial.json"
    runs = run_all(configs, {"main": main_data, "big5x": big}, tiny, work_root, args.repeats, eval_repeats,
                   checkpoint=lambda rs: partial.write_text(json.dumps(finite([asdict(r) for r in rs]))))
    partial.unlink(missing_ok=True)
    shutil.rmtree(work_root, ignore_errors=True)

    info["engine_changed_during_run"] = engine_hash() != engine_before
    info["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    info["load_avg_end"] = os.getloadavg()
    result = {"mode": args.mode, "machine": info, "args": {k: str(v) for k, v in vars(args).items()},
              "data": {"dir": str(main_data.dir), "rows": main_data.rows, "test_rows": main_data.test_rows,
                       "nnz": nnz["main"], "spec": main_data.spec, "train_svm_bytes": main_data.train_svm.stat().st_size,
                       "big5x_rows": big.rows, "big5x_nnz": nnz["big5x"]},
              "preparation_s": prep, "runs": [asdict(r) for r in runs]}
    out_json = OUTPUT / f"results-{args.mode}.json"
    text = write_report(result, args.publish)
    print(text)
    print(f"wrote {out_json} and the report in {info['elapsed_s']:.0f} s", file=sys.stderr)
    return 0


def write_report(result: dict, publish: bool) -> str:
    """results-<mode>.md and loss_vs_time-<mode>.png from a result (a fresh one, or a saved
    results-<mode>.json with --report-only)."""
    mode = result["mode"]
    runs = [Run(**{k: (np.nan if v is None and k in ("wall_s", "cpu_s") else v) for k, v in r.items()})
            for r in result["runs"]]
    keys = {r.key for r in runs}
    # Summaries and ratios are always recomputed from the raw runs, so the report code can change
    # after a long run (--report-only) without measuring again.
    S = {c.key: sm for c in all_configs(mode == "quick") if c.key in keys and (sm := summarize(c, runs)) is not None}
    R = ratios(S)
    result["summaries"] = [asdict(x) for x in S.values()]
    result["ratios"] = [asdict(x) for x in R]
    (OUTPUT / f"results-{mode}.json").write_text(json.dumps(finite(result), indent=1) + "\n")
    text = markdown(result, S, R, runs)
    out_md = OUTPUT / f"results-{mode}.md"
    out_png = OUTPUT / f"loss_vs_time-{mode}.png"
    out_md.write_text(text)
    spec = result["data"]["spec"]
    plot(out_png, S, spec["bayes_test_logloss"],
         f"{result['data']['rows']:,} rows × {spec['spec']['n_features']:,} features, "
         f"{result['machine']['nproc']} cores: test logloss vs training time")
    if publish:
        shutil.copyfile(out_md, HERE / "results.md")
        shutil.copyfile(out_png, HERE / "loss_vs_time.png")
    return text

if __name__ == "__main__":
    sys.exit(main())
