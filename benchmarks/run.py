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
import datetime
import functools
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUTPUT = HERE / "output"
PY = sys.executable
WORKERS = str(HERE / "workers.py")

MODES = {  # train rows, test rows
    "quick": {"rows": 200_000, "test_rows": 50_000},
    "full": {"rows": 1_800_000, "test_rows": 200_000},
}
TINY_ROWS = 1_000          # the start-up dataset: same features and options, negligible work
BIG_N_FEATURES = 2 ** 33   # 8,589,934,592 float32 weights: a 32 GiB sparse file on a 24 GB machine
VW_BITS = 24               # 16M hash slots for 1M features: VW hashes numeric ids to themselves, no collisions
SAMPLE_S = 0.02


# -- measuring one process ----------------------------------------------------------------------

@dataclass
class Proc:
    rc: int
    wall_s: float
    cpu_s: float
    peak_rss: int    # bytes: max of sampled VmHWM and the kernel's ru_maxrss
    peak_anon: int   # bytes: max of sampled RssAnon
    stdout: str
    stderr: str


def measure(argv: list[str], timeout: float = 3600.0, cwd: Path | None = None) -> Proc:
    """Run ``argv`` and measure it from outside: wall time to the exit (wait4 blocks, so the
    end is exact), CPU time and peak RSS from rusage, RssAnon sampled from /proc."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=err, cwd=cwd)
        peaks = {"VmHWM": 0, "RssAnon": 0}
        done = threading.Event()

        def sample():
            path = f"/proc/{proc.pid}/status"
            while not done.is_set():
                try:
                    with open(path) as f:
                        text = f.read()
                except OSError:
                    return
                for line in text.splitlines():
                    key, _, value = line.partition(":")
                    if key in peaks:
                        peaks[key] = max(peaks[key], int(value.split()[0]) * 1024)
                done.wait(SAMPLE_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        watchdog.cancel()
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Proc(rc=proc.returncode, wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
                    peak_rss=max(peaks["VmHWM"], usage.ru_maxrss * 1024), peak_anon=peaks["RssAnon"],
                    stdout=out.read().decode(errors="replace"), stderr=err.read().decode(errors="replace"))


def check(p: Proc, what: str) -> Proc:
    if p.rc != 0:
        raise RuntimeError(f"{what} failed (exit {p.rc}):\n{p.stderr[-3000:]}")
    return p


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


# -- data -----------------------------------------------------------------------------------------

@dataclass
class Data:
    """One generated dataset directory (train/test splits in several encodings)."""

    dir: Path
    rows: int
    test_rows: int

    train_parquet = property(lambda self: self.dir / "train.parquet")
    test_parquet = property(lambda self: self.dir / "test.parquet")
    train_zarr = property(lambda self: self.dir / "train.zarr")
    train_svm = property(lambda self: self.dir / "train.svm")
    train_vw = property(lambda self: self.dir / "train.vw")
    test_vw = property(lambda self: self.dir / "test.vw")
    vw_cache = property(lambda self: self.dir / "train.vw.cache")

    @property
    def spec(self) -> dict:
        return json.loads((self.dir / "spec.json").read_text())

    @functools.cached_property
    def nnz(self) -> int:
        from streamhog import open_dataset

        return int(open_dataset(self.train_parquet).nnz)


def streamhog_cmd(*args) -> list[str]:
    return [PY, "-m", "streamhog", *map(str, args)]


def vw_cmd(*args) -> list[str]:
    # The wheel ships no `vw` binary; its __main__ hands argv to the C++ driver (vw's own CLI).
    return [PY, "-m", "vowpalwabbit", *map(str, args)]


def _upgrade_parquet_layout(data: Data, log: dict) -> None:
    """Data generated by an earlier streamhog may be in another Parquet layout than today's
    default (docs/formats.md): convert it, as a user would, so that every run measures the
    default."""
    from streamhog import open_dataset
    from streamhog.io.formats.spec import DEFAULT_PARQUET_LAYOUT

    for path in (data.train_parquet, data.test_parquet):
        if not path.exists() or open_dataset(path).layout == DEFAULT_PARQUET_LAYOUT:
            continue
        print(f"  converting {path} to the {DEFAULT_PARQUET_LAYOUT} Parquet layout ...", file=sys.stderr)
        tmp = path.with_name(f".{path.name}.layout")
        p = check(measure(streamhog_cmd("convert", path, tmp, "--format", "parquet", "--overwrite", "--quiet")),
                  f"convert {path.name} to the {DEFAULT_PARQUET_LAYOUT} layout")
        os.replace(tmp, path)
        log[f"convert {path.name} -> {DEFAULT_PARQUET_LAYOUT} layout"] = round(p.wall_s, 2)


def _generate(data: Data, fmt: str, log: dict) -> None:
    """tools/make_synthetic.py into a temporary directory, moved into place when complete,
    so an interrupted generation is never mistaken for a cached dataset."""
    tmp = data.dir / f".tmp-{fmt}"
    shutil.rmtree(tmp, ignore_errors=True)
    p = check(measure([PY, ROOT / "tools" / "make_synthetic.py", tmp, "--rows", data.rows, "--test-rows",
                       data.test_rows, "--format", fmt]), f"make_synthetic --format {fmt}")
    for f in tmp.iterdir():
        f.replace(data.dir / f.name)
    tmp.rmdir()
    log[f"make_synthetic {fmt}"] = round(p.wall_s, 2)


def _to_vw(src: Path, dst: Path) -> None:
    """LIBSVM → VW text: '+1 3:0.5 ...' → '1 | 3:0.5 ...' (ids stay numeric: VW hashes a
    numeric feature name to the number itself)."""
    tmp = dst.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        subprocess.run(["sed", "-e", "s/^+1 /1 | /", "-e", "s/^-1 /-1 | /", str(src)], stdout=out, check=True)
    tmp.replace(dst)


def _vw_train_args(data: Data, model: Path, *extra) -> list:
    # Not --quiet: its summary says how many passes it used (early stop with a holdout).
    return ["-d", data.train_vw, "--loss_function", "logistic", "-b", VW_BITS, "-f", model, *extra]


def parse_vw(p: "Proc") -> dict:
    out = {}
    for line in p.stderr.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "passes used":
            out["passes_used"] = int(value)
        elif key.strip() == "number of examples per pass":
            out["examples_per_pass"] = int(value)
    return out


def prepare(data: Data, *, parquet=True, libsvm=False, zarr=False, vw=False, test_rows_exact=True) -> dict:
    """Make whatever of the dataset is missing; returns the seconds each step took (this
    session's and earlier ones')."""
    log: dict = {}
    spec = data.dir / "spec.json"
    if spec.exists():
        info = json.loads(spec.read_text())
        if info["train_rows"] != data.rows or (test_rows_exact and info["test_rows"] != data.test_rows):
            print(f"  {data.dir}: cached data has other sizes; regenerating", file=sys.stderr)
            shutil.rmtree(data.dir)
        else:
            data.test_rows = info["test_rows"]
    data.dir.mkdir(parents=True, exist_ok=True)
    if parquet:
        _upgrade_parquet_layout(data, log)
    jobs = []
    if parquet and not data.train_parquet.exists():
        jobs.append("parquet")
    if libsvm and not data.train_svm.exists():
        jobs.append("libsvm")
    # The two generations are independent: run them side by side on the two cores.
    threads = [threading.Thread(target=_generate, args=(data, fmt, log)) for fmt in jobs]
    for fmt, t in zip(jobs, threads):
        print(f"  generating {data.dir.name}: {data.rows:,} + {data.test_rows:,} rows as {fmt} ...", file=sys.stderr)
        t.start()
    for t in threads:
        t.join()
    for fmt in jobs:
        if f"make_synthetic {fmt}" not in log:
            raise RuntimeError(f"generating {data.dir} as {fmt} failed")
    if zarr and not data.train_zarr.exists():
        p = check(measure(streamhog_cmd("convert", data.train_parquet, data.train_zarr, "--quiet")), "convert to zarr")
        log["convert parquet->zarr"] = round(p.wall_s, 2)
    if vw and not data.test_vw.exists():
        t0 = time.perf_counter()
        _to_vw(data.train_svm, data.train_vw)
        _to_vw(data.dir / "test.svm", data.test_vw)
        log["libsvm->vw text (sed)"] = round(time.perf_counter() - t0, 2)
    if vw and not data.vw_cache.exists():
        # VW writes its cache during a first pass over the text; later runs read only the cache.
        tmp = data.dir / "cache-build"
        tmp.mkdir(exist_ok=True)
        p = check(measure(vw_cmd(*_vw_train_args(data, tmp / "m.vw", "--cache_file", data.dir / ".cache.tmp")),
                          cwd=tmp), "vw cache build")
        (data.dir / ".cache.tmp").replace(data.vw_cache)
        shutil.rmtree(tmp)
        log["vw text->cache (1 pass)"] = round(p.wall_s, 2)
    # Kept with the data: a later run that reuses the cache still reports how it was made.
    record = data.dir / "preparation.json"
    done = json.loads(record.read_text()) if record.exists() else {}
    done.update(log)
    record.write_text(json.dumps(done, indent=1) + "\n")
    return done


def warm_page_cache(paths) -> None:
    """Read the inputs once so every system reads them from the page cache (24 GB of RAM
    hold them all): the benchmark compares compute, not the disk."""
    for p in paths:
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        for f in files:
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass


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
               argv=lambda d, w: vw_cmd(*_vw_train_args(d, w / "model.vw")), evaluate=evaluate_vw, parse=parse_vw),
        Config(key="vw-cache-p1", system="vw", label="VW, 1 pass from cache",
               argv=lambda d, w: vw_cmd(*_vw_train_args(d, w / "model.vw", "--cache_file", d.vw_cache)),
               evaluate=evaluate_vw, parse=parse_vw),
        # Several passes need a cache; --holdout_off: train on every example, as the others do.
        Config(key="vw-cache-p5", system="vw", label="VW, 5 passes from cache", passes=5,
               argv=lambda d, w: vw_cmd(*_vw_train_args(d, w / "model.vw", "--cache_file", d.vw_cache,
                                                         "--passes", 5, "--holdout_off")),
               evaluate=evaluate_vw, parse=parse_vw),
        # Context: VW's own guard for several passes (holdout every 10th example, stop when it
        # stops improving), which --holdout_off above turns off.
        Config(key="vw-cache-p5-holdout", system="vw", label="VW, 5 passes from cache, default holdout (early stop)",
               passes=5, argv=lambda d, w: vw_cmd(*_vw_train_args(d, w / "model.vw", "--cache_file", d.vw_cache,
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

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


@dataclass
class Summary:
    key: str
    system: str
    label: str
    n: int
    seconds: float           # the time rates use: adjusted, internal or raw
    seconds_min: float
    seconds_max: float
    wall_s: float            # whole process, median
    cpu_s: float             # whole process user + system CPU, median: less sensitive to others' load than wall
    startup_s: float | None  # median wall of the tiny twin
    startup_spread: float    # max - min of the tiny twin's wall: the noise the adjustment carries
    rows: int
    nnz: int
    examples_per_s: float
    nnz_per_s: float
    logloss: float | None
    auc: float | None
    peak_rss: int            # max over repeats
    peak_anon: int
    extra: dict


def summarize(cfg: Config, runs: list[Run]) -> Summary | None:
    real = [r for r in runs if r.key == cfg.key and not r.tiny and r.error is None]
    twins = [r for r in runs if r.key == cfg.key and r.tiny and r.error is None]
    if not real:
        return None
    startup = med([r.wall_s for r in twins])
    if cfg.timing == "adjusted":
        secs = [r.wall_s - startup for r in real]
    elif cfg.timing == "internal":
        secs = [r.internal["seconds"] for r in real]
    else:
        secs = [r.wall_s for r in real]
    s = med(secs)
    rate = s if s > 0 else float("nan")  # shorter than its start-up noise: no rate
    extra = {}
    for k in ("weights_apparent_bytes", "weights_allocated_bytes"):
        if k in real[0].internal:
            extra[k] = real[0].internal[k]
    if any("engine_seconds" in r.internal for r in real):
        extra["engine_seconds"] = med([r.internal.get("engine_seconds") for r in real])
    if any("passes_used" in r.internal for r in real):
        extra["passes_used"] = med([r.internal.get("passes_used") for r in real])
    if any(r.eval_proc for r in real):
        extra["eval_peak_rss"] = max(r.eval_proc.get("peak_rss", 0) for r in real)
        extra["eval_peak_anon"] = max(r.eval_proc.get("peak_anon", 0) for r in real)
    return Summary(key=cfg.key, system=cfg.system, label=cfg.label, n=len(real), seconds=s, seconds_min=min(secs),
                   seconds_max=max(secs), wall_s=med([r.wall_s for r in real]), cpu_s=med([r.cpu_s for r in real]),
                   startup_s=startup,
                   startup_spread=(max(r.wall_s for r in twins) - min(r.wall_s for r in twins)) if twins else 0.0,
                   rows=real[0].rows, nnz=real[0].nnz, examples_per_s=real[0].rows / rate,
                   nnz_per_s=real[0].nnz / rate, logloss=med([r.metrics.get("logloss") for r in real]),
                   auc=med([r.metrics.get("auc") for r in real]), peak_rss=max(r.peak_rss for r in real),
                   peak_anon=max(r.peak_anon for r in real), extra=extra)


@dataclass
class Ratio:
    what: str
    value: float | None       # from the adjusted / internal times: what PASS/MISS judges
    target: str
    passed: bool | None       # None: no target (context)
    how: str
    engine_value: float | None = None  # the same ratio with streamhog's own clock (model.json) for streamhog
    low: float | None = None           # the worst and best pairing of the two sides' min/max times
    high: float | None = None


def ratios(S: dict[str, Summary]) -> list[Ratio]:
    def t(k, engine=False):
        if k not in S:
            return None
        return S[k].extra.get("engine_seconds", S[k].seconds) if engine else S[k].seconds

    def div(a, b):
        # A time at or below zero (start-up noise at small sizes) has no meaningful ratio.
        return a / b if a is not None and b is not None and a > 0 and b > 0 else None

    def both(a, b):  # a / b with the measured times, with streamhog's own clock, and its spread
        if a not in S or b not in S:
            return None, None, None, None
        return (div(t(a), t(b)), div(t(a, True), t(b, True)), div(S[a].seconds_min, S[b].seconds_max),
                div(S[a].seconds_max, S[b].seconds_min))

    def judged(what, values, target, ok, how):
        v, e, lo, hi = (tuple(values) + (None,) * 4)[:4]
        return Ratio(what, v, target, None if v is None or ok is None else ok(v), how, e, lo, hi)

    sh1, sh5 = "streamhog-parquet-e1-t2", "streamhog-parquet-e5-t2"
    at_least = lambda x: (lambda v: v >= x)  # noqa: E731
    out = [
        judged("streamhog 1 epoch (Parquet, 2 threads) vs VW 1 pass from cache", both("vw-cache-p1", sh1), "≥ 4×",
               at_least(4), "VW time / streamhog time"),
        judged("streamhog 1 epoch (Parquet, 2 threads) vs scikit-learn partial_fit streamed",
               both("sklearn-partial-e1", sh1), "≥ 3×", at_least(3), "sklearn time / streamhog time"),
        judged("streamhog 5 epochs time / VW 5 passes time", both(sh5, "vw-cache-p5"), "≤ 0.2 (1/5)",
               lambda v: v <= 0.2, "streamhog time / VW time"),
    ]
    loss = lambda k: S[k].logloss if k in S else None  # noqa: E731
    a, b = loss(sh5), loss("vw-cache-p5")
    out.append(judged("streamhog 5 epochs test logloss / VW 5 passes test logloss", (div(a, b), None),
                      "≤ 1 (no worse)", lambda v: v <= 1.0,
                      f"{a:.4f} / {b:.4f}" if a is not None and b is not None else "—"))
    # nnz/s ratio = kernel time / end-to-end time (the same nnz on both sides).
    out.append(judged("end to end (Parquet, 1 epoch) vs in-memory kernel, 2 threads", both("kernel-t2", sh1),
                      "≥ 0.6×", at_least(0.6), "nnz/s end to end / nnz/s kernel"))
    out.append(judged("2 threads vs 1, end to end (Parquet, 1 epoch)", both("streamhog-parquet-e1-t1", sh1),
                      "≥ 1.2×", at_least(1.2), "time 1 thread / time 2 threads"))
    out.append(judged("2 threads vs 1, kernel alone", both("kernel-t1", "kernel-t2"), "≥ 1.5×", at_least(1.5),
                      "time 1 thread / time 2 threads"))
    out.append(judged("lock-free vs --sync lock (Parquet, 1 epoch, 2 threads)", both("streamhog-parquet-e1-t2-lock", sh1),
                      "≥ 1.3×", at_least(1.3), "time lock / time lock-free"))
    # Context, no targets.
    out.append(judged("streamhog 1 epoch (Zarr, 2 threads) vs VW 1 pass from cache",
                      both("vw-cache-p1", "streamhog-zarr-e1-t2"), "—", None, "VW time / streamhog time"))
    out.append(judged("streamhog 1 epoch (Parquet, 2 threads) vs VW 1 pass from text", both("vw-text-p1", sh1), "—",
                      None, "VW time / streamhog time"))
    c = loss("vw-cache-p5-holdout")
    out.append(judged("streamhog 5 epochs test logloss / VW 5 passes with its default holdout (early stop)",
                      (div(a, c), None), "—", None, f"{a:.4f} / {c:.4f}" if a is not None and c is not None else "—"))
    c = loss("vw-text-p1")
    out.append(judged("streamhog 5 epochs test logloss / VW 1 pass test logloss", (div(a, c), None), "—", None,
                      f"{a:.4f} / {c:.4f}" if a is not None and c is not None else "—"))
    out.append(judged("2 threads vs 1, end to end (Parquet, 5 epochs)", both("streamhog-parquet-e5-t1", sh5), "—",
                      None, "time 1 thread / time 2 threads"))
    # The same targets with --optimizer sgd (context: the speed AdaGrad's second array costs).
    g1, g5 = "streamhog-parquet-e1-t2-sgd", "streamhog-parquet-e5-t2-sgd"
    out.append(judged("--optimizer sgd: streamhog 1 epoch (Parquet, 2 threads) vs VW 1 pass from cache",
                      both("vw-cache-p1", g1), "—", None, "VW time / streamhog time"))
    out.append(judged("--optimizer sgd: streamhog 1 epoch vs scikit-learn partial_fit streamed",
                      both("sklearn-partial-e1", g1), "—", None, "sklearn time / streamhog time"))
    out.append(judged("--optimizer sgd: streamhog 5 epochs time / VW 5 passes time", both(g5, "vw-cache-p5"), "—", None,
                      "streamhog time / VW time"))
    a, b = loss(g5), loss("vw-cache-p5")
    out.append(judged("--optimizer sgd: streamhog 5 epochs test logloss / VW 5 passes test logloss",
                      (div(a, b), None), "—", None, f"{a:.4f} / {b:.4f}" if a is not None and b is not None else "—"))
    out.append(judged("--optimizer sgd: end to end (Parquet, 1 epoch) vs the sgd kernel, 2 threads",
                      both("kernel-t2-sgd", g1), "—", None, "nnz/s end to end / nnz/s kernel"))
    return [r for r in out if r.value is not None or r.target != "—"]


# -- reporting -------------------------------------------------------------------------------------

def finite(obj):
    """NaN/inf → null: the JSON stays valid for any reader."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def machine_info() -> dict:
    import importlib.metadata as md

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    versions = {}
    for pkg in ("streamhog", "vowpalwabbit", "scikit-learn", "pyarrow", "numba", "numpy", "zarr", "scipy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_bytes": mem, "python": platform.python_version(),
            "platform": platform.platform(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "versions": versions, "git": git_state(), "load_avg_start": os.getloadavg()}


def git_state() -> dict:
    def git(*a):
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted_engine_changes": bool(git("status", "--porcelain", "--", "streamhog"))}


def engine_hash() -> str:
    """Digest of streamhog/'s sources: others edit the engine while benchmarks run, and a
    run whose engine changed midway must say so."""
    h = hashlib.sha256()
    for f in sorted((ROOT / "streamhog").rglob("*.py")):
        h.update(f.relative_to(ROOT).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def noisy(s: Summary) -> bool:
    """An adjusted time shorter than the spread of its start-up runs is within the noise."""
    return s.startup_s is not None and s.seconds < s.startup_spread


def fmt_s(s: Summary) -> str:
    return f"{s.seconds:.2f} ({s.seconds_min:.2f}–{s.seconds_max:.2f}){' †' if noisy(s) else ''}"


def rate(x: float, scale: float = 1.0, digits: int = 0) -> str:
    return "n/a" if not np.isfinite(x) else f"{x / scale:,.{digits}f}"


def opt(x, f: str = ".4f") -> str:
    return "" if x is None else format(x, f)


def mb(x) -> str:
    return f"{x / 2**20:,.0f}"


def markdown(result: dict, S: dict[str, Summary], R: list[Ratio], runs: list[Run]) -> str:
    mode, info, data, prep = result["mode"], result["machine"], result["data"], result["preparation_s"]
    spec = data["spec"]
    bayes = spec["bayes_test_logloss"]
    rows, nnz = data["rows"], data["nnz"]
    L = [f"# streamhog benchmark ({mode})", ""]
    L.append(f"`python benchmarks/run.py --{mode}` — {info['date']}; {info['nproc']} cores ({info['cpu']}), "
             f"{info['ram_bytes'] / 2**30:.1f} GiB RAM, Python {info['python']}; "
             + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v) + "; streamhog at "
             f"{info['git']['commit']}{' + uncommitted engine changes' if info['git']['uncommitted_engine_changes'] else ''}.")
    if info.get("engine_changed_during_run"):
        L.append("")
        L.append("**Warning: streamhog/ changed while this benchmark ran; runs may mix engine versions.**")
    L += ["", f"Data: `tools/make_synthetic.py`, {rows:,} train + {data['test_rows']:,} test rows, "
              f"{spec['spec']['n_features']:,} features, {nnz / rows:.1f} nnz/row ({nnz / 1e6:.1f}M nnz), "
              f"Zipf {spec['spec']['zipf_exponent']} ids, real values. **Bayes test logloss {bayes:.4f}** "
              "(the true model's). All inputs are in the page cache.", ""]
    L.append(f"Each configuration ran {result['args']['repeats']}× interleaved; times are medians (min–max). streamhog and VW: "
             "whole-process wall time minus the start-up (the same command on a 1,000-row dataset, column "
             "*start-up*); *raw* is the whole process. scikit-learn and the kernel: their own clock around the fit "
             "/ the epoch (data already in memory, except partial_fit, which reads). Peak RSS / RssAnon: the "
             "whole training process, max over repeats (RssAnon excludes file pages: the memory-mapped weights "
             "and the data's page cache). Load average (1, 5, 15 min) at the start "
             + ", ".join(f"{x:.1f}" for x in info["load_avg_start"]) + ", at the end "
             + ", ".join(f"{x:.1f}" for x in info["load_avg_end"]) + f" ({info['nproc']} cores): other work on "
             "this machine shows there.")
    if mode == "quick":
        L += ["", "*--quick is a smoke test: here the training work is a fraction of a second against a ~2 s "
              "start-up, so adjusted times, rates and ratios are dominated by noise. `--full` is the measurement.*"]
    L += ["", "## Systems", "",
          "| system | time s | raw s | start-up s | engine s | CPU s | examples/s | M nnz/s | test logloss | AUC | "
          "peak RSS MB | peak RssAnon MB |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in S.values():
        if s.system in ("memory", "bigmodel", "convert"):
            continue
        label = s.label + (f" ({s.extra['passes_used']:g} passes used)" if "passes_used" in s.extra
                           and s.extra["passes_used"] != 5 and "holdout" in s.key else "")
        L.append(f"| {label} | {fmt_s(s)} | {s.wall_s:.2f} | {opt(s.startup_s, '.2f')} | "
                 f"{opt(s.extra.get('engine_seconds'), '.2f')} | {s.cpu_s:.1f} | {rate(s.examples_per_s)} | "
                 f"{rate(s.nnz_per_s, 1e6, 1)} | {opt(s.logloss)} | {opt(s.auc)} | {mb(s.peak_rss)} | "
                 f"{mb(s.peak_anon)} |")
    L += ["", "*engine s*: streamhog's own clock (the epochs' seconds in model.json), for comparison with the "
          "adjusted time. *CPU s*: user + system CPU of the whole process (start-up and loading included), "
          "median; unlike wall time it does not grow when other work takes the cores. † shorter than the spread (max − min) of its start-up runs: within the noise of the "
          "start-up subtraction."]
    L += ["", f"Bayes test logloss: {bayes:.4f}.", "", "## Ratios against the targets (issue 5)", "",
          "| comparison | measured | target | | how | with streamhog's own clock |", "|---|---:|---:|---|---|---:|"]
    for r in R:
        mark = "" if r.passed is None else ("PASS" if r.passed else "MISS")
        spread = f" ({r.low:.2f}–{r.high:.2f})" if r.low is not None and r.high is not None else ""
        L.append(f"| {r.what} | {'n/a' if r.value is None else f'{r.value:.2f}'}{spread} | {r.target} | {mark} | {r.how} | "
                 f"{'' if r.engine_value is None else f'{r.engine_value:.2f}'} |")
    L += ["", "*measured*: the ratio of the median adjusted (streamhog, VW) or internal (scikit-learn, kernel) "
          "times above, PASS/MISS judges it; in parentheses the least and most favourable pairing of the two "
          "sides' min and max times. *With streamhog's own clock*: the same ratio with streamhog's epoch seconds from model.json "
          "in place of its adjusted time (excludes start-up, the label check and the final checkpoint): a "
          "cross-check where a second of start-up noise weighs on a 1-epoch run."]
    m1, m5 = S.get("memory-1x"), S.get("memory-5x")
    if m1 and m5:
        ratio = m5.peak_anon / m1.peak_anon
        ok = ratio <= 1.2 and max(m1.peak_anon, m5.peak_anon) < 400 * 2**20
        L += ["", "## Bounded memory", "", "`streamhog train DATA --epochs 1` with the defaults, on the train split "
              "and on a 5× larger one (generated the same way).", "",
              "| data | rows | nnz | wall s | peak RSS MB | peak RssAnon MB |", "|---|---:|---:|---:|---:|---:|",
              f"| N | {m1.rows:,} | {m1.nnz:,} | {m1.wall_s:.2f} | {mb(m1.peak_rss)} | {mb(m1.peak_anon)} |",
              f"| 5N | {m5.rows:,} | {m5.nnz:,} | {m5.wall_s:.2f} | {mb(m5.peak_rss)} | {mb(m5.peak_anon)} |", "",
              f"Peak RssAnon 5N / N: **{ratio:.2f}** (target ≤ 1.20, both < 400 MB): **{'PASS' if ok else 'MISS'}**. "
              "Peak RSS minus RssAnon is file-backed and shared pages (VmRSS = RssAnon + RssFile + RssShmem): "
              "memory-mapped input and weights, which the kernel can drop under pressure."]
    b = S.get("bigmodel")
    if b:
        e = b.extra
        L += ["", "## A model larger than RAM", "",
              f"`streamhog train train.parquet --n-features {BIG_N_FEATURES:,} --epochs 1 --checkpoint-every 5`, then "
              "`streamhog evaluate` on the test split.", "",
              "| time s | raw s | engine s | examples/s | M nnz/s | weights.npy apparent | allocated on disk | "
              "peak RSS MB | peak RssAnon MB | evaluate peak RSS MB | test logloss | AUC |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
              f"| {fmt_s(b)} | {b.wall_s:.2f} | {opt(e.get('engine_seconds'), '.2f')} | {rate(b.examples_per_s)} | "
              f"{rate(b.nnz_per_s, 1e6, 1)} | "
              f"{e['weights_apparent_bytes'] / 2**30:.1f} GiB | {e['weights_allocated_bytes'] / 2**20:.1f} MiB | "
              f"{mb(b.peak_rss)} | {mb(b.peak_anon)} | {mb(e.get('eval_peak_rss', 0))} | "
              f"{opt(b.logloss)} | {opt(b.auc)} |"]
    c = S.get("convert-libsvm-parquet")
    L += ["", "## Data preparation", ""]
    if c:
        size = data.get("train_svm_bytes") or (Path(data["dir"]) / "train.svm").stat().st_size
        L.append(f"`streamhog convert train.svm train.parquet` ({size / 1e6:,.0f} MB of LIBSVM text): {fmt_s(c)} s "
                 f"after start-up ({c.wall_s:.2f} s raw): {rate(size / c.seconds if c.seconds > 0 else np.nan, 1e6)} "
                 f"MB/s, {rate(c.examples_per_s)} rows/s, peak RssAnon {mb(c.peak_anon)} MB.")
    if prep:
        L.append("")
        L.append("One-time steps, when the data cache was made (s): " + "; ".join(f"{k} {v}" for k, v in prep.items()) + ".")
    v1, v5 = S.get("vw-cache-p1"), S.get("vw-cache-p5")
    if v1 and v5 and v1.logloss is not None and v5.logloss is not None and v5.logloss > v1.logloss:
        L += ["", f"Note: with `--holdout_off` VW's defaults overfit over 5 passes (test logloss {v5.logloss:.4f} "
              f"after 5 passes, {v1.logloss:.4f} after 1), which makes the 5-epoch loss comparison easy; the "
              "row *default holdout (early stop)* is VW guarding itself as it does by default."]
    failed = [r for r in runs if r.error]
    if failed:
        L += ["", "## Failed runs (left out of the tables)", ""]
        L += [f"- {r.key}, repeat {r.repeat + 1}{' (start-up twin)' if r.tiny else ''}: "
              f"{r.error.strip().splitlines()[-1][:300]}" for r in failed]
    L += ["", "## Notes", "",
          f"- VW {info['versions'].get('vowpalwabbit')}: `python -m vowpalwabbit` (the wheel's entry to VW's own "
          f"command line), `--loss_function logistic -b {VW_BITS}`, otherwise VW's defaults (adaptive, normalized, "
          "invariant updates, learning rate 0.5); input converted from the LIBSVM file (`label | id:value ...`; "
          "numeric ids hash to themselves, so no collisions). The cache is built once by a first pass over the "
          "text (`--cache_file`); 5 passes use `--passes 5 --holdout_off`. Test predictions: `-t -i model "
          "-r raw` (exact margins), scored by streamhog.model.metrics as `streamhog evaluate` scores streamhog. VW "
          "parses on a second thread.",
          "- scikit-learn: `SGDClassifier(loss=\"log_loss\", max_iter=epochs, tol=None)` with its defaults "
          "(alpha 1e-4, `optimal` learning rate); partial_fit gets one Parquet row group at a time "
          "(pyarrow `read_row_group`, the packed cells read by their byte offsets with NumPy, → scipy CSR "
          "float64: the fast decode of streamhog's layout serves it too), in a random order.",
          "- The kernel: `streamhog.kernels.sgd.train_rows` over the train split decoded into memory by "
          "streamhog's readers, with the trainer's defaults, block order, row shuffling and step counter; 2 "
          "Python threads share one weight vector and claim blocks from a shared queue.",
          "- streamhog: the CLI with its defaults except the options shown in each row (`--threads`, `--epochs`, "
          "`--holdout 0`, `--optimizer`, `--sync`; `--n-features`, `--checkpoint-every` for the large model). "
          "The start-up twin runs the same command on 1,000 rows, so the adjusted time also leaves out the "
          "command's fixed per-run and per-epoch costs (model creation, epoch-end checkpoints); *engine s* is the engine's own clock for comparison.",
          ]
    return "\n".join(L) + "\n"


def plot(path: Path, S: dict[str, Summary], bayes: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 (matplotlib.ticker below)

    series = [  # (label, keys in order of passes, style)
        ("streamhog Parquet, 2 threads (1, 5 epochs)", ["streamhog-parquet-e1-t2", "streamhog-parquet-e5-t2"], "o-"),
        ("streamhog Zarr, 2 threads (1, 5 epochs)", ["streamhog-zarr-e1-t2", "streamhog-zarr-e5-t2"], "s-"),
        ("streamhog Parquet, 1 thread (1, 5 epochs)", ["streamhog-parquet-e1-t1", "streamhog-parquet-e5-t1"], "o:"),
        ("VW from cache (1, 5 passes)", ["vw-cache-p1", "vw-cache-p5"], "^-"),
        ("VW from text (1 pass)", ["vw-text-p1"], "v"),
        ("VW from cache, 5 passes with holdout (early stop)", ["vw-cache-p5-holdout"], "x"),
        ("sklearn fit, in memory (1, 5 epochs)", ["sklearn-fit-e1", "sklearn-fit-e5"], "D-"),
        ("sklearn partial_fit, streamed (1 epoch)", ["sklearn-partial-e1"], "P"),
    ]
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=100)
    for label, keys, style in series:
        pts = [(S[k].seconds, S[k].logloss) for k in keys if k in S and S[k].logloss is not None]
        pts = [(x, y) for x, y in pts if x > 0]  # log axis: a time lost in start-up noise is left out
        if pts:
            xs, ys = zip(*pts)
            line, = ax.plot(xs, ys, style, label=label, markersize=6)
            if len(pts) > 1:  # which point is which pass count
                for (x, y), n in zip(pts, (1, 5)):
                    ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                                color=line.get_color())
    ax.axhline(bayes, color="k", linestyle="--", linewidth=1, label=f"Bayes logloss {bayes:.4f}")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training time, s (streamhog/VW: wall minus start-up; sklearn: fit only)")
    ax.set_ylabel("test logloss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
