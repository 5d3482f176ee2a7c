"""Crash safety at scale: a multi-epoch Hogwild! run killed with SIGKILL and resumed.

Trains once without interruption, then trains the same job again, killing it with
``kill -9`` at chosen fractions of the uninterrupted run's time and resuming it with
``--resume`` each time, and compares the test logloss (issue 4: within 1%).

    python tools/make_synthetic.py /tmp/syn2m --rows 2000000 --test-rows 200000
    python benchmarks/crash_resume.py /tmp/syn2m --threads 2 --epochs 3 --kill-at 0.3 0.65
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import streamhog_cmd as streamhog  # noqa: E402

from streamhog.training.checkpoint import read_checkpoint  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="directory with train.parquet and test.parquet")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--checkpoint-every", type=float, default=2.0)
    ap.add_argument("--kill-at", type=float, nargs="+", default=[0.3, 0.65],
                    help="fractions of the uninterrupted run's time at which to kill -9")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="streamhog-crash-"))
    train, test = args.data / "train.parquet", args.data / "test.parquet"
    common = ["--threads", args.threads, "--epochs", args.epochs, "--checkpoint-every", args.checkpoint_every, "--quiet"]

    t0 = time.perf_counter()
    subprocess.run(streamhog("train", train, "--model", work / "ref", *common), check=True)
    ref_seconds = time.perf_counter() - t0

    model = work / "crashed"
    kills = []
    start = time.perf_counter()
    proc = subprocess.Popen(streamhog("train", train, "--model", model, *common))
    for frac in args.kill_at:
        deadline = start + frac * ref_seconds
        while time.perf_counter() < deadline and proc.poll() is None:
            time.sleep(0.01)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        record, _ = read_checkpoint(model)  # checksummed; the previous one if the newest is torn
        kills.append({"at_s": round(time.perf_counter() - start, 2), "epoch": record["epoch"] + 1,
                      "blocks_done": len(record["done_blocks"])})
        print(f"killed -9 at {kills[-1]['at_s']} s; last checkpoint: epoch {kills[-1]['epoch']}, "
              f"{kills[-1]['blocks_done']} blocks done", file=sys.stderr)
        proc = subprocess.Popen(streamhog("train", train, "--model", model, "--resume", *common))
    assert proc.wait() == 0, "the resumed run failed"
    crashed_seconds = time.perf_counter() - start

    def logloss(m):
        out = subprocess.run(streamhog("evaluate", "--model", m, test, "--json"), check=True, capture_output=True,
                             text=True).stdout
        return json.loads(out)["logloss"]

    ref, got = logloss(work / "ref"), logloss(model)
    result = {"uninterrupted_logloss": ref, "crashed_and_resumed_logloss": got,
              "relative_difference": abs(got - ref) / ref, "kills": kills,
              "uninterrupted_seconds": round(ref_seconds, 1), "crashed_total_seconds": round(crashed_seconds, 1)}
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if result["relative_difference"] <= 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
