"""Soak: a multi-epoch 2-thread training run killed with ``kill -9`` at random moments, many
times, each kill followed by ``--resume`` (issue 16, "Also deliver").

The run has everything on that writes files while it trains: checkpoints every
``--checkpoint-every`` seconds and at epoch ends, rollback snapshots (``--keep-snapshots``),
the block cache (on by default with several epochs), a 10% holdout with early stopping (the
best epoch's copy). The test-only hooks ``STREAMHOG_TEST_CHECKPOINT_DELAY`` and
``STREAMHOG_TEST_CACHE_DELAY`` widen the write windows of checkpoints (also those inside
snapshot and best-epoch copies) and of cache files, so that kills land inside them too.

Each process is killed at a uniformly random moment of its life (``--kill-min`` to
``--kill-max`` seconds after it started: start-up, replay, training, evaluation, writes).
Only the very first process waits for its first checkpoint before its clock starts: a run
killed before it has any checkpoint cannot be resumed (docs/guarantees.md). Right after each
kill the model directory is inspected to tell where the kill landed (a checkpoint being
written, a snapshot or best-epoch copy being made, a cache file being written, or
elsewhere). A resume that exits non-zero on its own is a failure. When a run finishes
before the kills are used up, its final test loss is compared and a new run starts. Every
finished run's test logloss must be within 1% of an undisturbed run of the same command.

    python tools/make_synthetic.py /tmp/soak-data --rows 200000 --test-rows 20000 --rows-per-group 8192
    nice -n 19 python benchmarks/soak.py /tmp/soak-data --kills 50 --out benchmarks/soak.md
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable


def streamhog(*args) -> list[str]:
    return [PY, "-m", "streamhog", *map(str, args)]


_TEMPORARIES = {  # where each kind of write keeps its file until it is renamed into place
    "checkpoint write": (".checkpoint.json.tmp-*", "snapshots/*/.checkpoint.json.tmp-*",
                         ".*.tmp/.checkpoint.json.tmp-*"),
    "snapshot / best-epoch copy": (".*.tmp", ".*.old", "snapshots/.*.tmp", "snapshots/.*.old"),
    "cache write": ("cache/.block-*.tmp-*",),
}


def temporaries(model: Path) -> dict:
    """Every temporary in the model directory, by kind, with its inode and mtime (a file a
    later process re-creates under the same name is a new one)."""
    found = {}
    for kind, patterns in _TEMPORARIES.items():
        for pattern in patterns:
            for p in model.glob(pattern):
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                found[(str(p), st.st_ino, st.st_mtime_ns)] = kind
    return found


def where_killed(model: Path, before: dict) -> str:
    """Where the kill landed: a temporary this process created and left (see _TEMPORARIES:
    names of streamhog/checkpoint.py, trainer.py's _save_copy, formats/block_cache.py), or
    checkpoint.json moved aside and not yet replaced."""
    if (model / "checkpoint.prev.json").exists() and not (model / "checkpoint.json").exists():
        return "checkpoint write"
    new = {key: kind for key, kind in temporaries(model).items() if key not in before}
    for kind in _TEMPORARIES:  # a checkpoint written inside a copy counts as the copy's
        if kind in new.values() and not (kind == "checkpoint write" and "snapshot / best-epoch copy" in new.values()):
            return kind
    return "elsewhere (start-up, training, evaluation)"


def test_logloss(model: Path, test: Path) -> float:
    out = subprocess.run(streamhog("evaluate", test, "--model", model, "--json"), check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)["logloss"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="directory with train.parquet and test.parquet (tools/make_synthetic.py)")
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint-every", type=float, default=0.5)
    ap.add_argument("--keep-snapshots", type=int, default=2)
    ap.add_argument("--kill-min", type=float, default=0.1, help="seconds after a process starts")
    ap.add_argument("--kill-max", type=float, default=4.0)
    ap.add_argument("--checkpoint-delay", type=float, default=0.05, help="STREAMHOG_TEST_CHECKPOINT_DELAY")
    ap.add_argument("--cache-delay", type=float, default=0.01, help="STREAMHOG_TEST_CACHE_DELAY")
    ap.add_argument("--seed", type=int, default=0, help="of the kill times")
    ap.add_argument("--out", type=Path, help="write the report (Markdown) here")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="streamhog-soak-"))
    train, test = args.data / "train.parquet", args.data / "test.parquet"
    common = ["--threads", args.threads, "--readers", args.threads, "--epochs", args.epochs, "--checkpoint-every",
              args.checkpoint_every, "--keep-snapshots", args.keep_snapshots, "--quiet"]
    env = dict(os.environ, STREAMHOG_TEST_CHECKPOINT_DELAY=str(args.checkpoint_delay),
               STREAMHOG_TEST_CACHE_DELAY=str(args.cache_delay))

    t0 = time.perf_counter()
    subprocess.run(streamhog("train", train, "--model", work / "ref", *common), check=True)
    ref_seconds = time.perf_counter() - t0
    reference = test_logloss(work / "ref", test)
    print(f"undisturbed run: {ref_seconds:.1f} s, test logloss {reference:.6f}", file=sys.stderr)

    kills, runs, failures = [], [], []
    run_index = 0
    while len(kills) < args.kills:
        run_index += 1
        model = work / f"run-{run_index}"
        started = time.perf_counter()
        processes = 0
        cmd = streamhog("train", train, "--model", model, *common)
        while True:
            processes += 1
            before = temporaries(model) if model.exists() else {}
            proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
            born = time.monotonic()
            if processes == 1:  # no checkpoint yet: nothing to resume from
                while not (model / "checkpoint.json").exists() and proc.poll() is None:
                    time.sleep(0.005)
                born = time.monotonic()
            at = rng.uniform(args.kill_min, args.kill_max)
            while time.monotonic() - born < at and proc.poll() is None:
                time.sleep(0.002)
            if proc.poll() is None and len(kills) < args.kills:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills.append({"run": run_index, "process": processes, "at_s": round(time.monotonic() - born, 3),
                              "where": where_killed(model, before)})
                print(f"kill {len(kills)}: run {run_index} process {processes} at {kills[-1]['at_s']:.2f} s, "
                      f"{kills[-1]['where']}", file=sys.stderr)
                cmd = streamhog("train", train, "--model", model, "--resume", *common)
                continue
            err = proc.communicate()[1]
            if proc.returncode != 0:
                failures.append({"run": run_index, "process": processes, "rc": proc.returncode, "stderr": err[-2000:]})
                print(f"FAILED: run {run_index} process {processes} exited {proc.returncode}: {err}", file=sys.stderr)
            break
        if failures:
            break
        loss = test_logloss(model, test)
        runs.append({"run": run_index, "processes": processes, "seconds": round(time.perf_counter() - started, 1),
                     "test_logloss": loss, "relative_difference": abs(loss - reference) / reference})
        print(f"run {run_index} finished after {processes} processes: test logloss {loss:.6f} "
              f"({runs[-1]['relative_difference']:.2%} from the undisturbed run)", file=sys.stderr)
        shutil.rmtree(model, ignore_errors=True)

    ok = not failures and all(r["relative_difference"] <= 0.01 for r in runs)
    report = render(args, reference, ref_seconds, kills, runs, failures, ok)
    print(report)
    if args.out:
        args.out.write_text(report)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def render(args, reference, ref_seconds, kills, runs, failures, ok) -> str:
    lines = [f"- kills: {len(kills)}; runs finished: {len(runs)}; resumes that failed on their own: {len(failures)}",
             f"- undisturbed run: {ref_seconds:.1f} s, test logloss {reference:.6f}",
             f"- result: {'PASS' if ok else 'FAIL'} (every resume succeeded and every finished run within 1%)", ""]
    lines += ["| run | processes | wall s | test logloss | vs undisturbed |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['run']} | {r['processes']} | {r['seconds']} | {r['test_logloss']:.6f} | "
              f"{r['relative_difference']:.3%} |" for r in runs]
    lines += ["", "Where the kills landed:", "", "| where | kills |", "|---|---:|"]
    places = {}
    for k in kills:
        places[k["where"]] = places.get(k["where"], 0) + 1
    lines += [f"| {w} | {n} |" for w, n in sorted(places.items(), key=lambda x: -x[1])]
    width = (args.kill_max - args.kill_min) / 8
    lines += ["", "Kill times, seconds after the process started (the first process: after its first checkpoint):",
              "", "| seconds | kills | |", "|---|---:|---|"]
    for b in range(8):
        lo = args.kill_min + b * width
        n = sum(lo <= k["at_s"] < lo + width or (b == 7 and k["at_s"] >= lo + width) for k in kills)
        lines.append(f"| {lo:.2f}-{lo + width:.2f} | {n} | {'#' * n} |")
    if kills:
        lines += ["", f"median kill time {statistics.median(k['at_s'] for k in kills):.2f} s"]
    for f in failures:
        lines += ["", f"FAILURE in run {f['run']}, process {f['process']} (exit {f['rc']}):", "", "```",
                  f["stderr"], "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
