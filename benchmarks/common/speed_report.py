"""run.py's report: per configuration the median of its repeats, the issue's targets as
ratios measured side by side, the Markdown table and the loss-against-time plot."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .peers import VW_BITS

#: The big model's dimension (run.py's 2^33-feature configuration).
BIG_N_FEATURES = 2 ** 33


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


def summarize(cfg, runs: list) -> Summary | None:
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


def markdown(result: dict, S: dict[str, Summary], R: list[Ratio], runs: list) -> str:
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
