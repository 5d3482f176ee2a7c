"""Raw click logs (Criteo TSV, CSV with a header) → hashed Parquet/Zarr, compared with an
independent pure-Python reference (the csv module, scikit-learn's murmurhash3_32 and
math.log); bad lines give file + line and no output, or are skipped and counted."""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils import murmurhash3_32 as sk_murmur

from streamhog.io.batch import concat_batches
from streamhog.cli import main
from streamhog.io.conversion import convert
from streamhog.datasets import CRITEO_SAMPLE_SHA256, criteo_sample
from streamhog.errors import DataFormatError
from streamhog.io.formats import open_dataset
from streamhog.io.formats.criteo import CRITEO_COLUMNS, CriteoReader
from streamhog.io.formats.csv import CsvReader

from test_formats import read_all

ROOT = Path(__file__).resolve().parents[1]
CRITEO_NAMES = ["label"] + [f"I{k}" for k in range(1, 14)] + [f"C{k}" for k in range(1, 27)]


# --------------------------------------------------------------------------------------------
# the reference


def ref_id(field: str, token: str, bits: int) -> int:
    return sk_murmur(token, seed=sk_murmur(field, seed=0, positive=True), positive=True) & ((1 << bits) - 1)


def ref_token(text: str) -> str:
    v = float(text)
    return "SP" + str(int(v)) if v <= 2 else str(int(math.log(v) ** 2))


def ref_rows(records, names, kinds, bits):
    """(labels, rows) where a row is a sorted list of (id, count); records are lists of fields."""
    labels, rows = [], []
    for fields in records:
        counts: Counter = Counter()
        for name, kind, v in zip(names, kinds, fields):
            if kind == "label":
                labels.append(np.float32(float(v)))
            elif v != "" and kind == "categorical":
                counts[ref_id(name, v, bits)] += 1
            elif v != "" and kind == "numeric":
                counts[ref_id(name, ref_token(v), bits)] += 1
        rows.append(sorted(counts.items()))
    return labels, rows


def criteo_reference(text: str, bits: int):
    records = [line.split("\t") for line in text.splitlines() if line]
    return ref_rows(records, CRITEO_NAMES, ["label"] + ["numeric"] * 13 + ["categorical"] * 26, bits)


def dataset_rows(path):
    ds = open_dataset(path)
    b = read_all(ds)
    vals = b.values_or_ones()
    rows = [list(zip(b.indices[b.indptr[r]:b.indptr[r + 1]].tolist(),
                     vals[b.indptr[r]:b.indptr[r + 1]].astype(int).tolist())) for r in range(b.n_rows)]
    assert np.array_equal(vals, np.round(vals))  # counts
    return ds, list(b.labels), rows


def batch_rows(batches):
    b = concat_batches(batches)
    vals = b.values_or_ones()
    return list(b.labels), [list(zip(b.indices[b.indptr[r]:b.indptr[r + 1]].tolist(),
                                     vals[b.indptr[r]:b.indptr[r + 1]].astype(int).tolist())) for r in range(b.n_rows)]


def criteo_text(path) -> str:
    with gzip.open(path, "rt") as f:
        return f.read()


def criteo_line(label="0", ints=None, cats=None) -> str:
    ints = ints if ints is not None else [""] * 13
    cats = cats if cats is not None else [""] * 26
    return "\t".join([label, *map(str, ints), *cats])


# --------------------------------------------------------------------------------------------
# Criteo


def test_packaged_sample_is_the_published_rows():
    for split, n in (("train", 8000), ("test", 2000)):
        data = gzip.decompress(criteo_sample(split).read_bytes())
        assert hashlib.sha256(data).hexdigest() == CRITEO_SAMPLE_SHA256[split]
        assert data.count(b"\n") == n
    with pytest.raises(ValueError):
        criteo_sample("valid")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"streamhog.datasets" = ["data/*.gz"]' in pyproject  # the package data glob ships them


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
@pytest.mark.parametrize("bits", [20, 8])
def test_criteo_sample_equals_reference(tmp_path, fmt, bits):
    src = criteo_sample("train")
    report = convert(src, tmp_path / f"c.{fmt}", input_format="criteo", hash_bits=None if bits == 20 else bits,
                     rows_per_group=3000)
    labels, rows = criteo_reference(criteo_text(src), bits)
    ds, got_labels, got_rows = dataset_rows(tmp_path / f"c.{fmt}")
    assert report.n_rows == 8000 and report.hash_bits == bits and report.n_features == 2**bits
    assert ds.hash_bits == bits and ds.n_features == 2**bits
    assert got_labels == labels and sum(labels) == 1728
    assert got_rows == rows
    assert report.has_values  # collisions in 2^8 or 2^20 slots (within a row of 39): counts
    assert report.bytes_in == src.stat().st_size


