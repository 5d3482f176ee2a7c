"""The interaction layout (write, read, validate) and the rating text readers (MovieLens CSV,
.data, ratings.dat): parsed values against an independent Python parse, bad input named by
file and line (or row group), no output left behind."""
from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamhog.cli import main
from streamhog.datasets import MOVIELENS_SMALL_SHA256, movielens_small
from streamhog.errors import DataFormatError
from streamhog.factorization import InteractionDataset, is_interaction_file, write_interactions
from streamhog.factorization.parse import RatingsReader


def read_all(ds: InteractionDataset):
    reader = ds.open_reader()
    try:
        batches = [reader.read(b) for b in range(ds.n_blocks)]
    finally:
        reader.close()
    return tuple(np.concatenate([getattr(b, k) for b in batches]) for k in ("users", "items", "ratings"))


def parse_text(data: bytes, **kw):
    reader = RatingsReader(io.BytesIO(data), **kw)
    parts = list(reader)
    if not parts:
        return (np.zeros(0, np.uint64),) * 2 + (np.zeros(0, np.float32),), reader
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3)), reader


def python_parse(text: str, sep, cols=(0, 1, 2), header=False):
    """An independent reading: str.split and float()."""
    out = []
    lines = text.splitlines()
    for line in lines[1:] if header else lines:
        if not line.strip():
            continue
        f = line.split(sep) if sep else line.split()
        f = [x.strip().strip('"') for x in f]
        out.append((int(f[cols[0]]), int(f[cols[1]]), float(f[cols[2]])))
    a = np.array(out, dtype=object)
    return a[:, 0].astype(np.uint64), a[:, 1].astype(np.uint64), a[:, 2].astype(np.float64).astype(np.float32)


# -- the layout ----------------------------------------------------------------------------------

def test_interactions_round_trip_in_row_groups(tmp_path, rng):
    u, i = rng.integers(0, 5000, 50_000), rng.integers(0, 300, 50_000)
    r = rng.uniform(0.5, 5, 50_000).astype(np.float32)
    w = write_interactions(tmp_path / "a.parquet", u, i, r, rows_per_group=16_384)
    assert w.n_groups == 4
    ds = InteractionDataset(tmp_path / "a.parquet")
    assert (ds.n_rows, ds.n_blocks, ds.n_users, ds.n_items) == (50_000, 4, int(u.max()) + 1, int(i.max()) + 1)
    assert list(ds.block_rows) == [16_384] * 3 + [50_000 - 3 * 16_384]
    users, items, ratings = read_all(ds)
    assert users.dtype == np.uint32
    np.testing.assert_array_equal(users, u)
    np.testing.assert_array_equal(items, i)
    np.testing.assert_array_equal(ratings, r)
    meta = pq.read_metadata(tmp_path / "a.parquet").metadata
    assert meta[b"interactions_version"] == b"1" and meta[b"n_rows"] == b"50000"
    assert is_interaction_file(tmp_path / "a.parquet")
    assert [row_start for row_start, _, _ in ds.iter_ratings()] == list(ds.block_row_start)


def test_a_large_id_later_in_the_file_widens_the_ids_to_uint64(tmp_path, rng):
    u = rng.integers(0, 100, 1000)
    u[900] = 2**40 + 3
    write_interactions(tmp_path / "w.parquet", u, np.arange(1000), np.ones(1000, np.float32), rows_per_group=128)
    ds = InteractionDataset(tmp_path / "w.parquet")
    users, items, _ = read_all(ds)
    assert users.dtype == np.uint64 and ds.n_users == 2**40 + 4
    np.testing.assert_array_equal(users, u)
    np.testing.assert_array_equal(items, np.arange(1000))


def test_a_directory_of_files_is_one_dataset(tmp_path):
    (tmp_path / "d").mkdir()
    write_interactions(tmp_path / "d" / "a.parquet", np.array([1, 2]), np.array([3, 4]), np.array([1, 2], np.float32))
    write_interactions(tmp_path / "d" / "b.parquet", np.array([9]), np.array([0]), np.array([5], np.float32))
    ds = InteractionDataset(tmp_path / "d")
    assert (ds.n_rows, ds.n_users, ds.n_items, ds.n_blocks) == (3, 10, 5, 2)
    np.testing.assert_array_equal(read_all(ds)[0], [1, 2, 9])


def _write_raw(path, table, **meta):
    meta = {"interactions_version": "1", "n_users": "100", "n_items": "100", **meta}
    table = table.replace_schema_metadata({k: str(v) for k, v in meta.items()})
    pq.write_table(table, path)


