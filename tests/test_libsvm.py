"""LIBSVM reader: compared with scikit-learn's load_svmlight_file (an independent parser)
and with Python's float() on the numbers, plus every refused input."""
from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_svmlight_file

from streamhog.io.batch import concat_batches
from streamhog.errors import DataFormatError
from streamhog.io.formats.libsvm import LibsvmReader, open_binary_input, parse_block
from streamhog.io.formats.spec import MAX_INDEX
from streamhog.kernels import libsvm_parse as K

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PACKAGED = Path(__file__).resolve().parents[1] / "streamhog" / "datasets" / "data"
A9A = SHARED / "a9a" / "a9a"
A9A_T = SHARED / "a9a" / "a9a.t"


# --------------------------------------------------------------------------------------------
# helpers


def read(source, **kw):
    """All rows of ``source`` as one batch (None when there are none), and the reader."""
    reader = LibsvmReader(source, **kw)
    with reader:
        batches = list(reader)
    rows = 0
    for b in batches:  # batches come in order, each knows its first row
        assert b.row_start == rows
        assert b.indptr[0] == 0 and b.indptr.dtype == np.int64
        assert b.indices.dtype == np.uint32 and b.values.dtype == np.float32 and b.labels.dtype == np.float32
        assert b.weights is None
        rows += b.n_rows
    assert rows == reader.n_rows
    return (concat_batches(batches) if batches else None), reader


def sklearn_csr(path, zero_based=False):
    X, y = load_svmlight_file(str(path), dtype=np.float64, zero_based=zero_based)
    return X, y


def assert_same_as_sklearn(path, *, zero_based=False, **kw):
    batch, reader = read(path, index_base=0 if zero_based is True else ("auto" if zero_based == "auto" else 1), **kw)
    X, y = sklearn_csr(path, zero_based)
    if X.shape[0] == 0:
        assert batch is None
        return reader
    np.testing.assert_array_equal(batch.indptr, X.indptr)
    np.testing.assert_array_equal(batch.indices, X.indices)
    np.testing.assert_array_equal(batch.values, X.data.astype(np.float32))
    np.testing.assert_array_equal(batch.labels, y.astype(np.float32))
    assert reader.nnz == X.nnz
    return reader


def same_batches(a, b):
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.labels, b.labels)


