"""``streamhog convert`` end to end: LIBSVM → Parquet → Zarr equals scikit-learn's parser,
read back with pyarrow / zarr directly; bad input gives file + line, a non-zero exit and
no output; existing outputs are never replaced unasked."""
from __future__ import annotations

import bz2
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr
from sklearn.datasets import load_svmlight_file

from streamhog.cli import main
from streamhog.io.conversion import convert
from streamhog.datasets import a9a
from streamhog.errors import OutputExistsError

from conftest import SHARED_DATA
from test_formats import read_raw
from test_libsvm import BAD

ROOT = Path(__file__).resolve().parents[1]
A9A = SHARED_DATA / "a9a" / "a9a"
A9A_SOURCE = A9A if A9A.exists() else a9a("train")  # the packaged copy is byte-identical (tested)


def assert_equals_sklearn(fmt, path, svm_path, n_features=None):
    X, y = load_svmlight_file(str(svm_path), n_features=n_features, dtype=np.float64)
    indptr, indices, values, labels, _, nf = read_raw(fmt, path)
    assert nf == X.shape[1]
    np.testing.assert_array_equal(indptr, X.indptr)
    np.testing.assert_array_equal(indices, X.indices)
    np.testing.assert_array_equal(values if values is not None else np.ones(len(indices), np.float32),
                                  X.data.astype(np.float32))
    np.testing.assert_array_equal(labels, y.astype(np.float32))


def test_a9a_libsvm_to_parquet_to_zarr_equals_sklearn(tmp_path):
    convert(A9A_SOURCE, tmp_path / "a.parquet")
    assert_equals_sklearn("parquet", tmp_path / "a.parquet", A9A_SOURCE)
    convert(tmp_path / "a.parquet", tmp_path / "a.zarr")
    assert_equals_sklearn("zarr", tmp_path / "a.zarr", A9A_SOURCE)
    convert(tmp_path / "a.zarr", tmp_path / "b.parquet", rows_per_group=5000)
    assert_equals_sklearn("parquet", tmp_path / "b.parquet", A9A_SOURCE)
    assert pq.ParquetFile(tmp_path / "b.parquet").metadata.num_row_groups == 7
    # a9a is binary: the values column is left out (half the bytes).
    assert "values" not in pq.read_schema(tmp_path / "a.parquet").names