@pytest.mark.parametrize("columns, meta, problem", [
    ({"user": pa.array([1, 2], pa.uint32()), "item": pa.array([1, 2], pa.uint32()),
      "rating": pa.array([1.0, float("nan")], pa.float32())}, {}, "row group 0: row 1: rating nan is not finite"),
    ({"user": pa.array([1, 2], pa.uint32()), "item": pa.array([1, 200], pa.uint32()),
      "rating": pa.array([1.0, 2.0], pa.float32())}, {}, "row group 0: row 1: item id 200 >= the file's n_items 100 (metadata)"),
    ({"user": pa.array([1, None], pa.uint32()), "item": pa.array([1, 2], pa.uint32()),
      "rating": pa.array([1.0, 2.0], pa.float32())}, {}, "row group 0: column 'user' holds 1 null rows"),
    ({"user": pa.array([1, 2], pa.uint32()), "item": pa.array([1, 2], pa.uint32()),
      "rating": pa.array([1.0, 2.0], pa.float32()), "weight": pa.array([1.0, -1.0], pa.float32())}, {},
     "row group 0: row 1: weight -1.0 is not a finite non-negative number"),
])
def test_bad_blocks_are_refused_naming_file_and_row_group(tmp_path, columns, meta, problem):
    path = tmp_path / "bad.parquet"
    _write_raw(path, pa.table(columns), **meta)
    ds = InteractionDataset(path)
    with pytest.raises(DataFormatError) as err:
        read_all(ds)
    assert str(err.value) == f"{path}: {problem}"


@pytest.mark.parametrize("columns, meta, problem", [
    ({"user": pa.array([1], pa.int64()), "item": pa.array([1], pa.uint32()), "rating": pa.array([1.0])}, {},
     "column 'user' has type int64, expected uint32 or uint64 (non-negative ids)"),
    ({"user": pa.array([1], pa.uint32()), "rating": pa.array([1.0])}, {}, "missing column 'item'"),
    ({"user": pa.array([1], pa.uint32()), "item": pa.array([1], pa.uint32()), "weight": pa.array([1.0])}, {},
     "column 'weight' without a 'rating' column (weights need ratings)"),
    ({"user": pa.array([1], pa.uint32()), "item": pa.array([1], pa.uint32()), "rating": pa.array([1.0])},
     {"interactions_version": "7"}, "interactions_version '7' is not supported"),
])
def test_bad_files_are_refused_when_opened(tmp_path, columns, meta, problem):
    path = tmp_path / "bad.parquet"
    _write_raw(path, pa.table(columns), **meta)
    with pytest.raises(DataFormatError) as err:
        InteractionDataset(path)
    assert str(err.value).startswith(f"{path}: {problem}")


def test_a_file_of_pairs_has_no_rating_column_and_reads_as_pairs(tmp_path, rng):
    """(user, item) pairs without ratings (what predict scores): written without a rating
    column, read back with ratings None; training and evaluation refuse them by name."""
    u, i = rng.integers(0, 70, 1000), rng.integers(0, 2**33, 1000)  # a 64-bit id: widened as with ratings
    write_interactions(tmp_path / "p.parquet", u, i, rows_per_group=300)
    assert pq.read_schema(tmp_path / "p.parquet").names == ["user", "item"]
    ds = InteractionDataset(tmp_path / "p.parquet")
    assert not ds.has_ratings and ds.n_rows == 1000 and ds.n_blocks == 4 and ds.info()["id_type"] == "uint64"
    reader = ds.open_reader()
    batches = [reader.read(b) for b in range(ds.n_blocks)]
    reader.close()
    assert all(b.ratings is None and b.weights is None for b in batches)
    np.testing.assert_array_equal(np.concatenate([b.users for b in batches]), u)
    np.testing.assert_array_equal(np.concatenate([b.items for b in batches]), i)
    assert [b.n_rows for b in batches] == [300, 300, 300, 100]
    for what in ("training", "evaluation"):
        with pytest.raises(DataFormatError) as err:
            ds.require_ratings(what)
        assert str(err.value) == (f"{tmp_path / 'p.parquet'}: no 'rating' column: (user, item) pairs to score with "
                                  f"'streamhog predict'; {what} needs ratings")
    with pytest.raises(DataFormatError, match="reading ratings needs ratings"):
        next(ds.iter_ratings())
    write_interactions(tmp_path / "r.parquet", u, i % 100, np.ones(1000, np.float32))
    InteractionDataset(tmp_path / "r.parquet").require_ratings("training")  # rated data passes