def write(tmp_path, text, name="data.svm"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def libsvm_threads():
    return [t for t in threading.enumerate() if t.name.startswith("streamhog-libsvm")]


# --------------------------------------------------------------------------------------------
# real data


@pytest.mark.parametrize("path", [A9A, A9A_T], ids=["a9a", "a9a.t"])
def test_a9a_matches_sklearn(path):
    reader = assert_same_as_sklearn(path)
    assert reader.n_lines == reader.n_rows and reader.n_skipped == 0
    X, _ = sklearn_csr(path)
    assert reader.all_ones and reader.min_index == X.indices.min() and reader.max_index == X.shape[1] - 1
    assert reader.bytes_in == path.stat().st_size


@pytest.mark.parametrize("name", ["a9a", "a9a.t"])
def test_packaged_gzip_copies_equal_shared_files(name):
    packed, r1 = read(PACKAGED / f"{name}.gz", block_bytes=1 << 16)
    plain, r2 = read(SHARED / "a9a" / name)
    same_batches(packed, plain)
    assert r1.bytes_in == (PACKAGED / f"{name}.gz").stat().st_size  # compressed bytes
    assert r1.n_lines == r2.n_lines


def test_small_blocks_and_threads_give_identical_results():
    whole, _ = read(A9A, block_bytes=1 << 30, threads=1)
    reader = LibsvmReader(A9A, block_bytes=4096, threads=2)
    batches = list(reader)
    assert len(batches) > 500
    same_batches(concat_batches(batches), whole)
    # sources name consecutive line ranges
    last = 0
    for b in batches:
        lo, hi = map(int, b.source.rsplit(" ", 1)[1].split("-"))
        assert lo == last + 1 and hi - lo + 1 == b.n_rows
        last = hi
    one_thread, _ = read(A9A, block_bytes=4096, threads=1)
    same_batches(one_thread, whole)


# --------------------------------------------------------------------------------------------
# generated edge cases, compared with scikit-learn


EDGE = (
    "# a comment line\n"
    "\n"
    "1 1:0.5 3:2\n"
    "-1\n"                       # label only
    "2 7:1e-3\n"                 # one feature
    "  \t\n"                     # blank (whitespace only)
    "0 2:1 4:-3.25   5:+.5\t6:5. # trailing comment 9:9\n"
    "\t1.5\t1:1\t\t2:2  \n"      # tabs, leading/trailing whitespace
    "3 1:1E5 2:-0 3:12345678901234567890 4:0.1000000000000000055511151231257827021181583404541015625\n"
    "-7.25 10:1#comment glued to a value\n"
    "8 +3:1 +04:2\n"  # a '+' before an index, leading zeros
    "4 1:1.e3 2:4.9e-324 3:1e-50 4:123456789e-30\n"
)


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("trailing", [True, False], ids=["newline-at-end", "no-newline-at-end"])
def test_edge_cases_match_sklearn(tmp_path, newline, trailing):
    text = EDGE.replace("\n", newline)
    if not trailing:
        text = text[: -len(newline)]
    path = write(tmp_path, text)
    reader = assert_same_as_sklearn(path)
    assert reader.n_lines == EDGE.count("\n")
    assert reader.n_rows == 9 and not reader.all_ones
    small, _ = read(path, block_bytes=7)
    same_batches(small, read(path)[0])


def test_label_only_rows_and_empty_files(tmp_path):
    batch, reader = read(write(tmp_path, "1\n-1\n0\n3.5"))
    np.testing.assert_array_equal(batch.labels, [1, -1, 0, 3.5])
    np.testing.assert_array_equal(batch.indptr, [0, 0, 0, 0, 0])
    assert reader.max_index == -1 and reader.min_index == -1 and reader.nnz == 0
    for text in ("", "\n\n", "# only\n  # comments\n\r\n"):
        batch, reader = read(write(tmp_path, text, "e.svm"))
        assert batch is None and reader.n_rows == 0 and reader.n_lines == text.count("\n")


def test_indices_near_the_uint32_limit(tmp_path):
    batch, reader = read(write(tmp_path, f"1 1:1 {2**32 - 1}:2 {2**32}:3\n"))
    np.testing.assert_array_equal(batch.indices, [0, 2**32 - 2, MAX_INDEX])
    assert reader.max_index == MAX_INDEX
    batch, _ = read(write(tmp_path, f"1 0:1 {2**32 - 1}:3\n", "z.svm"), index_base=0)
    np.testing.assert_array_equal(batch.indices, [0, MAX_INDEX])
    path = write(tmp_path, f"1 1:1\n1 {2**32 + 1}:3\n", "big.svm")
    with pytest.raises(DataFormatError) as e:
        read(path)
    assert str(e.value) == (f"{path}: line 2: index 4294967297 is too large: the largest allowed is "
                            f"4294967296 with index base 1 (stored ids are uint32) (token '4294967297:3')")
    with pytest.raises(DataFormatError, match=r"line 1: index 4294967296 is too large"):
        read(write(tmp_path, f"1 {2**32}:3\n", "big0.svm"), index_base=0)
    with pytest.raises(DataFormatError, match=r"line 1: index 99999999999999999999999 is too large"):
        read(write(tmp_path, "1 99999999999999999999999:3\n", "huge.svm"))


def test_n_features_bounds_the_index(tmp_path):
    path = write(tmp_path, "1 1:1 10:1\n1 11:1\n")
    with pytest.raises(DataFormatError) as e:
        read(path, n_features=10)
    assert e.value.line == 2
    assert "index 11 is out of range for n_features=10 (the largest allowed is 10 with index base 1)" in str(e.value)
    batch, _ = read(path, n_features=11)
    assert batch.indices.max() == 10
    with pytest.raises(DataFormatError, match="line 1: index 1 is out of range for n_features=0"):
        read(path, n_features=0)


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz"])
def test_compressed_inputs_detected_by_magic(tmp_path, kind):
    text = EDGE.encode() * 50
    packed = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](text)
    expected, _ = read(write(tmp_path, text, "plain.svm"))
    for name in (f"data.svm.{kind}", "misleading.svm"):  # the suffix does not matter
        batch, reader = read(write(tmp_path, packed, name), block_bytes=1000)
        same_batches(batch, expected)
        assert reader.bytes_in == len(packed)
    f, name = open_binary_input(io.BytesIO(packed))
    assert f.read() == text and name == "<stream>"
    batch, _ = read(io.BytesIO(packed), name="memory")
    same_batches(batch, expected)


