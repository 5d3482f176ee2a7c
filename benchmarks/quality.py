#!/usr/bin/env python3
"""streamhog's test loss against Vowpal Wabbit's, both with their defaults (issue 6's quality targets).

    python benchmarks/quality.py [--synthetic-rows N] [--out DIR] [--publish]

Runs, in one session: one pass on a9a and on the synthetic benchmark data (benchmarks/run.py's,
reused from benchmarks/output/data-<N> or generated there), and 1/3/5 passes on the Criteo
sample. streamhog shuffles and trains with 2 Hogwild! threads, so its default runs are repeated
with seeds 0-8 on a9a, 0-2 elsewhere (median, min-max); VW is deterministic and runs once. Every model is scored
on the held-out split: streamhog by `streamhog evaluate --json`, VW by `-t -i model -r raw`
(raw margins, scored here). Times are whole-process wall times of the training command
(start-up included). Writes DIR/results.{json,md} (default benchmarks/output/quality);
--publish also copies the Markdown to benchmarks/quality.md.

Targets: (i) a9a, one pass: streamhog's median test logloss <= VW's; (ii) the same on the
synthetic data; (iii) Criteo sample: streamhog with its defaults (5 epochs) <= VW's best of
1/3/5 passes over two input encodings.
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common.data import Data, prepare, streamhog_cmd  # noqa: E402
from common.metering import check, engine_hash, finite, last_json, machine_info, measure  # noqa: E402
from common.paths import OUTPUT  # noqa: E402
from common.peers import VW_BITS, to_vw, vw_cmd  # noqa: E402

from streamhog.datasets import a9a, criteo_sample  # noqa: E402
from streamhog.io.hashing import DEFAULT_HASH_BITS, numeric_token  # noqa: E402
from streamhog.model.metrics import MetricAccumulator  # noqa: E402

SEEDS = (0, 1, 2)
# a9a is small: one pass ends on a few hundred rows whose order moves the test loss by
# +-0.001 (VW's file order is one draw of it), so its median takes 9 row orders.
A9A_SEEDS = tuple(range(9))
CRITEO_EPOCHS = (1, 3, 5)
CRITEO_VW_BITS = DEFAULT_HASH_BITS  # streamhog's hash space for click logs


# -- one model: train, score ------------------------------------------------------------------------

def streamhog_run(train: Path, test: Path, work: Path, *opts) -> dict:
    """`streamhog train` (defaults + opts), then `streamhog evaluate` on the test split."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    p = check(measure(streamhog_cmd("train", train, "--model", work / "model", "--quiet", *opts)), "streamhog train")
    m = last_json(check(measure(streamhog_cmd("evaluate", test, "--model", work / "model", "--json")),
                        "streamhog evaluate").stdout)
    meta = json.loads((work / "model" / "model.json").read_text())
    history = meta.get("history", [])
    shutil.rmtree(work)
    # Epochs run and the epoch whose model was kept (early stopping), for the record.
    return {**m, "train_s": p.wall_s, "engine_s": sum(h["seconds"] for h in history), "epochs_run": len(history),
            "kept_epoch": meta.get("training", {}).get("best_epoch") or len(history)}