@pytest.mark.parametrize("text, problem", [
    (b"userId,movieId\n1,20\n2,30\n9,10\n", None),
    (b"1 20\n2\t30\n9 10\n", None),
    (b"user,item\r\n1,20\r\n2,30\r\n9,10\r\n", None),
    (b"1 20\n2 30 4.5\n", "line 2: 3 field(s), expected 2 (user item)"),
    (b"userId,movieId\n1,20\n-2,30\n", "line 3: user id '-2' is negative"),
    (b"userId,movieId\n1,20\n2,x\n", "line 3: item id 'x' is not a non-negative integer"),
])
def test_pairs_text_converts_to_a_file_without_ratings(tmp_path, capsys, text, problem):
    (tmp_path / "pairs.txt").write_bytes(text)
    rc = main(["convert", str(tmp_path / "pairs.txt"), str(tmp_path / "pairs.parquet"), "--input-format", "ratings"])
    out = capsys.readouterr()
    if problem is not None:
        assert rc == 1 and problem in out.err and len(out.err.strip().splitlines()) == 1, out.err
        assert not (tmp_path / "pairs.parquet").exists()
        return
    assert rc == 0, out.err
    assert "3 (user, item) pairs, no ratings" in out.out + out.err
    t = pq.read_table(tmp_path / "pairs.parquet")
    assert t.column_names == ["user", "item"]
    assert t.column("user").to_pylist() == [1, 2, 9] and t.column("item").to_pylist() == [20, 30, 10]


def test_a_rating_column_asked_for_must_exist():
    with pytest.raises(DataFormatError, match="no column 'stars'"):
        parse_text(b"userId,movieId\n1,20\n", rating_column="stars")


def test_a_sparse_feature_file_is_not_taken_for_interactions(tmp_path):
    import streamhog
    from streamhog.datasets import a9a

    streamhog.convert(a9a("test"), tmp_path / "a9a.parquet")
    assert not is_interaction_file(tmp_path / "a9a.parquet")
    with pytest.raises(DataFormatError, match="not an interaction file .a sparse-feature file"):
        InteractionDataset(tmp_path / "a9a.parquet")


# -- the text readers ------------------------------------------------------------------------------

def test_packaged_movielens_is_the_published_file_and_parses_like_python():
    raw = gzip.decompress(movielens_small().read_bytes())
    assert hashlib.sha256(raw).hexdigest() == MOVIELENS_SMALL_SHA256["ratings"]
    readme = gzip.decompress(movielens_small("readme").read_bytes())
    assert hashlib.sha256(readme).hexdigest() == MOVIELENS_SMALL_SHA256["readme"]
    (u, i, r), reader = parse_text(raw, block_bytes=1 << 16)  # many blocks
    want = python_parse(raw.decode(), ",", header=True)
    for got, ref in zip((u, i, r), want):
        np.testing.assert_array_equal(got, ref)
    assert reader.n_rows == 100_836 and reader.n_lines == 100_837
    assert reader.layout.header == ["userId", "movieId", "rating", "timestamp"]


@pytest.mark.parametrize("text, sep", [
    ("196\t242\t3\t881250949\n186\t302\t3\t891717742\n\n22\t377\t1\t878887116", None),   # ml-100k u.data
    ("1::1193::5::978300760\r\n1::661::3::978302109\r\n", "::"),                          # ml-1m ratings.dat
    ("1 2 4.5\n  3   4   0.5  \n5 6 1e0 7\n", None),
])
def test_headerless_layouts(text, sep):
    (u, i, r), reader = parse_text(text.encode())
    for got, ref in zip((u, i, r), python_parse(text, sep)):
        np.testing.assert_array_equal(got, ref)
    assert reader.layout.header is None


def test_named_columns_any_order_quotes_and_crlf():
    text = 'ts,"rating",item_id,user_id\r\n9,"3.5",7,2\r\n9, 4 ,8 ,3\r\n'
    (u, i, r), reader = parse_text(text.encode())
    np.testing.assert_array_equal(u, [2, 3])
    np.testing.assert_array_equal(i, [7, 8])
    np.testing.assert_array_equal(r, [3.5, 4.0])
    (u, i, r), _ = parse_text(b"a,b,c\n1,2,3\n", user_column="b", item_column="a", rating_column="c")
    assert (int(u[0]), int(i[0]), float(r[0])) == (2, 1, 3.0)