def test_concatenated_gzip_members(tmp_path):
    path = write(tmp_path, gzip.compress(b"1 1:1\n") + gzip.compress(b"2 2:2\n"), "two.gz")
    batch, _ = read(path)
    np.testing.assert_array_equal(batch.labels, [1, 2])


def test_corrupt_compressed_input_is_a_data_format_error(tmp_path):
    packed = gzip.compress(EDGE.encode() * 1000)
    path = write(tmp_path, packed[: len(packed) // 2], "cut.gz")
    with pytest.raises(DataFormatError, match=r"cut.gz: cannot read gzip data"):
        read(path)
    assert not libsvm_threads()


def test_file_object_and_name(tmp_path):
    with open(write(tmp_path, "1 1:1\n"), "rb") as f:
        with pytest.raises(DataFormatError, match=r"^custom: line 1: index 0"):
            list(LibsvmReader(io.BytesIO(b"1 0:1\n"), name="custom"))
        batch, reader = read(f)
        assert not f.closed  # the caller's file stays open
    assert reader.name == str(tmp_path / "data.svm")


# --------------------------------------------------------------------------------------------
# numbers: exactly Python's float(), then float32


def random_number(rng) -> str:
    sign = rng.choice(["", "-", "+"], p=[0.6, 0.3, 0.1])
    n_int = int(rng.choice([0, 1, 2, 5, 10, 17, 20, 25]))
    n_frac = int(rng.choice([0, 1, 3, 6, 9, 15, 17, 18, 19, 22, 30]))
    digits = lambda n: "".join(rng.choice(list("0123456789"), n)) if n else ""  # noqa: E731
    body = digits(n_int) + ("." + digits(n_frac) if n_frac or rng.random() < 0.2 else "")
    if not any(c.isdigit() for c in body):
        body = digits(1) + body
    if rng.random() < 0.5:
        body += rng.choice(["e", "E"]) + rng.choice(["", "-", "+"]) + str(int(rng.choice([0, 1, 5, 22, 23, 30, 37, 38, 39, 45, 300, 330, 400])))
    return sign + body


def test_numbers_equal_python_float(tmp_path):
    rng = np.random.default_rng(7)
    tokens = [random_number(rng) for _ in range(6000)]
    tokens += ["9007199254740993", "9007199254740992", "1e22", "1e23", "8.98846567431158e307", "1e308",
               "2.2250738585072011e-308", "4.9e-324", "2e-324", "0.000001", "123456789012345678901234567890e-20",
               "1" + "0" * 30 + "e-30", "1.5" + "0" * 40, "0." + "0" * 30 + "1e30", "3.4028234663852886e38",
               "-3.4028235e38", str(2**128 - 2**103 - 2**74 - 1), str(2**128 - 2**103 - 2**74 - 1) + ".999e0",
               "9999999999999999999", "18446744073709551616", "0e999999999", "1e-99999999"]
    too_big = [str(2**128 - 2**103 - 2**74), str(2**128 - 2**103), "3.4028235677973366e38", "1e39", "-1e39",
               "1e99999999999", "34028235677973366163753939545814256844.8e1"]
    tokens += too_big
    with np.errstate(over="ignore"):
        expected = [np.float32(float(t)) for t in tokens]
    ok = [np.isfinite(x) for x in expected]
    for t in too_big:
        assert not ok[tokens.index(t)]
    text = "".join(f"{t} 1:{t}\n" for t in tokens)
    path = write(tmp_path, text)
    batch, reader = read(path, skip_invalid=True, block_bytes=1 << 14)
    want = np.array([x for x, good in zip(expected, ok) if good], dtype=np.float32)
    np.testing.assert_array_equal(batch.values, want)
    np.testing.assert_array_equal(batch.labels, want)
    assert reader.n_skipped == ok.count(False) > 0
    for line, message in reader.skipped:
        assert not ok[line - 1] and "label is out of float32 range" in message
    # the slow-token list overflows its first guess and the block is parsed again: same result
    res = parse_block(path.read_bytes(), skip_invalid=True, slow_capacity=1)
    assert res.n_slow > 1000
    np.testing.assert_array_equal(res.values, want)


def test_numbers_match_sklearn_values(tmp_path):
    rng = np.random.default_rng(3)
    tokens = [t for t in (random_number(rng) for _ in range(3000)) if abs(float(t)) < 1e38]
    text = "".join(f"1 {i + 1}:{t}\n" for i, t in enumerate(tokens))
    assert_same_as_sklearn(write(tmp_path, text))


# --------------------------------------------------------------------------------------------
# index base


def test_zero_based_and_auto(tmp_path):
    zero = write(tmp_path, "1 0:1 5:2\n-1 3:1\n", "zero.svm")
    one = write(tmp_path, "1 1:1 5:2\n-1 3:1\n", "one.svm")
    assert_same_as_sklearn(zero, zero_based=True)
    assert_same_as_sklearn(zero, zero_based="auto")
    assert_same_as_sklearn(one, zero_based="auto")
    b0, r0 = read(zero, index_base="auto")
    assert r0.index_base == 0 and list(b0.indices) == [0, 5, 3]
    b1, r1 = read(one, index_base="auto")
    assert r1.index_base == 1 and list(b1.indices) == [0, 4, 2]
    # the 0 is found late in the file, in a later block, compressed
    late = write(tmp_path, gzip.compress(("1 1:1 2:1\n" * 3000 + "1 0:1\n").encode()), "late.gz")
    b, r = read(late, index_base="auto", block_bytes=1000)
    assert r.index_base == 0 and b.indices[0] == 1 and b.indices[-1] == 0


def test_auto_on_a_seekable_file_object():
    data = b"1 3:1\n1 0:1\n"
    for raw in (data, gzip.compress(data)):
        f = io.BytesIO(b"xx" + raw)
        f.seek(2)  # starts where the object is positioned, and comes back there
        batch, reader = read(f, index_base="auto", block_bytes=4)
        assert reader.index_base == 0 and list(batch.indices) == [3, 0]


def test_text_mode_file_objects(tmp_path):
    path = write(tmp_path, "1 1:1\n")
    with open(path) as f:  # a text file object: its binary buffer is read
        batch, _ = read(f)
    assert list(batch.labels) == [1]
    with pytest.raises(TypeError, match="binary file object"):
        LibsvmReader(io.StringIO("1 1:1\n"))


def test_auto_needs_a_seekable_input():
    class Pipe(io.RawIOBase):
        def __init__(self, data):
            self._f = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self._f.readinto(b)

    with pytest.raises(DataFormatError, match=r"index base 'auto' needs a seekable file.*--index-base 0 or 1"):
        LibsvmReader(Pipe(b"1 1:1\n"), index_base="auto")
    batch, _ = read(Pipe(b"1 1:1\n"))
    assert list(batch.indices) == [0]


# --------------------------------------------------------------------------------------------
# refused input: file, line and problem; or skipped and counted


BAD = [
    ("abc 1:1", "label is not a number (token 'abc')"),
    ("1:1 2:1", "label is not a number (token '1:1')"),
    ("nan 1:1", "label is NaN or infinite (token 'nan')"),
    ("-Infinity 1:1", "label is NaN or infinite (token '-Infinity')"),
    ("1e39 1:1", "label is out of float32 range (token '1e39')"),
    ("1 3", "expected index:value, found no ':' (token '3')"),
    ("1 1:1 abc", "expected index:value, found no ':' (token 'abc')"),
    ("1 :1", "index '' is not a non-negative integer (token ':1')"),
    ("1 -3:1", "index '-3' is not a non-negative integer (token '-3:1')"),
    ("1 +:1", "index '+' is not a non-negative integer (token '+:1')"),
    ("1 1.5:1", "index '1.5' is not a non-negative integer (token '1.5:1')"),
    ("1 x:1", "index 'x' is not a non-negative integer (token 'x:1')"),
    ("1 0:1", "index 0 is not allowed with index base 1 (token '0:1')"),
    ("1 00:1", "index 0 is not allowed with index base 1 (token '00:1')"),
    (f"1 {2**32 + 1}:1", "index 4294967297 is too large"),
    ("1 2:abc", "value is not a number (token '2:abc')"),
    ("1 2:", "value is not a number (token '2:')"),
    ("1 2:1:3", "value is not a number (token '2:1:3')"),
    ("1 2:1e", "value is not a number (token '2:1e')"),
    ("1 2:1_000", "value is not a number (token '2:1_000')"),
    ("1 2:0x10", "value is not a number (token '2:0x10')"),
    ("1 2:NaN", "value is NaN or infinite (token '2:NaN')"),
    ("1 2:-inf", "value is NaN or infinite (token '2:-inf')"),
    ("1 2:1e39", "value is out of float32 range (token '2:1e39')"),
    ("1 2:-3.5e38", "value is out of float32 range (token '2:-3.5e38')"),
    ("1 2:1 2:3", "duplicate index 2 in one line (token '2:3')"),
    ("1 5:1 3:1", "index 3 comes after index 5: indices must be ascending within a line (token '3:1')"),
    ("1 qid:3 1:1", "qid: (ranking data) is not supported (token 'qid:3')"),
    ("1 1:1 qid:3", "qid: (ranking data) is not supported (token 'qid:3')"),
    ("1 1:1\r2:1", "value is not a number (token '1:1\\r2:1')"),
]


@pytest.mark.parametrize("line,problem", BAD, ids=[b[0] for b in BAD])
def test_bad_line_names_file_line_and_problem(tmp_path, line, problem):
    text = "# header\n1 1:1\n\n-1 2:0.5\n" + line + "\n1 3:1\n"
    path = write(tmp_path, text)
    with pytest.raises(DataFormatError) as e:
        read(path)
    assert e.value.line == 5 and e.value.path == str(path)
    assert str(e.value).startswith(f"{path}: line 5: {problem}")
    assert not libsvm_threads()
    batch, reader = read(path, skip_invalid=True)
    assert reader.n_skipped == 1 and reader.skipped == [(5, str(e.value).split(": line 5: ", 1)[1])]
    np.testing.assert_array_equal(batch.labels, [1, -1, 1])
    np.testing.assert_array_equal(batch.indptr, [0, 1, 2, 3])
    np.testing.assert_array_equal(batch.indices, [0, 1, 2])
    assert reader.n_lines == 6 and reader.n_rows == 3


def test_error_line_numbers_are_absolute_across_blocks(tmp_path):
    lines = ["1 1:1 2:2 3:3"] * 5000
    bad = {123, 2000, 2001, 3999, 4500, 4501, 4502, 4600, 4700, 4800, 4900, 4999}
    for n in bad:
        lines[n - 1] = f"1 5:1 {n % 3 + 1}:1"  # descending
    path = write(tmp_path, "\n".join(lines))
    with pytest.raises(DataFormatError, match=r"line 123: index 1 comes after index 5"):
        read(path, block_bytes=256, threads=2)
    batch, reader = read(path, block_bytes=256, skip_invalid=True)
    assert reader.n_skipped == len(bad)
    assert [line for line, _ in reader.skipped] == sorted(bad)[:10]
    assert reader.n_rows == 5000 - len(bad) and reader.nnz == 3 * reader.n_rows
    assert np.all(batch.indices.reshape(-1, 3) == [0, 1, 2])


def test_skip_mode_rewinds_slow_tokens_of_dropped_lines(tmp_path):
    text = "1.00000000000000000001 1:0.12345678901234567890 2:x\n2 1:0.12345678901234567890123\n"
    batch, reader = read(write(tmp_path, text), skip_invalid=True)
    assert reader.n_skipped == 1
    np.testing.assert_array_equal(batch.labels, [2])
    np.testing.assert_array_equal(batch.values, [np.float32(0.12345678901234567890123)])


def test_all_ones_with_slow_tokens(tmp_path):
    _, reader = read(write(tmp_path, "1 1:1 2:1.0000000000000000000000001 3:1e0\n"))
    assert reader.all_ones
    _, reader = read(write(tmp_path, "1 1:1 2:1.1\n", "b.svm"))
    assert not reader.all_ones


# --------------------------------------------------------------------------------------------
# long lines, randomized files, threads


def test_line_longer_than_a_block(tmp_path):
    long = "1 " + " ".join(f"{i}:{i}.5" for i in range(1, 3000)) + "\n"
    text = "1 1:1\n" + long + "2 2:2\n" + long
    path = write(tmp_path, text)
    for block in (64, 1000, 1 << 20):
        batch, reader = read(path, block_bytes=block)
        assert reader.n_rows == 4 and reader.nnz == 2 + 2 * 2999
        np.testing.assert_array_equal(batch.indices[1:3000], np.arange(2999))
    assert_same_as_sklearn(path, block_bytes=64)


def random_file(rng, n_rows=400) -> str:
    out = []
    for _ in range(n_rows):
        r = rng.random()
        if r < 0.03:
            out.append("# comment " + str(rng.integers(100)))
            continue
        if r < 0.05:
            out.append(" " * int(rng.integers(3)))
            continue
        label = str(rng.choice(["1", "-1", "+1", "0", "3", "2.5", "-0.25", "1e2"]))
        k = int(rng.choice([0, 1, 2, 5, 30, 100]))
        idx = 1 + np.sort(rng.choice(max(k, 10**int(rng.integers(1, 9))), size=k, replace=False))
        toks = [label]
        for i in idx:
            v = rng.random()
            if v < 0.3:
                val = "1"
            elif v < 0.6:
                val = f"{rng.normal():.6g}"
            elif v < 0.8:
                val = repr(float(rng.normal() * 10.0 ** rng.integers(-30, 30)))
            else:
                val = random_number(rng)
                if abs(float(val)) >= 1e38:
                    val = "7"
            toks.append(f"{i}:{val}")
        seps = rng.choice([" ", "  ", "\t"], size=len(toks))
        line = "".join(s + t for s, t in zip(seps, toks))[1:]
        if rng.random() < 0.1:
            line += " # trailing " + str(rng.integers(10))
        out.append(line)
    nl = "\r\n" if rng.random() < 0.3 else "\n"
    return nl.join(out) + (nl if rng.random() < 0.5 else "")


@pytest.mark.parametrize("seed", range(6))
def test_random_files_match_sklearn(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = write(tmp_path, random_file(rng))
    block = int(rng.choice([64, 300, 4096, 8 << 20]))
    reader = assert_same_as_sklearn(path, block_bytes=block, threads=int(rng.integers(1, 4)))
    whole, _ = read(path)
    one, _ = read(path, block_bytes=block, threads=1)
    same_batches(one, whole)
    assert reader.n_lines == len(path.read_bytes().splitlines())


# --------------------------------------------------------------------------------------------
# stdin, early stop, threads


STDIN_SNIPPET = """
import json, sys
import numpy as np
from streamhog.io.formats.libsvm import LibsvmReader
r = LibsvmReader("-", block_bytes=int(sys.argv[1]))
labels, indices, values = [], [], []
for b in r:
    labels.append(b.labels); indices.append(b.indices); values.append(b.values)
print(json.dumps({"name": r.name, "rows": r.n_rows, "nnz": r.nnz, "lines": r.n_lines,
                  "labels": float(np.concatenate(labels).astype(np.float64).sum()),
                  "indices": int(np.concatenate(indices).astype(np.int64).sum()),
                  "values": float(np.concatenate(values).astype(np.float64).sum())}))
"""


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_stdin_pipe(packed):
    data = A9A.read_bytes()
    expected, reader = read(A9A)
    proc = subprocess.run([sys.executable, "-c", STDIN_SNIPPET, "100000"],
                          input=gzip.compress(data, 1) if packed else data, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    got = json.loads(proc.stdout)
    assert got == {"name": "<stdin>", "rows": reader.n_rows, "nnz": reader.nnz, "lines": reader.n_lines,
                   "labels": float(expected.labels.astype(np.float64).sum()),
                   "indices": int(expected.indices.astype(np.int64).sum()),
                   "values": float(expected.values.astype(np.float64).sum())}


def test_stdin_auto_base_on_a_pipe_is_refused():
    code = ("from streamhog.io.formats.libsvm import LibsvmReader\n"
            "LibsvmReader('-', index_base='auto')\n")
    proc = subprocess.run([sys.executable, "-c", code], input=b"1 1:1\n", capture_output=True, timeout=120)
    assert proc.returncode != 0
    assert b"<stdin>: index base 'auto' needs a seekable file" in proc.stderr


def test_early_close_stops_threads():
    reader = LibsvmReader(A9A, block_bytes=2048, threads=2)
    it = iter(reader)
    first = next(it)
    assert first.row_start == 0 and libsvm_threads()
    reader.close()
    assert not libsvm_threads()
    reader.close()  # twice is fine
    with pytest.raises(RuntimeError):
        iter(reader)
    # breaking out of a for loop and dropping the generator also stops them
    for _ in LibsvmReader(A9A, block_bytes=2048):
        break
    assert not libsvm_threads()


def test_error_in_a_late_block_stops_threads(tmp_path):
    path = write(tmp_path, "1 1:1\n" * 20000 + "1 0:1\n" + "1 1:1\n" * 20000)
    reader = LibsvmReader(path, block_bytes=1024, threads=2)
    n = 0
    with pytest.raises(DataFormatError, match="line 20001: index 0"):
        for b in reader:
            n += b.n_rows
    assert n <= 20000
    assert not libsvm_threads()


# --------------------------------------------------------------------------------------------
# the kernel itself


def test_kernel_takes_read_only_bytes():
    data = b"1 1:2 3:4.5\n-1 2:1e3\n"
    arr = np.frombuffer(data, dtype=np.uint8)
    assert not arr.flags.writeable
    assert K.count_newlines_and_colons(arr, len(arr)) == (2, 3)
    assert not K.block_has_zero_index(arr, len(arr))
    assert K.block_has_zero_index(np.frombuffer(b"1 1:1 # 0:1\n2 000:1", np.uint8), 19)
    indptr = np.empty(4, np.int64)
    indices = np.empty(3, np.uint32)
    values = np.empty(3, np.float32)
    labels = np.empty(3, np.float32)
    slow = np.empty((4, 4), np.int64)
    errors = np.zeros((10, K.ERR_FIELDS), np.int64)
    stats = np.zeros(K.N_STATS, np.int64)
    K.parse_libsvm_block(arr, len(arr), 1, -1, False, indptr, indices, values, labels, slow, errors, stats)
    assert list(stats[[K.S_ROWS, K.S_NNZ, K.S_LINES, K.S_MIN_INDEX, K.S_MAX_INDEX, K.S_ALL_ONES]]) == \
        [2, 3, 2, 0, 2, 0]
    assert list(indptr[:3]) == [0, 2, 3] and list(indices) == [0, 2, 1]
    assert list(values) == [2, 4.5, 1000] and list(labels[:2]) == [1, -1]
    assert len(K.parse_libsvm_block.signatures) == 1  # compiled eagerly, for read-only input


def test_block_result_reports_local_lines():
    res = parse_block(b"1 1:1\n\n1 0:1\n1 2:1\n1 2:1 1:1\n", skip_invalid=True)
    assert res.n_errors == 2 and [line for line, _ in res.errors] == [3, 5]
    assert res.n_rows == 2 and res.n_lines == 5