def vw_run(train: Path, test: Path, work: Path, *opts) -> dict:
    """`vw -d TRAIN --loss_function logistic ... -f model`, then `vw -t -i model -r raw` on TEST."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    p = check(measure(vw_cmd("-d", train, "--loss_function", "logistic", "-f", work / "model.vw", *opts), cwd=work),
              "vw train")
    check(measure(vw_cmd("-d", test, "-t", "-i", work / "model.vw", "-r", work / "raw.txt", "--quiet"), cwd=work),
          "vw -t")
    margin = np.loadtxt(work / "raw.txt", usecols=0, ndmin=1)
    shutil.rmtree(work)
    return {**margin_metrics(vw_labels(test), margin), "train_s": p.wall_s}


def vw_labels(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        return np.array([float(line.split(None, 1)[0]) > 0 for line in f])


def margin_metrics(labels: np.ndarray, margin: np.ndarray) -> dict:
    """VW's margins scored as `streamhog evaluate` scores streamhog's (streamhog.model.metrics)."""
    acc = MetricAccumulator("logistic")
    acc.update(margin, np.where(labels, 1.0, -1.0).astype(np.float32))
    return acc.result()


def row(rows: list, dataset: str, label: str, passes: int, runs: list[dict]) -> dict:
    r = {"dataset": dataset, "label": label, "passes": passes, "runs": runs}
    for k in ("logloss", "auc", "accuracy", "train_s", "engine_s"):
        if k not in runs[0]:
            continue
        vals = [x[k] for x in runs]
        r[k], r[k + "_min"], r[k + "_max"] = statistics.median(vals), min(vals), max(vals)
    rows.append(r)
    print(f"  {dataset:9} {label:52} {passes}: logloss {r['logloss']:.4f}  AUC {r['auc']:.4f}  "
          f"{r['train_s']:6.1f} s", file=sys.stderr)
    return r


# -- section 1: one pass, a9a and synthetic ---------------------------------------------------------

def one_pass(rows: list, dataset: str, train: Path, test: Path, train_vw: Path, test_vw: Path, work: Path,
             vw_opts=(), seeds=SEEDS) -> tuple[dict, dict]:
    sh = row(rows, dataset, f"streamhog defaults (adagrad), seeds {seeds[0]}-{seeds[-1]}", 1,
             [streamhog_run(train, test, work / f"sh-{s}", "--epochs", 1, "--seed", s) for s in seeds])
    for opt in ("sgd", "normalized", "ftrl"):  # context: the other optimizers at their defaults
        row(rows, dataset, f"streamhog --optimizer {opt}, seed 0", 1,
            [streamhog_run(train, test, work / f"sh-{opt}", "--epochs", 1, "--optimizer", opt)])
    vw = row(rows, dataset, "VW defaults" + (f" (-b {vw_opts[-1]})" if vw_opts else ""), 1,
             [vw_run(train_vw, test_vw, work / "vw", *vw_opts)])
    return sh, vw


def prepare_a9a(d: Path) -> dict:
    d.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train"), ("test", "test")):
        # a9a.t never uses feature 123: give it the training split's dimension.
        extra = ("--n-features", 123) if split == "test" else ()
        check(measure(streamhog_cmd("convert", a9a(split), d / f"{name}.parquet", "--overwrite", "--quiet", *extra)),
              f"convert a9a {split}")
        with gzip.open(a9a(split), "rb") as src, open(d / f"{name}.svm", "wb") as dst:
            shutil.copyfileobj(src, dst)
        to_vw(d / f"{name}.svm", d / f"{name}.vw")
    return {"train": d / "train.parquet", "test": d / "test.parquet", "train_vw": d / "train.vw",
            "test_vw": d / "test.vw"}


def synthetic_data(rows: int) -> Data:
    data = Data(OUTPUT / f"data-{rows}", rows, max(rows // 9, 50_000))  # run.py's test size
    needed = (data.train_parquet, data.test_parquet, data.train_vw, data.test_vw)
    if not all(p.exists() for p in needed):  # reuse run.py's cache untouched when it is complete
        prepare(data, libsvm=True, vw=True)
    data.test_rows = data.spec["test_rows"]
    return data


# -- section 2: the Criteo sample -------------------------------------------------------------------

def criteoto_vw(src: Path, dst: Path, binned: bool) -> None:
    """Criteo TSV → VW text: namespace n holds I1..I13 (numeric `I1:v`, or binned `I1_<bin>`),
    namespace c the categoricals `C1_<hex>`; empty fields give no feature; label 0/1 → -1/1."""
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt") as f, open(dst, "w") as out:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            ints, cats = fields[1:14], fields[14:40]
            n = " ".join((f"I{k}_{numeric_token(v)}" if binned else f"I{k}:{v}") for k, v in enumerate(ints, 1) if v)
            c = " ".join(f"C{k}_{v}" for k, v in enumerate(cats, 1) if v)
            out.write(f"{'1' if fields[0] == '1' else '-1'} |n {n} |c {c}\n")


def criteo(rows: list, out: Path) -> dict:
    """Returns the target's inputs: streamhog's default run and VW's best."""
    src = {s: criteo_sample(s) for s in ("train", "test")}  # the published rows, gzipped
    d = out / "criteo"
    d.mkdir(parents=True, exist_ok=True)
    prep = {"source": {s: str(p) for s, p in src.items()}}
    for s in ("train", "test"):
        p = check(measure(streamhog_cmd("convert", src[s], d / f"{s}.parquet", "--input-format", "criteo",
                                        "--overwrite", "--quiet")), f"convert criteo {s}")
        prep[f"streamhog convert {s} s"] = round(p.wall_s, 2)
        for variant, binned in (("numeric", False), ("binned", True)):
            criteoto_vw(src[s], d / f"{s}-{variant}.vw", binned)
    train, test, work = d / "train.parquet", d / "test.parquet", d / "work"
    label = "streamhog defaults (2^20 hashed), seeds 0-2"
    sh = {}
    for e in CRITEO_EPOCHS:
        runs = [streamhog_run(train, test, work / f"sh-{e}-{s}", "--epochs", e, "--seed", s) for s in SEEDS]
        stops = "" if e == 1 else (f"; epochs run {'/'.join(str(r['epochs_run']) for r in runs)}, "
                                   f"kept {'/'.join(str(r['kept_epoch']) for r in runs)}")
        sh[e] = row(rows, "criteo", label + " (default: 5 epochs)" * (e == 5) + stops, e, runs)
    vw = []
    for variant, what in (("numeric", "integers numeric"), ("binned", "integers log-binned")):
        for passes in CRITEO_EPOCHS:
            # More than one pass reads VW's cache, fresh per run (-k), and trains on every row (no holdout).
            multi = ("--passes", passes, "--cache_file", work / "vw.cache", "-k", "--holdout_off") if passes > 1 else ()
            vw.append(row(rows, "criteo", f"VW defaults -b {CRITEO_VW_BITS}, {what}", passes,
                          [vw_run(d / f"train-{variant}.vw", d / f"test-{variant}.vw", work / "vw", "-b",
                                  CRITEO_VW_BITS, *multi)]))
    shutil.rmtree(work, ignore_errors=True)
    return {"streamhog": sh[5], "vw_best": min(vw, key=lambda r: r["logloss"]), "preparation": prep}