def test_ratings_are_parsed_exactly_as_python_float():
    values = ["0.1", "4.35", "1e-3", "3.0000000000000000000001", "2.675", "0.3333333333333333333333", "+5"]
    text = "".join(f"1 {k} {v}\n" for k, v in enumerate(values))
    (_, _, r), _ = parse_text(text.encode())
    np.testing.assert_array_equal(r, np.array([float(v) for v in values]).astype(np.float32))


@pytest.mark.parametrize("text, line, problem", [
    (b"1 2 3\n1 2.5 3\n", 2, "item id '2.5' is not a non-negative integer"),
    (b"1 2 3\n-1 2 3\n", 2, "user id '-1' is negative"),
    (b"1 2 3\n\n1 2 nan\n", 3, "rating 'nan' is NaN or infinite"),
    (b"1 2 3\n1 2 inf\n", 2, "rating 'inf' is NaN or infinite"),
    (b"1 2 3\n1 2\n", 2, "2 field(s), expected 3 or 4"),
    (b"1 2 3\n1 2 3 4 5\n", 2, "5 field(s), expected 3 or 4"),
    (b"userId,movieId,rating\n1,2,3\n1,,3\n", 3, "item id is missing"),
    (b"userId,movieId,rating\n1,2\n", 2, "2 field(s), expected 3 (as the header)"),
    (b"1 2 3\n1 2 four\n", 2, "rating 'four' is not a number"),
    (b"1 2 3\nx 2 3\n", 2, "user id 'x' is not a non-negative integer"),
    (b"1 2 3\n1 2 1e40\n", 2, "rating '1e40' is out of float32 range"),
    (b"1 2 3\n99999999999999999999 2 3\n", 2, "user id '99999999999999999999' is too large"),
    (b"u,i,r\n1,2,3\n", 1, "the header has no user column"),
])
def test_bad_lines_name_the_line_and_the_problem(text, line, problem):
    with pytest.raises(DataFormatError) as err:
        parse_text(text, block_bytes=4)  # tiny blocks: line numbers carry across blocks
    assert err.value.line == line and problem in err.value.problem


def test_skip_invalid_counts_and_keeps_the_good_lines():
    (u, i, r), reader = parse_text(b"1 2 3\nbad line here\n4 5 6\n7 -8 9\n", skip_invalid=True)
    np.testing.assert_array_equal(u, [1, 4])
    assert reader.n_skipped == 2 and [ln for ln, _ in reader.skipped] == [2, 4]


def test_column_options_need_a_header():
    with pytest.raises(DataFormatError, match="--user-column names a column, but the first line is not a header"):
        parse_text(b"1 2 3\n", user_column="uid")


# -- convert ------------------------------------------------------------------------------------

def test_convert_movielens_through_the_cli(tmp_path, capsys):
    out = tmp_path / "ml.parquet"
    assert main(["convert", str(movielens_small()), str(out), "--input-format", "ratings", "--quiet"]) == 0
    ds = InteractionDataset(out)
    assert (ds.n_rows, ds.n_users, ds.n_items) == (100_836, 611, 193_610)
    raw = gzip.decompress(movielens_small().read_bytes()).decode()
    for got, ref in zip(read_all(ds), python_parse(raw, ",", header=True)):
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("bad", [b"1,2,3\n1,2,nan\n", b"1,2,3\n1,-2,3\n", b"1,2,3\n1,2\n", b"1,2,3\n1,b,3\n"])
def test_convert_stops_at_a_bad_line_with_no_output(tmp_path, bad):
    src, out = tmp_path / "r.csv", tmp_path / "r.parquet"
    src.write_bytes(bad)
    p = subprocess.run([sys.executable, "-m", "streamhog", "convert", str(src), str(out), "--input-format", "ratings"],
                       capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.startswith(f"streamhog convert: error: {src}: line 2: ") and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_convert_refuses_sparse_only_options_for_ratings(tmp_path, capsys):
    src = tmp_path / "r.data"
    src.write_bytes(b"1 2 3\n")
    cases = [(["r.zarr", "--input-format", "ratings"], "ratings convert to Parquet"),
             (["x.parquet", "--user-column", "u"], "--user-column apply to --input-format ratings only"),
             (["x.parquet", "--input-format", "ratings", "--hash-bits", "10"], "--hash-bits: sparse-feature options"),
             (["x.parquet", "--input-format", "libsvm", "--rating-column", "r"], "apply to --input-format ratings")]
    for args, message in cases:
        assert main(["convert", str(src), str(tmp_path / args[0]), *args[1:]]) == 1
        err = capsys.readouterr().err
        assert err.startswith("streamhog convert: error: ") and message in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.data"]