def test_criteo_blocks_and_threads_do_not_change_the_rows():
    text = criteo_text(criteo_sample("test"))
    with CriteoReader(io.BytesIO(text.encode()), block_bytes=5000, threads=3) as r:
        batches = list(r)
    assert len(batches) > 50 and r.n_rows == 2000 and r.n_lines == 2000
    assert batch_rows(batches) == criteo_reference(text, 20)
    assert [b.row_start for b in batches] == list(np.cumsum([0] + [b.n_rows for b in batches[:-1]]))


def test_criteo_numeric_edge_values_and_empty_fields():
    values = ["0", "1", "2", "3", "-1", "-2", "5", "1382", "2.5", "1e3", "+7", "0.0001", "-0.5", ".5", "5.",
              "123456789012345678901234567890",  # slow: beyond the exact fast path, converted with float()
              "1.00000000000000000000001", "-1e30", "1e308", "2.0000000000000001", "9007199254740993"]
    lines = []
    for k in range(0, len(values), 13):
        chunk = values[k:k + 13]
        lines.append(criteo_line("1", chunk + [""] * (13 - len(chunk)), ["a"] * 26))
    lines.append(criteo_line("0"))  # every feature empty: an empty row
    lines.append(criteo_line("0", cats=["68fd1e64"] + [""] * 25))
    lines.append("")  # an empty line is skipped (but counted)
    lines.append(criteo_line("1", ["", "4"] + [""] * 11, [""] * 25 + ["x\"y"]))  # a quote is just a byte
    text = "\r\n".join(lines)  # CRLF line ends, the last line without one
    with CriteoReader(io.BytesIO(text.encode()), hash_bits=32) as r:
        batches = list(r)
    assert r.n_lines == len(lines) and r.n_rows == len(lines) - 1
    assert batch_rows(batches) == criteo_reference(text.replace("\r", ""), 32)
    labels, rows = batch_rows(batches)
    assert rows[len(rows) - 3] == [] and rows[-2] == [(ref_id("C1", "68fd1e64", 32), 1)]


def test_numeric_bins_agree_with_python_at_the_bin_edges():
    """The kernel's ln and truncation against Python's math.log on values next to each bin
    edge exp(sqrt(k)), and on random integers and decimals of every magnitude."""
    rng = np.random.default_rng(11)
    values = []
    for k in range(1, 3000):
        edge = math.exp(math.sqrt(k))
        values += [str(int(edge)), str(int(edge) + 1), repr(edge), repr(math.nextafter(edge, 0)),
                   repr(math.nextafter(edge, math.inf))]
    values += [str(int(x)) for x in rng.integers(-10**6, 10**15, 3000)]
    values += [f"{x:.{d}g}" for x, d in zip(10 ** rng.uniform(-3, 30, 3000), rng.integers(1, 18, 3000))]
    values = [v for v in values if float(v) < 1e300]
    lines = [criteo_line("0", values[k:k + 13] + [""] * (13 - len(values[k:k + 13])))
             for k in range(0, len(values), 13)]
    text = "\n".join(lines) + "\n"
    with CriteoReader(io.BytesIO(text.encode()), hash_bits=32) as r:
        got = batch_rows(list(r))
    assert got == criteo_reference(text, 32)


