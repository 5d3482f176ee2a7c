"""Vowpal Wabbit, the peer most benchmarks compare with: its command line and data format."""
from __future__ import annotations

import subprocess
from pathlib import Path

from .paths import PY


VW_BITS = 24               # 16M hash slots for 1M features: VW hashes numeric ids to themselves, no collisions


def vw_cmd(*args) -> list[str]:
    # The wheel ships no `vw` binary; its __main__ hands argv to the C++ driver (vw's own CLI).
    return [PY, "-m", "vowpalwabbit", *map(str, args)]


def to_vw(src: Path, dst: Path) -> None:
    """LIBSVM → VW text: '+1 3:0.5 ...' → '1 | 3:0.5 ...' (ids stay numeric: VW hashes a
    numeric feature name to the number itself)."""
    tmp = dst.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        subprocess.run(["sed", "-e", "s/^+1 /1 | /", "-e", "s/^-1 /-1 | /", str(src)], stdout=out, check=True)
    tmp.replace(dst)


def vw_train_args(data, model: Path, *extra) -> list:
    # Not --quiet: its summary says how many passes it used (early stop with a holdout).
    return ["-d", data.train_vw, "--loss_function", "logistic", "-b", VW_BITS, "-f", model, *extra]


def parse_vw(p) -> dict:
    out = {}
    for line in p.stderr.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "passes used":
            out["passes_used"] = int(value)
        elif key.strip() == "number of examples per pass":
            out["examples_per_pass"] = int(value)
    return out
