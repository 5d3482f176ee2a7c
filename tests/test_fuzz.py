"""Property-based fuzzing (Hypothesis) of every input path (issue 16, "Also deliver").

- The LIBSVM parser against an independent reference (tests/reference_libsvm.py) on text
  built from valid and broken tokens, and on arbitrary bytes; the reader's block cutting.
- The Criteo and CSV parsers against the pure-Python reference of test_clicklogs.py
  (scikit-learn's murmurhash3_32, math.log, the csv module) on generated lines, valid and
  not, and on arbitrary bytes.
- Valid random data round-trips exactly: text -> Parquet (both layouts) -> Zarr -> arrays,
  and weighted data Parquet -> Zarr -> Parquet.
- The Parquet and Zarr readers on mutated files (bytes flipped, files truncated or lost,
  metadata edited): every block either reads and passes validation or is refused with a
  one-line StreamhogError — nothing else escapes.

``make test`` runs the "default" profile (about 20 s); the "long" one is for manual
runs (``STREAMHOG_FUZZ_EXAMPLES`` examples a test, default 1,000; the round trips take
``STREAMHOG_FUZZ_ROUND_TRIPS``, default 15), best with bounds-checked kernels (an
out-of-bounds access then raises; a separate numba cache keeps them apart)::

    NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=/tmp/numba-bc HYPOTHESIS_PROFILE=long STREAMHOG_FUZZ_ROUND_TRIPS=200 \\
        .venv/bin/python -m pytest -q tests/test_fuzz.py
"""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import reference_libsvm as REF
import streamhog
from streamhog.io.batch import SparseBatch
from streamhog.errors import StreamhogError
from streamhog.io.formats import create_writer, open_dataset
from streamhog.io.formats.criteo import CriteoReader
from streamhog.io.formats.csv import CsvReader
from streamhog.io.formats.libsvm import MAX_REPORTED_SKIPS, LibsvmReader, parse_block

from test_clicklogs import CRITEO_NAMES, ref_rows

