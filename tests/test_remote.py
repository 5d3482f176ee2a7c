"""Datasets at URLs (formats/storage.py): a real local S3 endpoint (moto's server on 127.0.0.1,
reached through the standard AWS variables and files), memory:// and file://. Training from S3
equals training from the same local files, bit for bit; readers fetch row groups, never the
whole file; predict --out writes to S3; model directories stay local."""
from __future__ import annotations

import logging

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest

import streamhog
from streamhog.cli import main
from streamhog.datasets import a9a
from streamhog.errors import OutputExistsError
from streamhog.io.formats import open_dataset
from streamhog.io.formats.storage import READ_BLOCK, Remote, StorageError

KW = dict(epochs=2, threads=1, seed=5, quiet=True)
AWS_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE")


def _fresh_s3():
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # each test reads the AWS configuration anew


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch, tmp_path):
    """The standard AWS environment pointing at the local endpoint (and nothing else: no
    instance metadata service is ever asked), with a bucket holding a9a."""
    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    _fresh_s3()
    fs = fsspec.filesystem("s3")
    bucket = f"data-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    fs.mkdir(bucket)
    yield fs, bucket
    _fresh_s3()


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """a9a as a directory of two Parquet files (row groups of 4,000 rows) and as a Zarr store."""
    d = tmp_path_factory.mktemp("local")
    (d / "pq").mkdir()
    streamhog.convert(a9a("train"), d / "pq" / "part-0.parquet", rows_per_group=4000)
    streamhog.convert(a9a("test"), d / "pq" / "part-1.parquet", rows_per_group=4000)
    streamhog.convert(a9a("train"), d / "a9a.zarr", rows_per_group=8192)
    return d


def same_model(a, b):
    return np.array_equal(np.asarray(a.weights), np.asarray(b.weights)) and a.intercept == b.intercept


def test_s3_parquet_and_zarr_train_as_the_local_files(s3, local, tmp_path):
    fs, bucket = s3
    fs.put(str(local / "pq"), f"{bucket}/pq", recursive=True)
    fs.put(str(local / "a9a.zarr"), f"{bucket}/a9a.zarr", recursive=True)
    for name in ("pq", "a9a.zarr"):
        url = f"s3://{bucket}/{name}"
        ds = open_dataset(url)
        assert ds.path == url and ds.n_rows == open_dataset(local / name).n_rows
        remote = streamhog.train(url, tmp_path / f"remote-{name}", **KW)
        assert same_model(streamhog.train(local / name, tmp_path / f"local-{name}", **KW), remote)
        assert remote.meta["data"]["path"] == url


def test_many_readers_and_threads_over_s3(s3, local, tmp_path):
    """8 reader threads, each with its own handle, and 8 scoring threads on 2 cores: every row
    scored once and in place, as from the local files."""
    fs, bucket = s3
    fs.put(str(local / "pq"), f"{bucket}/pq", recursive=True)
    model = streamhog.train(local / "pq", tmp_path / "m", epochs=1, quiet=True)
    from streamhog.model.inference import evaluate, predict

    url = f"s3://{bucket}/pq"
    np.testing.assert_array_equal(predict(model, url, threads=8, readers=8), model.predict(local / "pq"))
    got, want = evaluate(model, url, threads=8, readers=8), model.evaluate(local / "pq", threads=1)
    assert got["n_examples"] == want["n_examples"] == 48842
    assert got == pytest.approx(want, rel=1e-12)  # sums merged across threads in another order


def test_a_reader_fetches_row_groups_not_the_file(s3, tmp_path, monkeypatch):
    from streamhog.datasets.synthetic import SyntheticSpec, synthetic_batches
    from streamhog.io.formats import create_writer

    spec = SyntheticSpec(n_rows=60_000, seed=0)
    w = create_writer("parquet", tmp_path / "s.parquet", rows_per_group=2000)
    for b in synthetic_batches(spec, rows_per_block=2000):
        w.write(b)
    w.close(spec.n_features)
    fs, bucket = s3
    fs.put(str(tmp_path / "s.parquet"), f"{bucket}/s.parquet")
    size = (tmp_path / "s.parquet").stat().st_size
    handles = []
    opened = Remote.open

    def spy(self, path, mode="rb"):
        handles.append(opened(self, path, mode))
        return handles[-1]

    monkeypatch.setattr(Remote, "open", spy)
    ds = open_dataset(f"s3://{bucket}/s.parquet")
    assert ds.n_blocks == 30 and size > 15 * 2**20
    before = len(handles)
    reader = ds.open_reader()
    batch = reader.read(17)
    assert batch.n_rows == 2000 and batch.row_start == 34_000
    fetched = sum(h.cache.total_requested_bytes for h in handles[before:])
    reader.close()
    assert 0 < fetched < size / 4, (fetched, size)  # one row group (with read-ahead) and the footer


