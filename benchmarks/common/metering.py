"""Measuring a process from outside, and saying what was measured: the machine, the code."""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .paths import ROOT


SAMPLE_S = 0.02


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


def git_state(root: Path = ROOT) -> dict:
    """The commit checked out in ``root`` (this project by default) and whether its engine
    has uncommitted changes."""
    def git(*a):
        r = subprocess.run(["git", *a], cwd=root, capture_output=True, text=True)
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


def finite(obj):
    """NaN/inf → null: the JSON stays valid for any reader."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj
