"""Outputs: nothing the user had is deleted, nothing partial is left, and failures to write
are one-line errors (issue 16, item 6 and the convert-side tracebacks and leftovers).

- ``--overwrite`` replaces only what the command itself writes (convert: a streamhog dataset;
  predict: a predictions file), never an unrelated file or directory;
- an unwritable directory, a full disk (a small tmpfs when this test may mount one; always
  also ``RLIMIT_FSIZE``, errno 27, in a subprocess) end in ``streamhog CMD: error: PATH: ...``,
  exit status 1, and no partial output;
- SIGTERM during convert removes the temporary as Ctrl-C does; temporaries of dead
  processes are removed by the next convert to the same destination, a live writer's never;
- the small wrongs: ``--out p.csv``, "0 MB/s", argparse's "invalid _positive_int value",
  ``convert --help``'s speed-up.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import streamhog
from streamhog._fs.atomic import atomic_output, clean_stale_temporaries
from streamhog.cli import build_parser, main
from streamhog.datasets import a9a
from streamhog.errors import OutputError
from streamhog.model.directory import Model

ROOT = Path(__file__).resolve().parents[1]


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    err = captured.err.strip()
    if code:
        assert len(err.splitlines()) == 1, err
    return code, err, captured.out


def snapshot(path: Path) -> dict:
    """Every file under ``path`` (or the file itself) with its bytes."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.fixture
def svm(tmp_path):
    path = tmp_path / "small.svm"
    path.write_text("1 1:0.5 3:1\n-1 2:1\n1 1:2 4:1.5\n-1 3:1\n")
    return path


@pytest.fixture
def a9a_text(tmp_path):
    path = tmp_path / "a9a.svm"
    path.write_bytes(gzip.decompress(a9a("train").read_bytes()))
    return path


def make_model(path, n_features=4):
    model = Model.create(path, n_features=n_features, loss="logistic")
    model.weights[:] = np.arange(n_features, dtype=np.float32) / 10
    model.save_meta()
    model.flush()
    return model


# --- item 6: --overwrite replaces only this command's own kind of output ---------------------------

def _unrelated_dir(path):
    path.mkdir()
    (path / "notes.txt").write_text("my thesis")
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("1,2,3")


def _unrelated_file(path):
    path.write_text("precious")


def _foreign_parquet(path):
    pq.write_table(pa.table({"a": [1, 2, 3]}), path)  # Parquet, but not a streamhog dataset


def _zarr_with_extra_file(path, svm):
    streamhog.convert(svm, path)
    (path / "README").write_text("mine")


def _parquet_dir_with_other_file(path, svm):
    path.mkdir()
    streamhog.convert(svm, path / "part-0.parquet")
    (path / "notes.txt").write_text("mine")


@pytest.mark.parametrize("name,make", [
    ("out.parquet", _unrelated_dir), ("out.zarr", _unrelated_dir), ("out.parquet", _unrelated_file),
    ("out.parquet", _foreign_parquet), ("out.zarr", _zarr_with_extra_file),
    ("out.parquet", _parquet_dir_with_other_file),
    ("out.zarr", lambda p, svm: make_model(p)),
])
def test_convert_overwrite_refuses_what_convert_did_not_write(tmp_path, svm, capsys, name, make):
    dst = tmp_path / name
    make(dst, svm) if make.__code__.co_argcount == 2 else make(dst)
    before = snapshot(dst)
    code, err, _ = cli(capsys, "convert", svm, dst, "--overwrite", "--quiet")
    assert code == 1
    assert f"streamhog convert: error: {dst}: " in err and "--overwrite replaces only an output of this command" in err
    assert snapshot(dst) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("name,make", [
    ("out.parquet", lambda p, svm: streamhog.convert(svm, p)),
    ("out.zarr", lambda p, svm: streamhog.convert(svm, p)),
    ("out.parquet", lambda p, svm: (p.mkdir(), streamhog.convert(svm, p / "a.parquet"),
                                    streamhog.convert(svm, p / "b.parquet"))),
    ("out.zarr", lambda p, svm: p.mkdir()),  # an empty directory holds nothing to lose
])
def test_convert_overwrite_replaces_a_streamhog_dataset(tmp_path, svm, capsys, name, make):
    dst = tmp_path / name
    make(dst, svm)
    big = tmp_path / "big.svm"
    big.write_text(svm.read_text() * 3)
    code, err, _ = cli(capsys, "convert", big, dst, "--overwrite", "--quiet")
    assert code == 0, err
    assert streamhog.open_dataset(dst).n_rows == 12 and leftovers(tmp_path) == []


def test_predict_overwrite_replaces_only_predictions(tmp_path, svm, capsys):
    make_model(tmp_path / "m", n_features=5)
    data = tmp_path / "d.parquet"
    streamhog.convert(svm, data)
    out = tmp_path / "p.parquet"
    assert cli(capsys, "predict", data, "--model", tmp_path / "m", "--out", out)[0] == 0
    code, err, _ = cli(capsys, "predict", data, "--model", tmp_path / "m", "--out", out, "--overwrite")
    assert code == 0, err  # its own output: replaced
    for make in (_unrelated_file, _unrelated_dir, _foreign_parquet, lambda p: streamhog.convert(svm, p)):
        other = tmp_path / "other.parquet"
        make(other)
        before = snapshot(other)
        code, err, _ = cli(capsys, "predict", data, "--model", tmp_path / "m", "--out", other, "--overwrite")
        assert code == 1 and "--overwrite replaces only an output of this command" in err
        assert snapshot(other) == before
        streamhog._fs.atomic.remove_path(other)
    assert leftovers(tmp_path) == []


def test_predict_refuses_an_output_name_that_is_not_parquet(tmp_path, svm, capsys):
    make_model(tmp_path / "m", n_features=5)
    streamhog.convert(svm, tmp_path / "d.parquet")
    code, err, _ = cli(capsys, "predict", tmp_path / "d.parquet", "--model", tmp_path / "m",
                       "--out", tmp_path / "p.csv")
    assert code == 1 and "p.csv: predictions are written as Parquet; name the output NAME.parquet" in err
    assert not (tmp_path / "p.csv").exists()


# --- unwritable directories, full disks ------------------------------------------------------

def _can_mount() -> bool:
    return os.geteuid() == 0 and subprocess.run(["which", "mount"], capture_output=True).returncode == 0


@contextlib.contextmanager
def _mounted_tmpfs(path: Path, options: str):
    path.mkdir()
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if run.returncode:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@contextlib.contextmanager
def unwritable_dir(path: Path):
    """A directory this process cannot write: mode 0o555 for an ordinary user; root ignores
    modes, so for root a read-only tmpfs (or, failing that, an immutable directory)."""
    if os.geteuid() != 0:
        path.mkdir()
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    with _mounted_tmpfs(path, "ro,size=1m") as mounted:
        if mounted:
            yield path
            return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        try:
            yield path
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        return
    pytest.skip("running as root without mount or chattr: cannot make an unwritable directory")


def test_unwritable_output_directory_is_one_line(tmp_path, svm, capsys):
    make_model(tmp_path / "m", n_features=5)
    streamhog.convert(svm, tmp_path / "d.parquet")
    with unwritable_dir(tmp_path / "ro") as ro:
        for argv in (["convert", svm, ro / "o.parquet"], ["convert", svm, ro / "o.zarr"],
                     ["predict", tmp_path / "d.parquet", "--model", tmp_path / "m", "--out", ro / "p.parquet"]):
            code, err, _ = cli(capsys, *argv)
            assert code == 1 and err.startswith(f"streamhog {argv[0]}: error: {ro}: cannot write in this directory (")
        assert list(ro.iterdir()) == []


def _convert_in_subprocess(src, dst, *, fsize=None):
    def limit():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run([sys.executable, "-m", "streamhog", "convert", str(src), str(dst), "--quiet"],
                          capture_output=True, text=True, preexec_fn=limit, cwd=ROOT)


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
def test_file_size_limit_during_convert(tmp_path, a9a_text, fmt):
    """``ulimit -f``: writes fail with EFBIG (errno 27; Python ignores SIGXFSZ)."""
    dst = tmp_path / f"out.{fmt}"
    run = _convert_in_subprocess(a9a_text, dst, fsize=200_000)
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip() == (f"streamhog convert: error: {dst}: file size limit exceeded (errno 27) while "
                                  "writing; the partial output was removed")
    assert not dst.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
def test_disk_full_during_convert(tmp_path, a9a_text, monkeypatch, fmt):
    """A full disk (errno 28): a 1 MB tmpfs when this test may mount one, else the writes are
    made to fail with ENOSPC (pyarrow's and zarr's), as a full disk fails them."""
    small = tmp_path / "small"
    with contextlib.ExitStack() as stack:
        if not (_can_mount() and stack.enter_context(_mounted_tmpfs(small, "size=1m"))):
            small.mkdir(exist_ok=True)
            _fail_writes_with_enospc(monkeypatch)
        dst = small / f"out.{fmt}"
        with pytest.raises(OutputError, match=rf"{dst}: no space left on the device \(errno 28\) while writing; "
                                              "the partial output was removed"):
            streamhog.convert(a9a_text, dst)
        assert list(small.iterdir()) == []


def _fail_writes_with_enospc(monkeypatch):
    import errno

    import pyarrow.parquet as pqm
    import zarr.storage

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(pqm.ParquetWriter, "write_table", full)
    monkeypatch.setattr(zarr.storage.LocalStore, "set", full)


# --- SIGTERM and the temporaries of dead processes -------------------------------------------------

@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
def test_sigterm_during_convert_leaves_nothing(tmp_path, a9a_text, fmt):
    """stdin gets 8 copies of a9a (two 8 MiB parse blocks: the writer has begun), then stalls."""
    dst = tmp_path / f"out.{fmt}"
    proc = subprocess.Popen([sys.executable, "-m", "streamhog", "convert", "-", str(dst), "--threads", "1"],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=False, cwd=ROOT)
    data = a9a_text.read_bytes()
    try:
        for _ in range(8):
            proc.stdin.write(data)
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while not leftovers(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert leftovers(tmp_path), "the converter never began writing"
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == "streamhog convert: terminated (SIGTERM); the partial output was removed"
    assert not dst.exists() and leftovers(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_later_convert_removes_temporaries_of_dead_writers_only(tmp_path, svm, capsys):
    dst = tmp_path / "out.zarr"
    dead, live = _dead_pid(), os.getppid()
    stale_dir = tmp_path / f".out.zarr.tmp-{dead}-0a1b2c3d"
    (stale_dir / "indices").mkdir(parents=True)
    (stale_dir / "indices" / "c").write_bytes(b"x" * 1000)
    stale_side = tmp_path / f".out.zarr.tmp-{dead}-0a1b2c3d.binary-prefix"
    stale_side.write_bytes(b"x")
    alive = tmp_path / f".out.zarr.tmp-{live}-99887766"
    alive.mkdir()
    other = tmp_path / f".other.zarr.tmp-{dead}-0a1b2c3d"  # another destination's: not ours to judge
    other.mkdir()
    assert cli(capsys, "convert", svm, dst, "--quiet")[0] == 0
    assert leftovers(tmp_path) == sorted([alive.name, other.name])


def test_a_destination_moved_aside_by_a_dead_writer_is_put_back(tmp_path, svm, capsys):
    """Killed between the two renames of the swap: the old output is whole; nothing is lost."""
    dst = tmp_path / "out.parquet"
    streamhog.convert(svm, dst)
    before = snapshot(dst)
    dead = _dead_pid()
    os.rename(dst, tmp_path / f".out.parquet.old-{dead}-01020304")
    (tmp_path / f".out.parquet.tmp-{dead}-01020304").write_bytes(b"new, complete or not")
    code, err, _ = cli(capsys, "convert", svm, dst, "--quiet")
    assert code == 1 and "already exists; pass --overwrite" in err  # the user's output is back
    assert snapshot(dst) == before and leftovers(tmp_path) == []


def test_atomic_output_keeps_live_writers_files(tmp_path):
    dst = tmp_path / "x.parquet"
    mine = tmp_path / f".x.parquet.tmp-{os.getpid()}-00000000"
    mine.write_text("in progress")
    assert clean_stale_temporaries(dst) == [] and mine.exists()
    with atomic_output(dst) as tmp:
        tmp.write_text("done")
    assert dst.read_text() == "done" and mine.exists()


# --- small wrongs ----------------------------------------------------------------------------------

def test_small_conversion_reports_a_real_rate(tmp_path, svm, capsys):
    code, _, out = cli(capsys, "convert", svm, tmp_path / "o.parquet")
    assert code == 0 and " MB/s of input)" in out and "(0 MB/s" not in out


def test_argument_errors_name_what_is_expected(capsys):
    for argv, message in ((["train", "d", "--model", "m", "--epochs", "abc"], "argument --epochs: expected a whole "
                                                                                "number, got 'abc'"),
                          (["convert", "a", "b", "--rows-per-group", "1.5"], "expected a whole number, got '1.5'"),
                          (["convert", "a", "b", "--hash-bits", "x"], "argument --hash-bits: expected a whole number"),
                          (["train", "d", "--model", "m", "--threads", "0"],
                           "argument --threads: must be >= 1, got 0")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "_int" not in err and "_bits" not in err


def test_convert_help_and_readme_agree_on_the_packed_speed_up():
    convert = build_parser()._subparsers._group_actions[0].choices["convert"]
    layout = next(a for a in convert._actions if a.dest == "layout")
    assert "about 2x faster (1.6x with zstd, 2.7x without a values column" in layout.help
    readme = (ROOT / "README.md").read_text()
    assert "decodes about 2× faster (1.6× with zstd, 2.7× without a values column)" in readme