def test_credentials_and_endpoint_from_the_aws_files(s3_endpoint, s3, local, tmp_path, monkeypatch):
    fs, bucket = s3
    fs.put(str(local / "pq" / "part-1.parquet"), f"{bucket}/t.parquet")
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var)
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = x\n")
    (tmp_path / "config").write_text(f"[default]\nregion = us-east-1\nendpoint_url = {s3_endpoint}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    _fresh_s3()
    assert open_dataset(f"s3://{bucket}/t.parquet").n_rows == 16281


def test_predict_out_to_s3(s3, local, tmp_path, capsys):
    fs, bucket = s3
    model = streamhog.train(local / "pq", tmp_path / "m", epochs=1, quiet=True)
    out = f"s3://{bucket}/out/p.parquet"
    assert main(["predict", str(local / "pq"), "--model", str(tmp_path / "m"), "--out", out]) == 0
    with fs.open(out, "rb") as f:
        p = pq.read_table(f)
    np.testing.assert_allclose(p.column("prediction").to_numpy(), model.predict(local / "pq"), rtol=1e-6)
    assert fs.ls(f"{bucket}/out", detail=False) == [f"{bucket}/out/p.parquet"]  # no temporary object left
    assert main(["predict", str(local / "pq"), "--model", str(tmp_path / "m"), "--out", out]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["predict", f"s3://{bucket}/pq-missing", "--model", str(tmp_path / "m"), "--out", out,
                 "--overwrite"]) == 1
    assert "no such file or directory" in capsys.readouterr().err


def test_memory_urls(local, tmp_path):
    fs = fsspec.filesystem("memory")
    fs.put(str(local / "pq"), "/streamhog-test/pq", recursive=True)
    fs.put(str(local / "a9a.zarr"), "/streamhog-test/a9a.zarr", recursive=True)
    try:
        for name in ("pq", "a9a.zarr"):
            model = streamhog.train(f"memory://streamhog-test/{name}", tmp_path / name, **KW)
            assert same_model(streamhog.train(local / name, tmp_path / f"l-{name}", **KW), model)
        from streamhog.model.inference import predict_to_parquet

        n = predict_to_parquet(model, local / "a9a.zarr", "memory://streamhog-test/p.parquet")
        assert n == 32561 and fs.exists("/streamhog-test/p.parquet")
        with pytest.raises(OutputExistsError):
            predict_to_parquet(model, local / "a9a.zarr", "memory://streamhog-test/p.parquet")
    finally:
        fs.rm("/streamhog-test", recursive=True)


def test_file_urls_and_model_dirs(local, tmp_path):
    url = (local / "pq" / "part-0.parquet").as_uri()
    assert url.startswith("file:///")
    model = streamhog.train(url, (tmp_path / "m").as_uri(), epochs=1, quiet=True)
    assert model.path == tmp_path / "m"
    assert model.meta["data"]["path"] == str(local / "pq" / "part-0.parquet")
    with pytest.raises(StorageError, match=r"s3://bucket/model: model directories must be on local disk \(the "
                                           r"weights are memory-mapped"):
        streamhog.train(url, "s3://bucket/model", epochs=1, quiet=True)
    with pytest.raises(StorageError, match="model directories must be on local disk"):
        streamhog.Model.open("gs://bucket/model")
    with pytest.raises(FileNotFoundError):
        open_dataset("memory://nothing-here/x.parquet")


class _RangeHandler:
    """A static file server on 127.0.0.1 that honours Range requests (as HTTP object stores do)
    and counts the bytes it sends."""

    sent = 0

    @classmethod
    def make(cls, root):
        import http.server

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                path = root / self.path.lstrip("/")
                if not rng or not path.is_file():
                    return super().do_GET()
                data = path.read_bytes()
                lo, _, hi = rng.split("=")[1].partition("-")
                lo, hi = int(lo), min(int(hi) if hi else len(data) - 1, len(data) - 1)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {lo}-{hi}/{len(data)}")
                self.send_header("Content-Length", str(hi - lo + 1))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                self.wfile.write(data[lo:hi + 1])
                cls.sent += hi - lo + 1

        return Handler


def test_http_url(local, tmp_path):
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler.make(local / "pq"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/part-0.parquet"
        model = streamhog.train(url, tmp_path / "m", **KW)
        assert same_model(streamhog.train(local / "pq" / "part-0.parquet", tmp_path / "l", **KW), model)
        _RangeHandler.sent = 0
        size = (local / "pq" / "part-0.parquet").stat().st_size
        ds = open_dataset(url)
        reader = ds.open_reader()
        assert reader.read(3).n_rows == 4000
        reader.close()
        md = pq.read_metadata(local / "pq" / "part-0.parquet")
        group = sum(md.row_group(3).column(c).total_compressed_size for c in range(md.num_columns))
        footer = 64 << 10  # pyarrow reads the last 64 KiB for the footer
        # the row group, the footer, and at most one read-ahead block beyond each request
        assert group < _RangeHandler.sent <= group + footer + 2 * READ_BLOCK < md.serialized_size + size / 2, \
            (_RangeHandler.sent, group)
    finally:
        server.shutdown()
        server.server_close()
