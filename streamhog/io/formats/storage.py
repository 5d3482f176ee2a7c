"""Where data lives: a local path, or a URL that fsspec opens (s3://, gs://, http(s)://, memory://).

``file://`` URLs are local paths: they take the local fast path (memory-mapped Parquet).
Any other URL is opened with fsspec: s3fs for ``s3://`` (botocore's credential chain: the
``AWS_*`` variables, ``~/.aws/credentials`` and ``~/.aws/config``, and ``AWS_ENDPOINT_URL``
/ ``AWS_ENDPOINT_URL_S3``, so MinIO or any S3-compatible store works unchanged), gcsfs for
``gs://``, aiohttp for ``http(s)://`` (single files: HTTP lists no directories). These come
with the ``remote`` extra (``pip install 'streamhog[remote]'``).

Why fsspec rather than pyarrow's own S3FileSystem: one library serves every scheme, both
formats (zarr v3 reads remote stores through fsspec only) and the output of ``predict``,
with the standard AWS configuration. Reading stays streamed: each reader thread opens its
own handle (:func:`open_input`), buffered with a read-ahead cache of :data:`READ_BLOCK`
bytes, and reads only the byte ranges of the row groups it is given (and the footers):
a dataset is never downloaded whole.

Model directories are never remote: the weights are memory-mapped and updated in place
(:func:`local_model_dir` refuses a URL, saying so).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from ...errors import StreamhogError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
#: Read-ahead of a remote file handle (fsspec's "readahead" cache): a read fetches this much
#: beyond what was asked, so the footer and small reads cost one request. Parquet readers
#: also pre-buffer (pyarrow coalesces a row group's column chunks into one request), so a
#: larger read-ahead would only fetch bytes of row groups another thread reads.
READ_BLOCK = 256 << 10


class StorageError(StreamhogError, OSError):
    """A URL that cannot be opened: unknown scheme, a missing package, or the store's refusal."""


def is_url(path) -> bool:
    """True for ``scheme://...`` text (``file://`` included)."""
    return isinstance(path, str) and bool(_URL.match(path))


def is_remote(path) -> bool:
    """A URL that is not ``file://``: read through fsspec."""
    return is_url(path) and not path.lower().startswith("file://")


def local_path(path) -> Path:
    """``path`` (str, PathLike or ``file://`` URL) as a local Path; a remote URL is an error."""
    if is_url(path):
        if is_remote(path):
            raise StorageError(f"{path}: a local path is expected here")
        parsed = urlparse(path)
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(f"{path}: a file:// URL names a file on this machine (file:///path)")
        return Path(unquote(parsed.path))
    return Path(os.fspath(path))


def location(path) -> str:
    """How a dataset's place is recorded (model.json, messages): a resolved local path, or the URL."""
    if is_remote(path):
        return str(path)
    text = str(path)
    if text.startswith("<"):  # in-memory data: its description
        return text
    return str(local_path(path).resolve())


def local_model_dir(path) -> Path:
    """A model directory: local only, since the weights are memory-mapped and updated in place."""
    if is_remote(path):
        raise StorageError(f"{path}: model directories must be on local disk (the weights are memory-mapped "
                           "and updated in place); train into a local directory and copy it to remote storage "
                           "afterwards. Datasets and predict --out may be URLs.")
    return local_path(path)


def filesystem(url: str, storage_options: dict | None = None):
    """``(fs, path)``: the fsspec filesystem of ``url`` and the path within it."""
    try:
        import fsspec.core
    except ImportError as exc:  # pragma: no cover - the remote extra is part of the test extra
        raise StorageError(f"{url}: reading URLs needs fsspec: pip install 'streamhog[remote]'") from exc
    try:
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    except ImportError as exc:
        raise StorageError(f"{url}: this URL scheme needs a package that is not installed ({exc}); "
                           "pip install 'streamhog[remote]'") from exc
    except ValueError as exc:
        raise StorageError(f"{url}: {exc}") from exc


class Remote:
    """A remote dataset location: its filesystem, and URLs of the files in it."""

    def __init__(self, url: str, storage_options: dict | None = None):
        self.url = url.rstrip("/") if not url.endswith("://") else url
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = filesystem(self.url, self.storage_options)
        self.protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]

    def _guard(self, what: str, func, *args):
        try:
            return func(*args)
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise StorageError(f"{self.url}: cannot {what} ({type(exc).__name__}: {exc})") from exc
        except Exception as exc:  # botocore / aiohttp errors (credentials, endpoint) are not OSErrors
            raise StorageError(f"{self.url}: cannot {what} ({type(exc).__name__}: {exc})") from exc

    def url_of(self, fs_path: str) -> str:
        """The URL of a path inside this filesystem (what messages and model.json show)."""
        return self.fs.unstrip_protocol(fs_path)

    def isdir(self, fs_path: str | None = None) -> bool:
        return bool(self._guard("list it", self.fs.isdir, fs_path or self.root))

    def isfile(self, fs_path: str | None = None) -> bool:
        return bool(self._guard("look it up", self.fs.isfile, fs_path or self.root))

    def exists(self, fs_path: str | None = None) -> bool:
        return bool(self._guard("look it up", self.fs.exists, fs_path or self.root))

    def listdir(self) -> list[str]:
        """Names (not paths) of the entries of the directory at the root."""
        entries = self._guard("list it", self.fs.ls, self.root, False)
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def size(self, fs_path: str | None = None) -> int:
        return int(self._guard("read its size", self.fs.size, fs_path or self.root) or 0)

    def total_size(self) -> int:
        """Bytes of the file, or of every file under the directory."""
        return int(self._guard("read its size", self.fs.du, self.root, True) or 0)

    def join(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def open(self, fs_path: str, mode: str = "rb"):
        """A file handle of its own (one per reader thread), buffered with read-ahead."""
        if "r" in mode:
            return self._guard("open it", lambda: self.fs.open(fs_path, mode, block_size=READ_BLOCK,
                                                               cache_type="readahead"))
        return self._guard("open it for writing", lambda: self.fs.open(fs_path, mode))


def open_input(path, remote: Remote | None):
    """What pyarrow reads: the local path (memory-mapped), or a fresh remote handle."""
    return path if remote is None else remote.open(remote.root if path is None else str(path))