# -- report -----------------------------------------------------------------------------------------

def target(what: str, sh: dict, vw: dict) -> dict:
    return {"what": what, "streamhog": sh["logloss"], "streamhog_min": sh["logloss_min"],
            "streamhog_max": sh["logloss_max"], "vw": vw["logloss"], "vw_run": f"{vw['label']}, {passes(vw['passes'])}",
            "delta": sh["logloss"] - vw["logloss"], "passed": sh["logloss"] <= vw["logloss"]}


def passes(n: int) -> str:
    return f"{n} pass{'es' * (n > 1)}"


def spread(r: dict, k: str, f: str = ".4f") -> str:
    if len(r["runs"]) == 1:
        return format(r[k], f)
    return f"{format(r[k], f)} ({format(r[k + '_min'], f)}–{format(r[k + '_max'], f)})"


def markdown(res: dict) -> str:
    info = res["machine"]
    rows = res["synthetic"]["rows"]
    L = ["# streamhog vs Vowpal Wabbit: test loss with the defaults (issue 6)", "",
         f"`python benchmarks/quality.py{f' --synthetic-rows {rows}' if rows != 200_000 else ''}` — "
         f"{info['date']}; {info['nproc']} cores ({info['cpu']}), {info['ram_bytes'] / 2**30:.1f} GiB RAM, "
         f"Python {info['python']}; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
         + f"; streamhog at {info['git']['commit']}"
         + (" + uncommitted engine changes" if info["git"]["uncommitted_engine_changes"] else "")
         + f"; {res['elapsed_s']:.0f} s in all."]
    if info.get("engine_changed_during_run"):
        L += ["", "**Warning: streamhog/ changed while this benchmark ran; runs may mix engine versions.**"]
    L += ["", "## Targets", "", "| target | streamhog | VW | streamhog − VW | |", "|---|---:|---:|---:|---|"]
    for t in res["targets"]:
        if "error" in t:
            L.append(f"| {t['what']} | | | | FAILED: {t['error']} |")
            continue
        L.append(f"| {t['what']} | {t['streamhog']:.4f} ({t['streamhog_min']:.4f}–{t['streamhog_max']:.4f}) | "
                 f"{t['vw']:.4f} ({t['vw_run']}) | {t['delta']:+.4f} | {'PASS' if t['passed'] else 'MISS'} |")
    L += ["", "Test logloss; streamhog: median (min–max) over seeds (row orders): 0–8 on a9a, 0–2 elsewhere."]
    syn = res["synthetic"]
    titles = {
        "a9a": "a9a (32,561 train / 16,281 test rows, 123 binary features), one pass",
        "synthetic": f"Synthetic ({syn['rows']:,} train / {syn['test_rows']:,} test rows, "
                     f"{syn['spec']['spec']['n_features']:,} features, ~{syn['spec']['spec']['nnz_per_row']} nnz/row; "
                     f"Bayes test logloss {syn['spec']['bayes_test_logloss']:.4f}), one pass",
        "criteo": "Criteo sample (8,000 train / 2,000 test rows, 13 integer + 26 categorical fields)",
    }
    for ds, title in titles.items():
        rs = [r for r in res["rows"] if r["dataset"] == ds]
        if not rs:
            continue
        L += ["", f"## {title}", "", "| run | passes | test logloss | AUC | accuracy | train s | engine s |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        L += [f"| {r['label']} | {r['passes']} | {spread(r, 'logloss')} | {spread(r, 'auc')} | "
              f"{spread(r, 'accuracy')} | {spread(r, 'train_s', '.1f')} | "
              f"{spread(r, 'engine_s', '.2f') if 'engine_s' in r else ''} |" for r in rs]
    L += ["", "## How", "",
          "- streamhog: `streamhog train TRAIN.parquet --model M --epochs E --seed S --quiet` (defaults: AdaGrad, "
          "lr 0.1 constant, initial accumulator 1, l2 1e-6, one thread per core, Hogwild!; with more than one epoch "
          "a 10% holdout, early stopping after 2 epochs without improvement, the best epoch's model kept), then `streamhog evaluate TEST.parquet --model M "
          "--json`. Context rows add `--optimizer sgd|normalized|ftrl` (each with its default learning rate).",
          "- VW: `python -m vowpalwabbit -d TRAIN.vw --loss_function logistic -f model.vw` (otherwise VW's "
          f"defaults: adaptive, normalized, invariant updates, learning rate 0.5; `-b {VW_BITS}` on the synthetic "
          f"data as in benchmarks/run.py, the default `-b 18` on a9a, `-b {CRITEO_VW_BITS}` on Criteo); more than one "
          "pass: `--passes P --cache_file C -k --holdout_off`. Scored by `-t -i model.vw -r raw.txt`: raw margins, "
          "logloss = mean log(1 + e^(−y·margin)), AUC and accuracy as `streamhog evaluate` computes them (streamhog.model.metrics).",
          "- a9a and the synthetic data: VW reads the LIBSVM lines as `label | id:value ...` (benchmarks/run.py's "
          "`_to_vw`); streamhog reads them converted to Parquet (`streamhog convert`).",
          "- Criteo: streamhog `convert SRC DST.parquet --input-format criteo` (2^20 hashed features; integer "
          "fields log-binned as categoricals: `SP<v>` for v ≤ 2, else ⌊ln(v)²⌋). VW gets two encodings, one line "
          "per row, empty fields skipped, label 0/1 → −1/1: *integers numeric* `|n I1:v ... |c C1_<hex> ...`; "
          "*integers log-binned* `|n I1_<bin> ... |c C1_<hex> ...` with streamhog's bins. Source: "
          f"{', '.join(res['criteo_preparation'].get('source', {}).values())}.",
          "- *train s*: whole-process wall time of the training command, start-up included (seconds of imports "
          "for streamhog); *engine s*: streamhog's own epoch clock (model.json). On a shared machine: a rough "
          "guide, not a speed benchmark (see benchmarks/results.md)."]
    return "\n".join(L) + "\n"