def test_a9a_test_split_with_explicit_n_features_and_bz2(tmp_path):
    src = SHARED_DATA / "a9a" / "a9a.t" if A9A.exists() else a9a("test")
    packed = tmp_path / "a9a.t.bz2"
    with open(src, "rb") as f, bz2.open(packed, "wb") as out:
        shutil.copyfileobj(f, out)
    # a9a.t never uses index 123: n_features must be given to match the training split.
    report = convert(packed, tmp_path / "t.zarr", n_features=123)
    assert report.n_features == 123 and report.n_rows == 16281
    assert_equals_sklearn("zarr", tmp_path / "t.zarr", src, n_features=123)


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
def test_real_valued_file_with_compression(tmp_path, fmt):
    rng = np.random.default_rng(3)
    lines = []
    for _ in range(3000):
        ids = np.sort(rng.choice(500, rng.integers(0, 12), replace=False)) + 1
        lines.append(f"{rng.normal():.6g} " + " ".join(f"{i}:{rng.normal():.7g}" for i in ids))
    src = tmp_path / "r.svm"
    src.write_text("\n".join(lines) + "\n")
    comp = "zstd"
    report = convert(src, tmp_path / f"r.{fmt}", compression=comp, rows_per_group=700)
    assert report.has_values and report.n_rows == 3000
    assert_equals_sklearn(fmt, tmp_path / f"r.{fmt}", src)


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
@pytest.mark.parametrize("line,problem", BAD[::3], ids=[b[0] for b in BAD[::3]])
def test_cli_refuses_bad_lines_without_output(tmp_path, capsys, fmt, line, problem):
    src = tmp_path / "bad.svm"
    # the bad line is past the first parse block and the first row group: a partial output existed
    good = "".join(f"{i % 2} {i % 50 + 1}:1\n" for i in range(5000))
    src.write_text(good + line + "\n1 1:1\n")
    code = main(["convert", str(src), str(tmp_path / f"out.{fmt}"), "--rows-per-group", "1000", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0
    assert f"{src}: line 5001: {problem}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.svm"]  # no output, no temporary left


def test_cli_subprocess_exit_status_and_message(tmp_path):
    src = tmp_path / "bad.svm"
    src.write_text("1 1:1\n1 2:x\n")
    run = subprocess.run([sys.executable, "-m", "streamhog", "convert", str(src), str(tmp_path / "o.zarr")],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert f"{src}: line 2: value is not a number (token '2:x')" in run.stderr
    assert not (tmp_path / "o.zarr").exists()


def test_skip_invalid_reports_and_keeps_good_rows(tmp_path, capsys):
    src = tmp_path / "s.svm"
    src.write_text("1 1:1\n1 0:1\n-1 2:1\nx 1:1\n1 3:1 3:2\n-1 4:1\n")
    code = main(["convert", str(src), str(tmp_path / "s.parquet"), "--skip-invalid"])
    out = capsys.readouterr().out
    assert code == 0
    assert "skipped 3 invalid line(s); first: line 2, line 4, line 5" in out
    indptr, indices, _, labels, _, nf = read_raw("parquet", tmp_path / "s.parquet")
    assert list(labels) == [1, -1, -1] and list(indices) == [0, 1, 3] and nf == 4


def test_stdin_and_tools_script(tmp_path):
    src = A9A_SOURCE
    with open(src, "rb") as f:
        run = subprocess.run([sys.executable, "-m", "streamhog", "convert", "-", str(tmp_path / "s.parquet")],
                             stdin=f, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert_equals_sklearn("parquet", tmp_path / "s.parquet", src)
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "convert.py"), str(tmp_path / "s.parquet"),
                          str(tmp_path / "s.zarr"), "--quiet"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert_equals_sklearn("zarr", tmp_path / "s.zarr", src)


def test_weights_survive_parquet_zarr_parquet(tmp_path, rng):
    from conftest import random_batch
    from test_formats import write

    b = random_batch(rng, 300, 40, weights=True)
    write("parquet", tmp_path / "w.parquet", [b], n_features=40, has_weights=True, rows_per_group=64)
    convert(tmp_path / "w.parquet", tmp_path / "w.zarr", rows_per_group=100)
    convert(tmp_path / "w.zarr", tmp_path / "w2.parquet")
    _, indices, values, labels, weights, nf = read_raw("parquet", tmp_path / "w2.parquet")
    np.testing.assert_array_equal(weights, b.weights)
    np.testing.assert_array_equal(values, b.values)
    assert nf == 40 and zarr.open_group(str(tmp_path / "w.zarr")).attrs["rows_per_block"] == 100


def test_convert_between_parquet_layouts(tmp_path, rng, capsys):
    """packed -> list -> packed through the CLI keeps every row; the layouts are what was asked."""
    from conftest import random_batch
    from test_formats import write

    b = random_batch(rng, 200, 60, weights=True)
    write("parquet", tmp_path / "p.parquet", [b], n_features=60, has_weights=True, rows_per_group=64)
    assert main(["convert", str(tmp_path / "p.parquet"), str(tmp_path / "l.parquet"), "--layout", "list",
                 "--quiet"]) == 0
    assert main(["convert", str(tmp_path / "l.parquet"), str(tmp_path / "p2.parquet"), "--quiet"]) == 0
    assert pa.types.is_list(pq.read_schema(tmp_path / "l.parquet").field("indices").type)
    assert pq.read_schema(tmp_path / "p2.parquet").field("indices").type == pa.binary()
    for name in ("l", "p2"):
        indptr, indices, values, labels, weights, nf = read_raw("parquet", tmp_path / f"{name}.parquet")
        np.testing.assert_array_equal(indptr, b.indptr)
        np.testing.assert_array_equal(indices, b.indices)
        np.testing.assert_array_equal(values, b.values)
        np.testing.assert_array_equal(weights, b.weights)
    assert main(["convert", str(tmp_path / "p.parquet"), str(tmp_path / "x.zarr"), "--layout", "list"]) == 1
    assert "--layout applies to Parquet output only" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()


def test_existing_output_is_never_replaced_unasked(tmp_path, capsys):
    src = tmp_path / "a.svm"
    src.write_text("1 1:1\n")
    dst = tmp_path / "a.parquet"
    dst.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        convert(src, dst)
    assert main(["convert", str(src), str(dst)]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert dst.read_bytes() == b"precious"
    # --overwrite replaces only a streamhog dataset (issue 16): not this file
    assert main(["convert", str(src), str(dst), "--overwrite", "--quiet"]) == 1
    assert "--overwrite replaces only an output of this command" in capsys.readouterr().err
    assert dst.read_bytes() == b"precious"
    dst.unlink()
    assert main(["convert", str(src), str(dst), "--quiet"]) == 0
    src.write_text("1 1:1\n-1 2:1\n")
    assert main(["convert", str(src), str(dst), "--overwrite", "--quiet"]) == 0
    assert pq.read_table(dst).num_rows == 2
    # a failed conversion with --overwrite keeps the old output
    src.write_text("1 1:1\n1 0:1\n")
    assert main(["convert", str(src), str(dst), "--overwrite", "--quiet"]) == 1
    assert pq.read_table(dst).num_rows == 2


def test_option_errors(tmp_path, capsys):
    src = tmp_path / "a.svm"
    src.write_text("1 1:1 7:1\n")
    assert main(["convert", str(src), str(tmp_path / "a.bin")]) == 1
    assert "cannot tell the output format" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "a.parquet"), "--n-features", "5"]) == 1
    assert "a.svm: line 1: index 7 is out of range for n_features=5" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing.svm"), str(tmp_path / "m.parquet")]) == 1
    assert "missing.svm" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "z.zarr"), "--format", "parquet", "--quiet"]) == 0
    assert pq.read_table(tmp_path / "z.zarr").num_rows == 1  # --format wins over the suffix