@pytest.mark.parametrize("line,problem", [
    ("0\t1", "expected 40 tab-separated fields, found 2"),
    (criteo_line() + "\textra", "expected 40 tab-separated fields, found 41"),
    (criteo_line("2"), "label must be 0 or 1 (field 'label': '2')"),
    (criteo_line("x"), "label is not a number (field 'label': 'x')"),
    (criteo_line(""), "the label ('label') is empty"),
    (criteo_line("0", ["1", "abc"] + [""] * 11), "numeric field 'I2': 'abc' is not a number"),
    (criteo_line("0", ["1", "2", "3x"] + [""] * 10), "numeric field 'I3': '3x' is not a number"),
    (criteo_line("0", ["nan"] + [""] * 12), "numeric field 'I1': 'nan' is NaN or infinite"),
    (criteo_line("0", [""] * 12 + ["inf"]), "numeric field 'I13': 'inf' is NaN or infinite"),
])
def test_criteo_bad_lines_name_file_and_line(tmp_path, line, problem):
    good = criteo_line("1", ["1"] * 13, ["ab"] * 26) + "\n"
    src = tmp_path / "bad.txt"
    src.write_text(good * 3 + line + "\n" + good)
    with pytest.raises(DataFormatError) as err:
        with CriteoReader(src, block_bytes=200) as r:  # several blocks before the bad one
            list(r)
    assert str(err.value) == f"{src}: line 4: {problem}"
    assert err.value.line == 4


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
def test_cli_refuses_bad_criteo_line_without_output(tmp_path, capsys, fmt):
    src = tmp_path / "bad.txt"
    good = "".join(criteo_line(str(i % 2), [str(i)] * 13, [f"{i:x}"] * 26) + "\n" for i in range(5000))
    src.write_text(good + criteo_line("0", ["x"] + [""] * 12) + "\n")
    code = main(["convert", str(src), str(tmp_path / f"out.{fmt}"), "--input-format", "criteo",
                 "--rows-per-group", "1000", "--quiet"])
    assert code == 1
    assert f"{src}: line 5001: numeric field 'I1': 'x' is not a number" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]  # no output, no temporary left


def test_criteo_skip_invalid_counts_and_reports(tmp_path, capsys):
    src = tmp_path / "s.txt"
    good = criteo_line("1", ["3"] * 13, ["c"] * 26)
    bad = [criteo_line("7"), "0\t1\t2", criteo_line("0", ["?"] + [""] * 12)]
    lines = [good, bad[0], good, bad[1]] + [good] * 3 + [bad[2]] * 12 + [good]
    src.write_text("\n".join(lines) + "\n")
    code = main(["convert", str(src), str(tmp_path / "s.parquet"), "--input-format", "criteo", "--skip-invalid"])
    out = capsys.readouterr().out
    assert code == 0
    assert "skipped 14 invalid line(s); first: line 2, line 4, line 8, line 9" in out
    assert "line 2: label must be 0 or 1 (field 'label': '7')" in out
    assert "line 4: expected 40 tab-separated fields, found 3" in out
    report = convert(src, tmp_path / "t.zarr", input_format="criteo", skip_invalid=True)
    assert report.n_rows == 6 and report.n_skipped == 14 and len(report.skipped) == 10
    assert report.skipped[0] == (2, "label must be 0 or 1 (field 'label': '7')")


def test_criteo_through_tools_script_and_stdin(tmp_path):
    src = criteo_sample("test")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "convert.py"), str(src), str(tmp_path / "t.zarr"),
                          "--input-format", "criteo", "--hash-bits", "18"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "2,000 rows" in run.stdout and "262,144 features (hashed, 2^18)" in run.stdout
    _, labels, rows = dataset_rows(tmp_path / "t.zarr")
    assert (labels, rows) == criteo_reference(criteo_text(src), 18)
    with open(src, "rb") as f:  # gzip on standard input
        run = subprocess.run([sys.executable, "-m", "streamhog", "convert", "-", str(tmp_path / "s.parquet"),
                              "--input-format", "criteo", "--hash-bits", "18", "--quiet"], stdin=f,
                             capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert dataset_rows(tmp_path / "s.parquet")[2] == rows
    bad = tmp_path / "bad.txt"
    bad.write_text("1\t2\n")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "convert.py"), str(bad), str(tmp_path / "b.zarr"),
                          "--input-format", "criteo"], capture_output=True, text=True)
    assert run.returncode == 1
    assert f"{bad}: line 1: expected 40 tab-separated fields, found 2" in run.stderr
    assert not (tmp_path / "b.zarr").exists()


# --------------------------------------------------------------------------------------------
# CSV


AVAZU_HEADER = "id,click,hour,C1,banner_pos,site_id,site_domain,device_type,C14"
AVAZU_ROWS = [
    "1000009418151094273,0,14102100,1005,0,1fbe01fe,f3845767,1,15706",
    "10000169349117863715,1,14102100,1005,0,1fbe01fe,f3845767,1,15704",
    "10000371904215119486,0,14102100,1005,1,,f3845767,1,",
    '10000640724480838376,0,14102101,1005,0,"e151e245","7e0""91,x",1,15706',
]