# -- main -------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synthetic-rows", type=int, default=200_000,
                    help="train rows of the synthetic data: benchmarks/output/data-<N>, reused or generated "
                         "(default 200,000; 1,800,000 is run.py --full's)")
    ap.add_argument("--out", type=Path, default=OUTPUT / "quality", help="where results.{json,md} and scratch go")
    ap.add_argument("--publish", action="store_true", help="also copy results.md to benchmarks/quality.md")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    info = machine_info()
    engine_before = engine_hash()
    rows, targets = [], []

    print("a9a ...", file=sys.stderr)
    a = prepare_a9a(out / "a9a")
    # Warm-up, not recorded: numba's caches are rebuilt after an engine edit.
    streamhog_run(a["train"], a["test"], out / "warmup", "--epochs", 1)
    targets.append(target("(i) a9a, one pass: streamhog defaults ≤ VW defaults",
                          *one_pass(rows, "a9a", a["train"], a["test"], a["train_vw"], a["test_vw"], out / "work",
                                    seeds=A9A_SEEDS)))

    print(f"synthetic ({args.synthetic_rows:,} rows) ...", file=sys.stderr)
    s = synthetic_data(args.synthetic_rows)
    targets.append(target("(ii) synthetic, one pass: streamhog defaults ≤ VW defaults",
                          *one_pass(rows, "synthetic", s.train_parquet, s.test_parquet, s.train_vw, s.test_vw,
                                    out / "work", ("-b", VW_BITS))))

    print("criteo sample ...", file=sys.stderr)
    what = "(iii) Criteo sample: streamhog defaults (5 epochs) ≤ VW's best of 1/3/5 passes, 2 encodings"
    c_prep: dict = {}
    try:
        c = criteo(rows, out)
        c_prep = c["preparation"]
        targets.append(target(what, c["streamhog"], c["vw_best"]))
    except Exception as exc:  # noqa: BLE001 - a missing converter must not lose the other sections
        print(f"  FAILED: {exc}", file=sys.stderr)
        targets.append({"what": what, "error": str(exc).strip().splitlines()[-1][:300], "passed": False})
    shutil.rmtree(out / "work", ignore_errors=True)

    info["engine_changed_during_run"] = engine_hash() != engine_before
    res = {"machine": info, "elapsed_s": round(time.perf_counter() - t0, 1),
           "synthetic": {"dir": str(s.dir), "rows": s.rows, "test_rows": s.test_rows, "spec": s.spec},
           "criteo_preparation": c_prep, "targets": targets, "rows": rows}
    (out / "results.json").write_text(json.dumps(finite(res), indent=1) + "\n")
    text = markdown(res)
    (out / "results.md").write_text(text)
    if args.publish:
        shutil.copyfile(out / "results.md", HERE / "quality.md")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