settings.register_profile("default", max_examples=40, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=int(os.environ.get("STREAMHOG_FUZZ_EXAMPLES", "1000")),
                          deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert isinstance(exc, StreamhogError), f"{type(exc).__name__}: {text}"
    assert text and "\n" not in text, text
    return text


@contextmanager
def scratch():
    path = Path(tempfile.mkdtemp(prefix="streamhog-fuzz-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- LIBSVM --------------------------------------------------------------------------------------

DIGITS = st.text("0123456789", min_size=1, max_size=12)
NUMBER = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.integers(-10**6, 10**6).map(str),
    st.tuples(st.sampled_from(["", "+", "-"]), DIGITS, st.sampled_from(["", "."]), st.text("0123456789", max_size=25),
              st.sampled_from(["", "e", "E-", "e+"]), st.text("0123456789", max_size=3)).map("".join),
    st.sampled_from(["nan", "inf", "-Infinity", "1e39", "3.4028235e38", "3.4028236e38", "1e-46", ".5", "5.", "-0",
                     "", "-", "1e", "0x10", "1_0", "1.2.3"]),
)
INDEX = st.one_of(st.integers(0, 40).map(str), st.sampled_from(["+3", "0", "4294967295", "4294967296", "-1", "",
                                                                "99999999999999999999", "x", "1.5"]))
TOKEN = st.one_of(st.tuples(INDEX, st.just(":"), NUMBER).map("".join), st.just("1:1"), st.just("qid:3"),
                  st.text(min_size=1, max_size=6))
SEP = st.sampled_from([" ", "\t", "  ", " \t"])


@st.composite
def libsvm_text(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            line = draw(st.sampled_from(["", "   ", "# only a comment", "\t# c"]))
        else:
            ids = sorted(draw(st.lists(st.integers(1, 40), max_size=6, unique=True)))
            toks = [f"{i}:{draw(NUMBER)}" for i in ids] if kind < 6 else draw(st.lists(TOKEN, max_size=6))
            line = draw(NUMBER) + "".join(draw(SEP) + t for t in toks)
            if draw(st.booleans()):
                line += draw(st.sampled_from([" # comment", "#x", " "]))
        lines.append(line + draw(st.sampled_from(["\n", "\r\n", "\n"])))
    text = "".join(lines)
    if text and draw(st.booleans()):
        text = text.rstrip("\n")  # the last line may lack its line break
    return text.encode("utf-8", "surrogatepass")


def check_against_reference(data: bytes, index_base: int, n_features, skip_invalid: bool):
    res = parse_block(data, index_base=index_base, n_features=n_features, skip_invalid=skip_invalid, slow_capacity=16)
    lines = REF.parse(data, index_base=index_base, n_features=n_features)
    rows, bad, stop = REF.expected_rows(lines, skip_invalid=skip_invalid)
    if stop is not None:
        assert res.stopped and res.errors[0][0] == stop, (res.errors, stop)
    else:
        assert not res.stopped and res.n_errors == len(bad) and res.n_lines == len(lines)
        assert [n for n, _ in res.errors] == bad[:MAX_REPORTED_SKIPS]
    for _, message in res.errors:
        assert message and "\n" not in message
    assert REF.rows_of(res.indptr, res.indices, res.values, res.labels) == rows
    return res


@given(libsvm_text(), st.sampled_from([0, 1]), st.sampled_from([None, 5, 30, 2**32]), st.booleans())
def test_libsvm_parser_matches_the_reference(data, index_base, n_features, skip_invalid):
    check_against_reference(data, index_base, n_features, skip_invalid)


@given(st.binary(max_size=300), st.sampled_from([0, 1]), st.sampled_from([None, 7]), st.booleans())
def test_libsvm_parser_on_arbitrary_bytes(data, index_base, n_features, skip_invalid):
    check_against_reference(data, index_base, n_features, skip_invalid)


@given(libsvm_text(), st.integers(1, 64), st.booleans())
def test_libsvm_reader_cuts_blocks_anywhere(data, block_bytes, skip_invalid):
    whole = parse_block(data, skip_invalid=skip_invalid)
    try:
        with LibsvmReader(io.BytesIO(data), block_bytes=block_bytes, threads=2, skip_invalid=skip_invalid,
                          name="fuzz.svm") as reader:
            got = [row for b in reader for row in REF.rows_of(b.indptr, b.indices, b.values, b.labels)]
    except StreamhogError as exc:
        text = one_line(exc)
        assert whole.stopped and text.startswith(f"fuzz.svm: line {whole.errors[0][0]}: ")
        return
    assert not whole.stopped
    assert got == REF.rows_of(whole.indptr, whole.indices, whole.values, whole.labels)
    assert reader.n_skipped == whole.n_errors


# --- click logs ----------------------------------------------------------------------------------

CATEGORY = st.text(st.characters(blacklist_characters="\t\n\r", blacklist_categories=("Cs",)), max_size=8)
CRITEO_NUMBER = st.one_of(st.integers(-5, 10**9).map(str), st.sampled_from(["", "0", "2", "2.5", "-1", "1e3", "7.25"]))


@st.composite
def criteo_line(draw):
    """(fields, valid): mostly valid lines, some with a bad label, number or field count."""
    fields = [draw(st.sampled_from(["0", "1"]))] + [draw(CRITEO_NUMBER) for _ in range(13)] + \
        [draw(st.one_of(st.just(""), st.text("0123456789abcdef", min_size=8, max_size=8), CATEGORY)) for _ in range(26)]
    flaw = draw(st.integers(0, 7))
    if flaw == 1:
        fields[0] = draw(st.sampled_from(["2", "", "x", "-1", "nan"]))
    elif flaw == 2:
        fields[draw(st.integers(1, 13))] = draw(st.sampled_from(["x", "nan", "inf", "1e999", "--1", "1.2.3"]))
    elif flaw == 3:
        del fields[draw(st.integers(0, 39))]
    elif flaw == 4:
        fields.append("extra")
    return fields, flaw not in (1, 2, 3, 4)


@given(st.lists(criteo_line(), max_size=8), st.sampled_from(["\n", "\r\n"]), st.integers(1, 24))
def test_criteo_parser_matches_the_reference(lines, end, bits):
    text = "".join("\t".join(f) + end for f, _ in lines).encode()
    with CriteoReader(io.BytesIO(text), hash_bits=bits, skip_invalid=True, block_bytes=300) as reader:
        got = [b for b in reader]
    valid = [f for f, ok in lines if ok]
    labels, rows = ref_rows(valid, CRITEO_NAMES, ["label"] + ["numeric"] * 13 + ["categorical"] * 26, bits)
    assert reader.n_skipped == len(lines) - len(valid)
    got_rows = [list(zip(b.indices[b.indptr[r]:b.indptr[r + 1]].tolist(),
                         b.values_or_ones()[b.indptr[r]:b.indptr[r + 1]].astype(int).tolist()))
                for b in got for r in range(b.n_rows)]
    assert [x for b in got for x in b.labels.tolist()] == labels and got_rows == rows


_HALFWAY = 2**1024 - 2**970  # decimals from here up round to an infinite double


@pytest.mark.parametrize("text,finite", [("1e999", False), ("-1e999", False), ("1e308", True),
                                         ("1.7976931348623157e308", True), (str(_HALFWAY - 1), True),
                                         (str(_HALFWAY), False), (f"{_HALFWAY}.0000001e-0", False)])
def test_criteo_numeric_beyond_a_double_is_refused(text, finite):
    """Found by test_criteo_parser_matches_the_reference: "1e999" reached numeric_token as inf
    and raised a bare ValueError from a parse thread; it is a refused field now."""
    line = "\t".join(["1", text] + [""] * 38) + "\n"
    assert math.isfinite(float(text)) == finite
    with CriteoReader(io.BytesIO(line.encode()), skip_invalid=True) as reader:
        rows = sum(b.n_rows for b in reader)
    assert (rows, reader.n_skipped) == ((1, 0) if finite else (0, 1))
    if not finite:
        assert "numeric field 'I1'" in reader.skipped[0][1] and "is NaN or infinite" in reader.skipped[0][1]


CSV_FIELD = st.one_of(st.text("abc ;|", max_size=5),
                      st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=6)
                      .map(lambda s: '"' + s.replace('"', '""') + '"'))


@given(st.lists(st.tuples(st.integers(-3, 3), CSV_FIELD, CSV_FIELD, st.sampled_from(["", "0", "12", "-4", "3.5"])),
                max_size=8), st.integers(4, 20))
def test_csv_parser_matches_the_reference(records, bits):
    import csv

    text = "y,a,b,n\n" + "".join(f"{y},{a},{b},{n}\n" for y, a, b, n in records)
    with CsvReader(io.BytesIO(text.encode()), label_column="y", numeric="n", hash_bits=bits) as reader:
        got = list(reader)
    parsed = list(csv.reader(io.StringIO(text)))[1:]
    labels, rows = ref_rows(parsed, ["y", "a", "b", "n"], ["label", "categorical", "categorical", "numeric"], bits)
    got_rows = [list(zip(b.indices[b.indptr[r]:b.indptr[r + 1]].tolist(),
                         b.values_or_ones()[b.indptr[r]:b.indptr[r + 1]].astype(int).tolist()))
                for b in got for r in range(b.n_rows)]
    assert [x for b in got for x in b.labels.tolist()] == labels and got_rows == rows


@given(st.binary(max_size=400), st.booleans(), st.sampled_from(["criteo", "csv"]))
def test_click_log_parsers_on_arbitrary_bytes(data, skip_invalid, kind):
    def read():
        if kind == "criteo":
            reader = CriteoReader(io.BytesIO(data), hash_bits=10, skip_invalid=skip_invalid, block_bytes=64)
        else:
            reader = CsvReader(io.BytesIO(b"y,a,n\n" + data), label_column="y", numeric="n", hash_bits=10,
                               skip_invalid=skip_invalid, block_bytes=64)
        with reader:
            return list(reader)
    try:
        batches = read()
    except StreamhogError as exc:
        one_line(exc)
        return
    for b in batches:
        assert b.indptr[0] == 0 and b.indptr[-1] == b.nnz and np.all(np.diff(b.indptr) >= 0)
        assert b.nnz == 0 or int(b.indices.max()) < 1024
        assert np.all(np.isfinite(b.labels)) and np.all(b.values_or_ones() >= 1)


# --- round trips ---------------------------------------------------------------------------------

@st.composite
def csr_rows(draw, max_rows=40, n_features=60):
    n = draw(st.integers(1, max_rows))
    finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
    rows = []
    for _ in range(n):
        ids = sorted(draw(st.lists(st.integers(0, n_features - 1), max_size=8, unique=True)))
        rows.append((draw(finite), ids, [draw(finite) for _ in ids]))
    return rows


def to_batch(rows, weights=None):
    counts = [len(ids) for _, ids, _ in rows]
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.array([i for _, ids, _ in rows for i in ids], np.uint32)
    values = np.array([v for _, _, vals in rows for v in vals], np.float32)
    labels = np.array([lab for lab, _, _ in rows], np.float32)
    return SparseBatch(indptr, indices, values, labels, weights)


def read_arrays(path):
    ds = open_dataset(path)
    reader = ds.open_reader()
    try:
        blocks = [reader.read(k) for k in range(ds.n_blocks)]
    finally:
        reader.close()
    return blocks


@given(csr_rows(), st.sampled_from(["packed", "list"]), st.integers(1, 9))
@settings(max_examples=int(os.environ.get("STREAMHOG_FUZZ_ROUND_TRIPS", "15")))
def test_text_parquet_zarr_round_trip_exactly(rows, layout, rows_per_group):
    text = "".join(repr(float(np.float32(lab))) + "".join(f" {i + 1}:{float(np.float32(v))!r}"
                                                          for i, v in zip(ids, vals)) + "\n"
                   for lab, ids, vals in rows)
    with scratch() as tmp:
        (tmp / "d.svm").write_text(text)
        streamhog.convert(tmp / "d.svm", tmp / "d.parquet", layout=layout, rows_per_group=rows_per_group,
                          values="keep", n_features=60)
        streamhog.convert(tmp / "d.parquet", tmp / "d.zarr", rows_per_group=rows_per_group + 1, values="keep")
        expected = REF.rows_of(*(lambda b: (b.indptr, b.indices, b.values, b.labels))(to_batch(rows)))
        for path in (tmp / "d.parquet", tmp / "d.zarr"):
            got = [r for b in read_arrays(path) for r in REF.rows_of(b.indptr, b.indices, b.values_or_ones(), b.labels)]
            assert got == expected
            assert open_dataset(path).n_features == 60


@given(csr_rows(), st.data())
@settings(max_examples=int(os.environ.get("STREAMHOG_FUZZ_ROUND_TRIPS", "15")))
def test_weighted_parquet_zarr_parquet_round_trip_exactly(rows, data):
    weights = np.array(data.draw(st.lists(st.floats(0, 2.0**100, width=32), min_size=len(rows), max_size=len(rows))),
                       np.float32)
    batch = to_batch(rows, weights)
    with scratch() as tmp:
        w = create_writer("parquet", tmp / "w.parquet", rows_per_group=7, has_weights=True, values="keep")
        w.write(batch)
        w.close(60)
        streamhog.convert(tmp / "w.parquet", tmp / "w.zarr", rows_per_group=5)
        streamhog.convert(tmp / "w.zarr", tmp / "w2.parquet", rows_per_group=3)
        got = read_arrays(tmp / "w2.parquet")
        assert np.concatenate([b.weights for b in got]).view(np.uint32).tolist() == weights.view(np.uint32).tolist()
        assert [r for b in got for r in REF.rows_of(b.indptr, b.indices, b.values_or_ones(), b.labels)] == \
            REF.rows_of(batch.indptr, batch.indices, batch.values, batch.labels)


# --- damaged files -------------------------------------------------------------------------------

def _sample(tmp: Path, fmt: str, layout="packed") -> Path:
    rng = np.random.default_rng(7)
    from conftest import random_batch

    b = random_batch(rng, 60, 30, max_nnz=6, weights=True)
    path = tmp / f"s.{fmt}"
    layout_option = {"layout": layout} if fmt == "parquet" else {}
    w = create_writer(fmt, path, rows_per_group=16, has_weights=True, **layout_option)
    w.write(b)
    w.close(30)
    return path


def read_or_refuse(path: Path) -> None:
    """Open and read every block: either all of it passes validation, or a one-line StreamhogError."""
    try:
        ds = open_dataset(path)
        blocks = read_arrays(path)
    except StreamhogError as exc:
        one_line(exc)
        return
    for b in blocks:  # what was read passed the read-time checks: verify them independently
        assert b.indptr[0] == 0 and b.indptr[-1] == len(b.indices) and np.all(np.diff(b.indptr) >= 0)
        for r in range(b.n_rows):
            ids = b.indices[b.indptr[r]:b.indptr[r + 1]].astype(np.int64)
            assert np.all(np.diff(ids) > 0) and (len(ids) == 0 or ids.max() < ds.n_features)
        assert np.all(np.isfinite(b.labels)) and np.all(np.isfinite(b.values_or_ones()))
        assert b.weights is None or (np.all(np.isfinite(b.weights)) and np.all(b.weights >= 0))


@example(layout="list", flips=[(0.6171875, 0)], cut=None)  # found: pyarrow's message held a line break
@example(layout="packed", flips=[(0.890625, 128)], cut=None)  # found: metadata bytes not UTF-8
@given(st.sampled_from(["packed", "list"]), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1,
                                                     max_size=6), st.one_of(st.none(), st.floats(0, 1)))
def test_parquet_reader_on_mutated_files(layout, flips, cut):
    with scratch() as tmp:
        path = _sample(tmp, "parquet", layout)
        data = bytearray(path.read_bytes())
        for where, byte in flips:
            data[min(int(where * len(data)), len(data) - 1)] = byte
        if cut is not None:
            data = data[: int(cut * len(data))]
        path.write_bytes(bytes(data))
        read_or_refuse(path)


@given(st.data())
def test_zarr_reader_on_mutated_stores(data):
    with scratch() as tmp:
        path = _sample(tmp, "zarr")
        files = sorted(p for p in path.rglob("*") if p.is_file())
        target = data.draw(st.sampled_from(files))
        action = data.draw(st.sampled_from(["flip", "truncate", "delete", "json"]))
        raw = bytearray(target.read_bytes())
        if action == "delete":
            target.unlink()
        elif action == "truncate":
            target.write_bytes(bytes(raw[: data.draw(st.integers(0, max(0, len(raw) - 1)))]))
        elif action == "json" and target.name == "zarr.json":
            meta = json.loads(raw)
            key = data.draw(st.sampled_from(sorted(meta)))
            meta[key] = data.draw(st.one_of(st.none(), st.integers(-3, 2**40), st.text(max_size=3), st.just([])))
            if "attributes" in meta and isinstance(meta["attributes"], dict) and data.draw(st.booleans()):
                attrs = meta["attributes"]
                name = data.draw(st.sampled_from(["n_features", "format_version", "rows_per_block", "nnz"]))
                attrs[name] = data.draw(st.one_of(st.integers(-3, 2**34), st.just(1.5), st.just("7"), st.none()))
            target.write_text(json.dumps(meta))
        else:
            for _ in range(data.draw(st.integers(1, 4))):
                raw[data.draw(st.integers(0, max(0, len(raw) - 1)))] = data.draw(st.integers(0, 255))
            target.write_bytes(bytes(raw))
        read_or_refuse(path)


@pytest.mark.parametrize("name,edit", [
    ("indices", lambda m: m["codecs"][0]["configuration"].update(chunk_shape=[0])),
    ("labels", lambda m: m.update(fill_value="x")),
    ("indptr", lambda m: m.update(zarr_format=None)),
    ("values", lambda m: m["codecs"][0]["configuration"].update(index_location="x")),
    ("labels", None),  # truncated JSON
])
def test_zarr_damaged_array_metadata_is_one_line(name, edit):
    """Found by test_zarr_reader_on_mutated_stores: zarr's own TypeError, ValueError,
    ZeroDivisionError or JSONDecodeError escaped when the group listed its arrays."""
    with scratch() as tmp:
        path = _sample(tmp, "zarr")
        meta_file = path / name / "zarr.json"
        if edit is None:
            meta_file.write_text(meta_file.read_text()[:100])
        else:
            meta = json.loads(meta_file.read_text())
            edit(meta)
            meta_file.write_text(json.dumps(meta))
        with pytest.raises(StreamhogError) as err:
            open_dataset(path)
        assert one_line(err.value).startswith(f"{path}: array '{name}': its metadata {name}/zarr.json cannot be read")
