"""Where the benchmarks, the project and their outputs are."""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]   # benchmarks/
ROOT = HERE.parent                           # the project
OUTPUT = HERE / "output"                     # generated data and raw results (not committed)
PY = sys.executable