def csv_reference(text: str, label: str, kinds_of: dict, default: str, bits: int):
    reader = csv.reader(io.StringIO(text))
    names = next(reader)
    kinds = ["label" if n == label else kinds_of.get(n, default) for n in names]
    return ref_rows(list(reader), names, kinds, bits)


@pytest.mark.parametrize("options,kinds_of,default", [
    ({"ignore": "id"}, {"id": "ignore"}, "categorical"),
    ({"ignore": ["id"], "numeric": "hour,C14"}, {"id": "ignore", "hour": "numeric", "C14": "numeric"}, "categorical"),
    ({"categorical": "site_id, site_domain", "numeric": "banner_pos"},
     {"site_id": "categorical", "site_domain": "categorical", "banner_pos": "numeric"}, "ignore"),
])
@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
def test_csv_equals_reference(tmp_path, fmt, options, kinds_of, default):
    text = AVAZU_HEADER + "\n" + "\n".join(AVAZU_ROWS) + "\n"
    src = tmp_path / "train.csv.gz"
    src.write_bytes(gzip.compress(text.encode()))
    report = convert(src, tmp_path / f"a.{fmt}", input_format="csv", label_column="click", **options)
    assert report.n_rows == 4 and report.hash_bits == 20
    _, labels, rows = dataset_rows(tmp_path / f"a.{fmt}")
    assert (labels, rows) == csv_reference(text, "click", kinds_of, default, 20)


def test_csv_many_rows_across_blocks_and_crlf():
    rng = np.random.default_rng(5)
    lines = ["y,a,b,n"]
    for _ in range(3000):
        a = rng.choice(["x", "", "y,z", 'q"q', "é"])
        quoted = '"' + a.replace('"', '""') + '"' if ("," in a or '"' in a or rng.random() < 0.1) else a
        n = rng.choice(["", str(rng.integers(-5, 10**6)), f"{rng.normal() * 100:.3f}"])
        lines.append(f"{rng.normal():.4g},{quoted},{rng.integers(0, 30)},{n}")
    text = "\r\n".join(lines) + "\r\n"
    with CsvReader(io.BytesIO(text.encode()), label_column="y", numeric=["n"], hash_bits=12,
                   block_bytes=4096, threads=3) as r:
        batches = list(r)
    assert r.n_rows == 3000 and r.n_lines == 3001
    labels, rows = batch_rows(batches)
    ref_labels, ref = csv_reference(text.replace("\r\n", "\n"), "y", {"n": "numeric"}, "categorical", 12)
    assert labels == ref_labels and rows == ref


def test_csv_header_problems_name_the_file(tmp_path):
    src = tmp_path / "a.csv"
    src.write_text("id,click,site\n1,0,a\n")
    with pytest.raises(DataFormatError, match=r"a\.csv: line 1: label column 'clicked' is not in the header "
                                              r"\(columns: id, click, site\)"):
        CsvReader(src, label_column="clicked")
    with pytest.raises(DataFormatError, match=r"a\.csv: line 1: --numeric names column\(s\) not in the header: hour"):
        CsvReader(src, label_column="click", numeric="hour")
    with pytest.raises(ValueError, match="given to both --numeric and --ignore"):
        CsvReader(src, label_column="click", numeric="site", ignore="site")
    with pytest.raises(ValueError, match="is the label"):
        CsvReader(src, label_column="click", categorical="click")
    src.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(DataFormatError, match="names column\\(s\\) 'a' more than once"):
        CsvReader(src, label_column="b")
    src.write_text("")
    with pytest.raises(DataFormatError, match="no header line"):
        CsvReader(src, label_column="b")
    src.write_text("\ufeffid,click\n")  # a BOM, and a header with no rows
    with CsvReader(src, label_column="click") as r:
        assert list(r) == [] and r.columns == ("id", "click")


