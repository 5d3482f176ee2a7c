"""Coverage-guided fuzzing of the LIBSVM parser with atheris (libFuzzer for Python).

    .venv/bin/pip install atheris
    nice -n 19 .venv/bin/python benchmarks/fuzz/fuzz_libsvm.py benchmarks/fuzz/corpus_libsvm \
        -max_total_time=1800 -max_len=512 -seed=1

Design. The parser's logic lives in a numba kernel: compiled code that libFuzzer's Python
coverage cannot see. So each input runs twice:

1. through a pure-Python copy of ``streamhog/kernels/libsvm_parse.py`` (the same source,
   loaded with ``njit`` replaced by the identity), instrumented by atheris: its branches are
   the coverage that steers the mutations;
2. through the compiled kernel, compiled here with ``NUMBA_BOUNDSCHECK=1`` (a separate
   numba cache, set below), so an out-of-bounds read or write raises IndexError instead of
   reading memory silently.

Both results must agree exactly, and both must agree with an independent reference parser
(tests/reference_libsvm.py: regular expressions and float(), written from docs/formats.md):
which lines are rows and which are refused, the first refused line in stop mode, the count
in skip mode, and every label, id and value bit for bit. Every message must be one line.
One input in eight also goes through ``LibsvmReader`` with a tiny block size (block cutting,
carried partial lines, compression sniffing): it must yield the same rows, or raise only a
one-line DataFormatError. Any other exception, a mismatch or a hang is a crash.
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ["NUMBA_BOUNDSCHECK"] = "1"
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "streamhog-fuzz-numba-cache"))
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import atheris  # noqa: E402
import importlib.util  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import reference_libsvm as REF  # noqa: E402
from streamhog.errors import DataFormatError  # noqa: E402
from streamhog.io.formats import libsvm as L  # noqa: E402
from streamhog.kernels import libsvm_parse as K_JIT  # noqa: E402


def _pure_python_kernel_module():
    """streamhog/kernels/libsvm_parse.py loaded again with njit as the identity."""
    def identity(*args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return lambda f: f
    path = ROOT / "streamhog" / "kernels" / "libsvm_parse.py"
    spec = importlib.util.spec_from_file_location("streamhog.kernels._libsvm_parse_pure", path)
    mod = importlib.util.module_from_spec(spec)
    saved = numba.njit
    numba.njit = identity
    try:
        spec.loader.exec_module(mod)
    finally:
        numba.njit = saved
    for name, obj in list(vars(mod).items()):
        if callable(obj) and getattr(obj, "__module__", None) == mod.__name__:
            setattr(mod, name, atheris.instrument_func(obj))
    return mod


K_PY = _pure_python_kernel_module()
for _name in ("parse_block", "_message", "_iter_blocks", "_quote"):
    setattr(L, _name, atheris.instrument_func(getattr(L, _name)))


def _parse(kernel, data, **kw):
    L.K = kernel  # parse_block reads the module global K: single-threaded here, so swapping is safe
    try:
        return L.parse_block(data, **kw)
    finally:
        L.K = K_JIT


def _rows(res):
    out = []
    for r in range(res.n_rows):
        lo, hi = int(res.indptr[r]), int(res.indptr[r + 1])
        out.append((res.labels[r].view(np.uint32).item(), res.indices[lo:hi].tolist(),
                    res.values[lo:hi].view(np.uint32).tolist()))
    return out


def _ref_rows(lines):
    return [(np.float32(lab).view(np.uint32).item(), ids, [np.float32(v).view(np.uint32).item() for v in vals])
            for _, (lab, ids, vals) in lines]


def _check_structure(res, n_features):
    ip = res.indptr
    assert len(res.indices) == len(res.values) and ip[0] == 0, "array lengths"
    # A stopped parse (the reader raises) keeps the refused line's first entries past indptr[-1].
    assert ip[-1] == len(res.indices) or (res.stopped and ip[-1] < len(res.indices)), "indptr end"
    assert np.all(np.diff(ip) >= 0), "indptr not monotone"
    for r in range(res.n_rows):
        row = res.indices[ip[r]:ip[r + 1]].astype(np.int64)
        assert np.all(np.diff(row) > 0), f"row {r} not strictly ascending"
    if len(res.indices) and not res.stopped:
        assert int(res.indices.max()) <= (REF.MAX_INDEX if n_features is None else n_features - 1)
        assert res.min_index == int(res.indices.min()) and res.max_index == int(res.indices.max())
    assert np.all(np.isfinite(res.values)) and np.all(np.isfinite(res.labels)), "non-finite number"
    if not res.stopped:
        assert res.all_ones == bool(np.all(res.values == 1.0)), "all_ones"
    for _, message in res.errors:
        assert "\n" not in message and message, "message not one line"


def _check_against_reference(res, data, index_base, n_features, skip_invalid):
    lines = REF.parse(data, index_base=index_base, n_features=n_features)
    bad = [n for n, r in lines if r is False]
    if skip_invalid:
        assert res.n_errors == len(bad) and not res.stopped, (res.n_errors, bad)
        assert [n for n, _ in res.errors] == bad[:L.MAX_REPORTED_SKIPS]
        kept = [(n, r) for n, r in lines if r]
        assert res.n_lines == len(lines)
    elif bad:
        assert res.stopped and res.errors[0][0] == bad[0], (res.errors, bad[0])
        kept = [(n, r) for n, r in lines if r and n < bad[0]]
    else:
        assert not res.stopped and res.n_errors == 0 and res.n_lines == len(lines)
        kept = [(n, r) for n, r in lines if r]
    assert _rows(res) == _ref_rows(kept), "rows differ from the reference"


def _check_reader(data, index_base, n_features, skip_invalid, block_bytes, expected):
    try:
        reader = L.LibsvmReader(io.BytesIO(data), index_base=index_base, n_features=n_features,
                                skip_invalid=skip_invalid, block_bytes=block_bytes, threads=2, name="fuzz")
        with reader:
            rows = []
            for b in reader:
                rows += _rows(L.BlockResult(b.indptr, b.indices, b.values, b.labels, 0, 0, 0, True))
    except DataFormatError as exc:
        assert "\n" not in str(exc)
        return
    if expected is not None:
        assert rows == expected, "LibsvmReader differs from parse_block"


def TestOneInput(raw: bytes) -> None:
    # Byte 0: flags (index base, skip mode, n_features given or not, reader run); byte 1: n_features.
    if len(raw) < 2:
        return
    flags = raw[0]
    index_base = flags & 1
    skip_invalid = bool(flags & 2)
    n_features = None if flags & 4 else raw[1] + (flags >> 3 & 1) * 256
    data = raw[1:] if flags & 4 else raw[2:]
    kw = dict(index_base=index_base, n_features=n_features, skip_invalid=skip_invalid, slow_capacity=16)
    with warnings.catch_warnings():  # numpy scalar overflow in the Python copy: expected (inf is refused)
        warnings.simplefilter("ignore", RuntimeWarning)
        res_py = _parse(K_PY, data, **kw)
    res = _parse(K_JIT, data, **kw)
    _check_structure(res, n_features)
    rows = _rows(res)
    assert rows == _rows(res_py), "compiled kernel differs from its Python source"
    assert (res.n_errors, res.errors, res.n_lines) == (res_py.n_errors, res_py.errors, res_py.n_lines)
    _check_against_reference(res, data, index_base, n_features, skip_invalid)
    if flags & 0xE0 == 0xE0:  # one input in eight: the whole reader, tiny blocks
        block_bytes = 1 + (flags >> 3 & 3) * 7
        whole = rows if (skip_invalid or not res.stopped) and data[:2] != b"\x1f\x8b" else None
        if data[:3] in (b"BZh", b"\xfd7z"):
            whole = None  # compressed input: decoded first, the rows differ
        _check_reader(data, index_base, n_features, skip_invalid, block_bytes, whole)


def main():
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