def test_zero_based_and_auto_index_base(tmp_path):
    src = tmp_path / "z.svm"
    src.write_text("1 0:1 3:2\n-1 1:1\n")
    for base in ("0", "auto"):
        report = convert(src, tmp_path / f"z{base}.parquet", index_base=base)
        assert report.n_features == 4
        assert list(read_raw("parquet", tmp_path / f"z{base}.parquet")[1]) == [0, 3, 1]


def test_info_command(tmp_path, capsys):
    convert(A9A_SOURCE, tmp_path / "a.zarr")
    assert main(["info", str(tmp_path / "a.zarr"), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert info["n_rows"] == 32561 and info["n_features"] == 123 and info["nnz"] == 451592
    assert info["labels"] == {"-1": 24720, "1": 7841}


def test_demo_runs(tmp_path, capsys):
    from streamhog.demo import main as demo

    assert demo(str(tmp_path / "demo")) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "32,561 rows" in out
    logloss = float(out.split("test logloss ")[1].split(",")[0])
    assert logloss <= 0.330  # issue 3: make demo prints a9a test logloss <= 0.330


def test_a_closed_stdout_ends_quietly(tmp_path):
    """`streamhog info DATA | head`: the reader leaves before the output is written; the
    command stops with SIGPIPE's status and no traceback."""
    convert(A9A_SOURCE, tmp_path / "a.parquet")
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "streamhog", "info", str(tmp_path / "a.parquet")],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == ""