def test_csv_cli_errors_exit_1_and_leave_nothing(tmp_path, capsys):
    src = tmp_path / "a.csv"
    src.write_text("id,click,site\n1,0,a\n2,1\n")
    out = tmp_path / "a.parquet"
    assert main(["convert", str(src), str(out), "--input-format", "csv", "--label-column", "nope"]) == 1
    assert f"{src}: line 1: label column 'nope' is not in the header" in capsys.readouterr().err
    assert main(["convert", str(src), str(out), "--input-format", "csv", "--label-column", "click"]) == 1
    assert f"{src}: line 3: expected 3 comma-separated fields, found 2" in capsys.readouterr().err
    assert main(["convert", str(src), str(out), "--input-format", "csv"]) == 1
    assert "--input-format csv needs --label-column NAME" in capsys.readouterr().err
    assert main(["convert", str(src), str(out), "--label-column", "click"]) == 1
    assert "apply to --input-format csv only" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
    assert main(["convert", str(src), str(out), "--input-format", "csv", "--label-column", "click",
                 "--skip-invalid", "--hash-bits", "4"]) == 0
    assert "skipped 1 invalid line(s); first: line 3" in capsys.readouterr().out
    assert open_dataset(out).n_rows == 1 and open_dataset(out).n_features == 16


@pytest.mark.parametrize("line,problem", [
    ("x,a,1", "label is not a number (field 'y': 'x')"),
    (",a,1", "the label ('y') is empty"),
    ("1,a,b", "numeric field 'n': 'b' is not a number"),
    ('1,"a,1', "field 'a': 'a,1': unclosed quote, or text after the closing quote (a quoted field cannot span lines)"),
    ('1,"a"b,1', "field 'a': 'a': unclosed quote, or text after the closing quote"),
    ("1e39,a,1", "label is out of float32 range (field 'y': '1e39')"),
    ("1,a,1,", "expected 3 comma-separated fields, found 4"),
    ("1,a", "expected 3 comma-separated fields, found 2"),
])
def test_csv_bad_lines(tmp_path, line, problem):
    src = tmp_path / "b.csv"
    src.write_text(f"y,a,n\n1,a,2\n{line}\n")
    with pytest.raises(DataFormatError) as err:
        with CsvReader(src, label_column="y", numeric="n") as r:
            list(r)
    assert str(err.value).startswith(f"{src}: line 3: {problem}")


def test_csv_labels_are_any_number_and_criteo_columns_are_named():
    text = "y,a\n-1.5,u\n3,v\n0.1,\n0.30000000000000000000000001,w\n"  # the last label is a slow number
    with CsvReader(io.BytesIO(text.encode()), label_column="y") as r:
        b = concat_batches(list(r))
    np.testing.assert_array_equal(b.labels, np.array([-1.5, 3, 0.1, 0.3], np.float32))
    assert list(np.diff(b.indptr)) == [1, 1, 0, 1]
    assert CRITEO_COLUMNS == tuple(CRITEO_NAMES)


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
def test_values_drop_makes_hashed_click_logs_binary(tmp_path, fmt):
    """--values drop: ids that collide in a row count once, and no values column is written."""
    src = criteo_sample("train")
    report = convert(src, tmp_path / f"c.{fmt}", input_format="criteo", hash_bits=8, values="drop")
    labels, rows = criteo_reference(criteo_text(src), 8)
    ds, got_labels, got_rows = dataset_rows(tmp_path / f"c.{fmt}")
    assert not report.has_values and not ds.has_values
    assert got_labels == labels
    assert got_rows == [[(i, 1) for i, _ in row] for row in rows]
    assert any(c > 1 for row in rows for _, c in row)  # 2^8 slots: collisions were there to drop


def test_values_drop_with_training_hash_of_binary_libsvm(tmp_path):
    src = tmp_path / "b.svm"
    src.write_text("1 1:1 2:1 3:1\n-1 4:1 20:1\n")
    convert(src, tmp_path / "b.parquet", hash_bits=1, values="drop")
    ds, labels, rows = dataset_rows(tmp_path / "b.parquet")
    # 1-based ids in the file, 0-based hashed: murmur3 of the id's 4 bytes, seed 0, masked to 2 slots.
    expect = [sorted({int(sk_murmur(np.int32(i - 1), seed=0, positive=True)) & 1 for i in ids})
              for ids in ([1, 2, 3], [4, 20])]
    assert not ds.has_values and labels == [1.0, -1.0] and rows == [[(i, 1) for i in e] for e in expect]


def test_values_drop_refuses_real_values_even_when_hashing(tmp_path):
    src = tmp_path / "r.svm"
    src.write_text("1 1:0.5 3:2\n-1 2:1\n")
    with pytest.raises(ValueError, match=r"r\.svm.*values other than 1\.0 cannot be dropped"):
        convert(src, tmp_path / "r.parquet", hash_bits=4, values="drop")
    assert not (tmp_path / "r.parquet").exists()
